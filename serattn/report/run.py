"""The sections of one run's report, as plain dicts for the template.

Everything is read through :func:`serattn.runs.reading.open_run`; figures are
drawn here and carried as data URIs. A section that a run cannot have (no
attention for a static model, no history for an ensemble) carries a sentence
saying why instead.
"""

import base64
import json
from pathlib import Path

import numpy as np

from serattn.analysis import attention as attn
from serattn.analysis import statistics as stats
from serattn.analysis.corpus import describe_corpus
from serattn.analysis.representations import tsne_map
from serattn.errors import InputError
from serattn.features.corpora import read_manifest
from serattn.features.feature_set import load_feature_set
from serattn.plots import figures as plots
from serattn.plots import report as report_plots
from serattn.report.gallery import gallery_items
from serattn.runs.folder import FIGURES_DIR, HISTORY_FILE, METRICS_FILE, NORMALIZATION_FILE, file_sha256
from serattn.runs.reading import read_csv_columns

# config.json keys that are not flags: shown elsewhere in the header, or too long for it.
NOT_FLAGS = ("classes", "data_files", "versions", "git_commit", "feature_names", "feature_meta", "run_format",
             "model_sha256", "folds", "member_runs", "member_models", "member_seeds")


def kind_of(run):
    """'cross-validation', 'ensemble', 'static' or the LSTM model name."""
    return run.record.kind


def test_predictions(run):
    """The test rows of predictions.csv (columns), checked to have probabilities of every class."""
    predictions = run.predictions()
    test = predictions["split"] == "test"
    if not test.any():
        raise InputError(f"'{run.path / 'predictions.csv'}' has no test rows; nothing to report")
    if "speaker" not in predictions:
        raise InputError(f"'{run.path / 'predictions.csv'}' has no 'speaker' column; speaker-level "
                         f"intervals need one (re-run with this version)")
    missing = [c for c in run.classes if f"p_{c}" not in predictions]
    if missing:
        raise InputError(f"'{run.path / 'predictions.csv'}' lacks the column(s) "
                         f"{', '.join('p_' + c for c in missing)}")
    return {key: values[test] for key, values in predictions.items()}


def counts_of(run, predictions=None):
    """The run's :class:`~serattn.analysis.statistics.SpeakerCounts` on its test utterances."""
    predictions = predictions if predictions is not None else test_predictions(run)
    return stats.speaker_counts(predictions["true"], predictions["predicted"], predictions["speaker"],
                                run.classes)


def header(run, metrics, predictions):
    """Data file, protocol, every resolved flag, versions, commit, seconds."""
    record = run.record
    data_files = [{"role": role, "name": Path(entry.get("path", "")).name, "sha256": entry.get("sha256", "")}
                  for role, entry in record.data_files.items()]
    cv = record.cv
    if cv:
        protocol = f"cross-validation {' '.join(str(v) for v in cv if v is not None)}, " \
                   f"{len(record.folds)} folds, test predictions pooled"
        if record.group_by:
            protocol += f", one value of '{record.group_by}' held out per fold"
    elif record.split_by:
        protocol = f"the corpus's partitions in '{record.split_by}' (train, validation, test)"
    elif record.member_runs:
        protocol = f"late fusion of {len(record.member_runs)} runs ({record.method})"
    else:
        protocol = f"train/test split, test speakers {', '.join(record.test_speakers) or '?'}"
    if record.val_speakers_used:
        protocol += f"; validation speakers {', '.join(record.val_speakers_used)}"
    if record.norm:
        protocol += f"; normalization {record.norm}"
    seconds = metrics.seconds
    flags = [(key, json.dumps(value) if not isinstance(value, str) else value)
             for key, value in record.values.items() if key not in NOT_FLAGS]
    # Paths as file names: the page may travel to machines where they mean nothing.
    meta = {k: Path(v).name if k in ("manifest", "corpus_root") and v else v
            for k, v in run.feature_meta.items() if not isinstance(v, (dict, list))}
    return {
        "data_files": data_files, "protocol": protocol, "flags": flags,
        "feature_meta": sorted(meta.items()),
        "versions": sorted(record.versions.items()),
        "git_commit": record.git_commit or "unknown",
        "seconds": seconds if seconds is not None else elapsed_seconds(run),
        "seconds_estimated": seconds is None,
        "test_utterances": int(len(predictions["id"])),
        "test_speakers": int(len(set(predictions.get("speaker", [])))),
        "classes": list(run.classes),
    }


def elapsed_seconds(run):
    """Training time from the run's own files: normalization.json is written before training,
    metrics.json after it (summed over the folds of a cross-validation). None when the files
    are missing or their times are out of order (a copied folder)."""
    folders = [run.path / fold for fold in run.record.folds] or [run.path]
    total = 0.0
    for folder in folders:
        start, stop = folder / NORMALIZATION_FILE, folder / METRICS_FILE
        if not (start.is_file() and stop.is_file()):
            return None
        seconds = stop.stat().st_mtime - start.stat().st_mtime
        if seconds <= 0:
            return None
        total += seconds
    return total


def scores(run, metrics, counts, resamples, seed):
    """UA, WA and per-class recall with speaker-bootstrap intervals, and the confusion figure."""
    boot = stats.bootstrap_scores(counts, resamples=resamples, seed=seed)
    confusion = metrics.confusion
    support = counts.total.sum(axis=0)
    return {
        "ua": stats.format_interval(boot["ua"]), "wa": stats.format_interval(boot["wa"]),
        "recall": [(c, stats.format_interval(boot["recall"][c]), int(support[j]))
                   for j, c in enumerate(run.classes)],
        "speakers": boot["speakers"], "resamples": resamples,
        "few_speakers": boot["speakers"] < stats.FEW_SPEAKERS,
        "fold_mean": metrics.ua_fold_mean, "fold_std": metrics.ua_fold_std,
        "confusion": report_plots.data_uri(report_plots.plot_confusion(confusion, run.classes)),
        "raw": boot,
    }


def learning_curves(run, metrics):
    """The learning-curve figure from history.csv, or a reason why there is none."""
    path = run.path / HISTORY_FILE
    if not path.is_file():
        return None, f"{kind_of(run)} runs have no history.csv (no epochs)"
    columns = read_csv_columns(path) if path.stat().st_size else {}
    if "epoch" not in columns or len(columns["epoch"]) == 0:
        return None, f"'{path}' holds no epochs"
    try:
        history = {key: values.astype(np.float64) for key, values in columns.items()}
    except ValueError:
        return None, f"'{path}' holds non-numeric values"
    figure = report_plots.plot_learning_curves(history, metrics.best_epoch)
    return report_plots.data_uri(figure), None


def test_sets_rows(metrics):
    """Each test partition's scores (``--split-by``: MSP-Podcast's Test1, Test2): name, UA, WA, n."""
    return [{"name": name, "ua": f"{100 * t['ua']:.1f}", "wa": f"{100 * t['wa']:.1f}", "n": t.get("n")}
            for name, t in (metrics.get("test_sets") or {}).items()]


def label_map_rows(metrics):
    """What ``--label-map`` dropped per data file role: role, total, per-label counts."""
    def counts(mapping):
        return ", ".join(f"{label} {count}" for label, count in sorted(mapping.items())) or "-"

    return [{"role": role, "total": d.get("total", 0), "by_map": counts(d.get("dropped_by_map") or {}),
             "unmapped": counts(d.get("dropped_unmapped") or {})}
            for role, d in (metrics.get("label_map_dropped") or {}).items()]


def folds_table(metrics):
    """Per-fold rows of a cross-validation parent (fold, test speakers, n, UA, WA)."""
    return [{"fold": f["fold"], "speakers": ", ".join(f.get("test_speakers", [])), "n": f.get("n"),
             "ua": None if f.get("ua") is None else f"{100 * f['ua']:.1f}", "wa": f"{100 * f['wa']:.1f}"}
            for f in metrics.folds]


def attention_section(run, metrics, attention, tsne_points):
    """Slot figure of the test split, diagnostics, t-SNE map (saved figure or drawn now)."""
    test = attention.select(attention.split == "test")
    profiles = attn.slot_profiles(test.weights, test.lengths)
    mean, std, counts = attn.class_statistics(profiles, test.labels, run.classes)
    slots = report_plots.data_uri(plots.plot_attention_slots(
        [("test", mean, std, counts)], run.classes, attn.uniform_level(), "attention relative to uniform"))
    diagnostics = [(name, f"{scale * metrics[key]:.{digits}f}", meaning)
                   for key, name, scale, digits, meaning in DIAGNOSTICS if metrics.get(key) is not None]
    saved = run.path / FIGURES_DIR / "tsne.png"
    if saved.is_file():
        tsne = "data:image/png;base64," + base64.b64encode(saved.read_bytes()).decode("ascii")
        tsne_note = f"from {FIGURES_DIR}/tsne.png (tsne_plot.py)"
    elif len(test) >= 4:
        tsne = report_plots.data_uri(tsne_figure(run, test, tsne_points))
        tsne_note = f"test utterances ({min(len(test), tsne_points)}), drawn for this report"
    else:
        tsne, tsne_note = None, "too few test utterances for a t-SNE map"
    return {"slots": slots, "diagnostics": diagnostics, "tsne": tsne, "tsne_note": tsne_note,
            "padding_mass": float(np.mean(test.padding_mass))}


DIAGNOSTICS = (
    ("attention_effective_width", "effective width (%)", 100, 1,
     "exp(entropy) of the weights as a share of the frames: 100 is uniform"),
    ("attention_top10_mass", "top-10% mass (%)", 100, 1, "weight on the 10% most attended frames (10 is uniform)"),
    ("attention_cue_ratio", "cue ratio", 1, 2,
     "attention mass on the class cue over the cue's share of the duration (1 is uniform)"),
)


def tsne_figure(run, test, max_points):
    """The report's t-SNE panel of the test representations: a random ``max_points``, Barnes-Hut
    at any size (as reports were drawn before tsne_plot.py's exact t-SNE for small maps)."""
    rng = np.random.default_rng(0)
    index = np.arange(len(test)) if len(test) <= max_points else np.sort(rng.choice(len(test), max_points, False))
    perplexity = float(min(40, len(index) - 1))
    points = tsne_map(test.z[index], perplexity, seed=0, method="barnes_hut")
    return plots.plot_tsne([(f"test (n={len(index)}, perplexity {perplexity:g})", points, test.labels[index])],
                           run.classes)


def load_data_file(run):
    """``(feature set, None)`` of the run's data file when it is there unchanged, else ``(None, why)``."""
    files = run.record.data_files
    entry = files.get("data") or files.get("train")
    if len(files) > 1 and "data" not in files:
        return None, "the run was trained on separate --train/--test files; the corpus table is from its predictions"
    if not entry or not Path(entry.get("path", "")).is_file():
        return None, "the run's data file is not on this machine; the corpus table is from its predictions"
    if file_sha256(entry["path"]) != entry.get("sha256"):
        return None, (f"'{Path(entry['path']).name}' changed since the run was trained; the corpus table is "
                      f"from its predictions")
    return load_feature_set(entry["path"]), None


def corpus_section(run, feature_set=None, note=None):
    """The corpus description of a run: its data file when available, else its predictions."""
    if feature_set is not None:
        return describe_feature_set(feature_set, note)
    rows = run.prediction_rows()
    ids = [row["id"] for row in rows]
    description = describe_corpus(ids, [row["true"] for row in rows], [row.get("speaker", "") for row in rows],
                                  run.classes, split=[row["split"] for row in rows])
    return _with_figure(description, note)


def describe_feature_set(feature_set, note=None):
    frames = feature_set.meta.get("level") != "functionals"  # a functionals row says nothing of duration
    description = describe_corpus(
        feature_set.ids, feature_set.labels, feature_set.speakers, sorted(set(feature_set.labels)),
        split=feature_set.split, lengths=feature_set.lengths,
        frame_rate=float(feature_set.meta.get("frame_rate") or 100) if frames else None, features=feature_set.features,
        source_ids=feature_set.source_ids)
    return _with_figure(description, note)


def _with_figure(description, note):
    names = [row["speaker"] for row in description["per_speaker"]]
    table = np.array([row["counts"] for row in description["per_speaker"]])
    description["figure"] = report_plots.data_uri(
        report_plots.plot_corpus_counts(table, names, description["classes"]))
    description["note"] = note
    return description


def gallery_features(feature_set, ids):
    """{id: (L, D) frames z-scored per utterance} for gallery utterances without audio."""
    if feature_set is None:
        return None
    index = {utterance_id: i for i, utterance_id in enumerate(feature_set.ids)}
    frames = {}
    for utterance_id in ids:
        if utterance_id in index:
            x = feature_set.sequence(index[utterance_id]).astype(np.float64)
            frames[utterance_id] = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
    return frames


def run_report(run, options, budget):
    """Every section of one run's report (see the module docstring)."""
    metrics = run.metrics()
    predictions = test_predictions(run)
    counts = counts_of(run, predictions)
    kind = kind_of(run)
    section = {"name": run.name, "path": str(run.path), "kind": kind,
               "header": header(run, metrics, predictions),
               "scores": scores(run, metrics, counts, options.resamples, options.seed),
               "folds": folds_table(metrics), "test_sets": test_sets_rows(metrics),
               "label_map_dropped": label_map_rows(metrics), "attention": None, "attention_note": None,
               "gallery": None, "gallery_note": None}
    section["curves"], section["curves_note"] = learning_curves(run, metrics) if not run.record.folds \
        else (None, "a cross-validation has one history per fold (fold-KK/history.csv)")
    feature_set, data_note = load_data_file(run)
    section["corpus"] = corpus_section(run, feature_set, data_note)

    attention = run.attention() if run.has_attention else None
    if attention is None:
        section["attention_note"] = f"{kind} runs have no attention weights"
    elif not np.any(attention.split == "test"):
        attention, section["attention_note"] = None, "attention.npz holds no test utterances"
    else:
        section["attention"] = attention_section(run, metrics, attention, options.tsne_points)
    manifest = None
    if run.manifest_path is not None and run.manifest_path.is_file():
        manifest = read_manifest(run.manifest_path).columns()
    if options.gallery > 0:
        features = gallery_features(feature_set, predictions["id"])
        section["gallery"], section["gallery_note"] = gallery_items(
            run, predictions, attention, budget, options.gallery, features, manifest)
        if attention is None:
            section["gallery_note"] = ((section["gallery_note"] + "; ") if section["gallery_note"] else "") + \
                "this run has no attention weights, so the figures show the audio only"
    return section

