"""Tables of saved runs: UA/WA per group of runs (Table 1) and confusion matrices (Table 2).

compare_runs.py's logic: runs are grouped by config keys, or by every key that differs
between them (seeds, paths, data hashes, versions and commits excepted, so repeated
seeds are what gets averaged), and rendered as text, markdown or CSV.
"""

import csv
import io
import json
from collections.abc import Mapping, Sequence

import numpy as np

from serattn.analysis import statistics as stats
from serattn.errors import InputError
from serattn.runs.reading import Run, open_run
from serattn.runs.record import RunMetrics

Groups = list[tuple[tuple, list[tuple[Run, RunMetrics]]]]  # (values of the keys, its (run, metrics) members)
Table = tuple[str, list[str], list[list[str]]]  # title, header, rows

# Keys that tell runs apart without making them a different configuration.
# Derived from the seed or the data (validation speakers, class weights) or about
# output only; data identity is in data_files, which is ignored too.
IGNORED_KEYS = ("seed", "out", "out_dir", "output", "run_dir", "name", "run_name", "git_commit",
                "run_format", "classes", "debug", "verbose", "quiet", "overwrite", "tensorboard",
                "config", "resume", "val_speakers_used", "feature_names", "feature_meta.manifest",
                "feature_meta.corpus_root", "member_runs", "member_seeds", "weights")
IGNORED_PREFIXES = ("versions.", "data_files.", "class_weights.", "model_sha256.")
FORMATS = ("text", "markdown", "csv")


# --- runs and groups --------------------------------------------------------------------


def load_runs(run_dirs: Sequence[str]) -> list[tuple[Run, RunMetrics]]:
    """(Run, metrics) of each folder, each checked; InputError on the first bad one."""
    seen, runs = set(), []
    for run_dir in run_dirs:
        run = open_run(run_dir)
        if run.path.resolve() in seen:
            raise InputError(f"run folder '{run_dir}' is given twice")
        seen.add(run.path.resolve())
        runs.append((run, run.metrics()))
    return runs


TEST_SET_KEY = "test set"


def test_set_of(run: Run, metrics: RunMetrics):
    """What a run was scored on: its classes (or dimensions) and the ids of its test utterances."""
    ids = frozenset(row["id"] for row in run.prediction_rows() if row["split"] == "test")
    return RunMetrics.of(metrics).scored_on, ids


def test_set_numbers(runs: Sequence[tuple[Run, RunMetrics]]) -> list[int]:
    """1, 2, ... per run: runs share a number when they share classes and test utterances."""
    numbers: dict[tuple, int] = {}
    return [numbers.setdefault(test_set_of(run, metrics), len(numbers) + 1) for run, metrics in runs]


def check_same_test_sets(groups: Groups) -> None:
    """Raise InputError, naming the first pair, if a group would average runs scored on different things."""
    for _, members in groups:
        (first, first_metrics), *others = members
        classes, ids = test_set_of(first, first_metrics)
        for run, metrics in others:
            other_classes, other_ids = test_set_of(run, metrics)
            if other_classes != classes:
                what = f"classes {','.join(classes)} vs {','.join(other_classes)}"
            elif other_ids != ids:
                what = (f"different test utterances ({len(ids)} vs {len(other_ids)}, "
                        f"{len(ids & other_ids)} in common)")
            else:
                continue
            raise InputError(f"cannot average '{first.path}' and '{run.path}': {what}; group them apart "
                             f"with --by KEY or --separate-test-sets")


def flatten_config(config: Mapping, prefix: str = "") -> dict:
    """Nested config dicts as one level with dotted keys; lists become JSON text."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return flat


def _ignored(key):
    return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES)


def grouping_keys(by: Sequence[str] | None, configs: Sequence[dict]) -> list[str]:
    """The keys named by --by (checked), or every non-ignored key whose value differs."""
    if by:
        keys = [key.strip() for item in by for key in item.split(",") if key.strip()]
        known = set().union(*configs)
        unknown = [key for key in keys if key not in known]
        if unknown:
            listed = ", ".join(sorted(k for k in known if not _ignored(k)))
            raise InputError(f"unknown config key '{unknown[0]}' for --by; expected one of: {listed}")
        return keys
    keys = sorted(set().union(*configs))
    return [key for key in keys if not _ignored(key)
            and len({json.dumps(config.get(key), sort_keys=True) for config in configs}) > 1]


def group_runs(runs: Sequence[tuple[Run, RunMetrics]], configs: Sequence[dict], keys: Sequence[str]) -> Groups:
    """[(values, [(run, metrics), ...]), ...] in order of first appearance."""
    groups: dict[str, tuple[tuple, list[tuple[Run, RunMetrics]]]] = {}
    for member, config in zip(runs, configs):
        values = tuple(config.get(key) for key in keys)
        groups.setdefault(json.dumps(values), (values, []))[1].append(member)
    return list(groups.values())


def describe(keys: Sequence[str], values: Sequence) -> str:
    return ", ".join(f"{key}={show_value(value)}" for key, value in zip(keys, values)) or "all runs"


def show_value(value) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)


# --- tables ---------------------------------------------------------------------------------


def percent(values) -> str:
    """'47.2 ± 1.3' (sample std over runs), or '47.2' for a single run."""
    values = 100 * np.asarray(values, dtype=np.float64)
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"


# Attention diagnostics of metrics.json shown as columns when a run has them: (key, header, scale).
DIAGNOSTICS = (("attention_effective_width", "attention width (%)", 100),
               ("attention_top10_mass", "top-10% mass (%)", 100),
               ("attention_cue_ratio", "cue ratio", 1))


INTERVAL_HEADER = ("UA 95% CI", "WA 95% CI", "ΔUA vs first", "p", "p (Holm)")


def interval_columns(groups: Groups, resamples: int = stats.RESAMPLES, seed: int = stats.SEED) -> list[list[str]]:
    """Per group: UA and WA intervals of a speaker bootstrap, and the paired test against the first group.

    A group of several runs (seeds) is scored by its runs' mean correct counts
    (:func:`~serattn.analysis.statistics.mean_counts`): the interval is that of the
    seed-mean UA over resampled speakers, and the test compares seed-means. Groups
    scored on other test utterances than the first get no test ('-').
    """
    from serattn.report.run import counts_of

    counts = [stats.mean_counts([counts_of(run) for run, _ in members]) for _, members in groups]
    first_set = test_set_of(*groups[0][1][0])
    comparable = [i for i, (_, members) in enumerate(groups) if i and test_set_of(*members[0]) == first_set]
    tests = dict(zip(comparable, stats.compare_to_first([counts[0]] + [counts[i] for i in comparable],
                                                        resamples, seed=seed)))
    columns = []
    for i, group_counts in enumerate(counts):
        boot = stats.bootstrap_scores(group_counts, resamples, seed=seed)
        interval = [f"[{100 * boot[key][1]:.1f}, {100 * boot[key][2]:.1f}]" for key in ("ua", "wa")]
        test = tests.get(i)
        if test is None:
            columns.append(interval + ["first" if i == 0 else "-", "-", "-"])
        else:
            difference, low, high = (100 * value for value in test["ua_difference"])
            columns.append(interval + [f"{difference:+.1f} [{low:+.1f}, {high:+.1f}]",
                                       stats.format_p(test["p_value"]), stats.format_p(test["p_holm"])])
    return columns


def summary_table(groups: Groups, keys: Sequence[str], intervals: list[list[str]] | None = None) -> Table:
    """Table 1: per group n runs, seeds, UA and WA mean ± std, per-class recall means, and the
    attention diagnostics (effective width, mass of the top 10% of frames, cue ratio) where present.

    ``intervals``: per group the :data:`INTERVAL_HEADER` columns (:func:`interval_columns`), or None."""
    classes = list(dict.fromkeys(c for _, members in groups for _, m in members for c in m.classes))
    diagnostics = [(key, name, scale) for key, name, scale in DIAGNOSTICS
                   if any(m.get(key) is not None for _, members in groups for _, m in members)]
    header = list(keys) + ["n", "seeds", "UA (%)", "WA (%)"] + \
        (list(INTERVAL_HEADER) if intervals else []) + [f"recall {c} (%)" for c in classes] + \
        [name for _, name, _ in diagnostics]
    rows = []
    for index, (values, members) in enumerate(groups):
        metrics = [m for _, m in members]
        seeds = ",".join(show_value(run.record.seed) for run, _ in members)
        recalls = []
        for c in classes:
            # None: the class had no test utterances in that run (no recall to average)
            values_c = [m.per_class_recall[c] for m in metrics if m.per_class_recall.get(c) is not None]
            recalls.append(f"{100 * np.mean(values_c):.1f}" if values_c else "-")
        shown = []
        for key, _, scale in diagnostics:
            found = [m[key] for m in metrics if m.get(key) is not None]
            shown.append(f"{scale * np.mean(found):.{1 if scale == 100 else 2}f}" if found else "-")
        rows.append([show_value(v) for v in values] + [
            str(len(members)), seeds, percent([m.ua for m in metrics]),
            percent([m.wa for m in metrics])] + (intervals[index] if intervals else []) + recalls + shown)
    if not keys:
        header, rows = ["runs"] + header, [["all"] + row for row in rows]
    title = "Unweighted (UA) and weighted (WA) average recall on the test set"
    if intervals:
        title += (" (95% CI: speaker bootstrap of the group's mean; ΔUA and p: paired speaker permutation test "
                  "against the first group, Holm-adjusted)")
    return title, header, rows


def test_sets_table(groups: Groups, keys: Sequence[str]) -> Table | None:
    """UA and WA of each test partition (``--split-by``: MSP-Podcast's Test1, Test2) per group of runs, mean ± std
    over the group's runs; None when no run has per-test-set scores (``test_sets`` in metrics.json)."""
    rows = []
    for values, members in groups:
        names = sorted({name for _, m in members for name in m.get("test_sets") or {}})
        for name in names:
            scores = [m["test_sets"][name] for _, m in members if name in (m.get("test_sets") or {})]
            rows.append([describe(keys, values), name, str(len(scores)), percent([s["ua"] for s in scores]),
                         percent([s["wa"] for s in scores]), ",".join(str(s.get("n", "-")) for s in scores)])
    if not rows:
        return None
    return ("UA and WA of each test set on its own (--split-by; pooled above)",
            ["runs", "test set", "n", "UA (%)", "WA (%)", "test utterances"], rows)


def label_map_table(runs: Sequence[tuple[Run, RunMetrics]]) -> Table | None:
    """The utterances each run's ``--label-map`` dropped, per data file role (``label_map_dropped`` in
    metrics.json); None when no run has a label map."""
    def counts(mapping):
        return ", ".join(f"{label} {count}" for label, count in sorted(mapping.items())) or "-"

    rows = [[run.name, role, str(dropped.get("total", 0)), counts(dropped.get("dropped_by_map") or {}),
             counts(dropped.get("dropped_unmapped") or {})]
            for run, metrics in runs for role, dropped in (metrics.get("label_map_dropped") or {}).items()]
    if not rows:
        return None
    return ("Utterances --label-map dropped (mapped to nothing, or unmapped with --drop-unmapped)",
            ["run", "data file", "dropped", "mapped to nothing", "unmapped"], rows)


def summed_confusion(members: Sequence[tuple[Run, RunMetrics]]) -> tuple[np.ndarray, list[str]]:
    """Sum of the confusion matrices of runs with the same classes."""
    classes = list(members[0][1].classes)
    for run, metrics in members[1:]:
        if list(metrics.classes) != classes:
            raise InputError(f"cannot sum confusion matrices: '{run.path}' has classes "
                             f"{','.join(metrics.classes)}, expected {','.join(classes)}")
    return sum(metrics.confusion for _, metrics in members), classes


def confusion_table(confusion, classes: Sequence[str], title: str) -> Table:
    """Table 2: counts with rows true and columns predicted, recall per row, then UA.

    The last row is the average of the row recalls over classes that occur,
    i.e. the UA of these counts.
    """
    confusion = np.asarray(confusion)
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = 100 * confusion.diagonal() / support
    header = ["true \\ predicted"] + list(classes) + ["recall (%)"]
    rows = [[c] + [str(int(n)) for n in confusion[i]] + [f"{recall[i]:.1f}" if support[i] else "-"]
            for i, c in enumerate(classes)]
    rows.append(["average recall (UA)"] + [""] * len(classes) + [f"{np.mean(recall[support > 0]):.1f}"])
    return f"{title}, rows true class, columns predicted", header, rows


def render(tables: Sequence[Table], fmt: str) -> str:
    """Tables of (title, header, rows) as aligned text, markdown or CSV."""
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        for i, (title, header, rows) in enumerate(tables):
            if i:
                writer.writerow([])
            writer.writerow([title])
            writer.writerow(header)
            writer.writerows(rows)
        return text.getvalue().rstrip("\n")
    blocks = []
    for title, header, rows in tables:
        if fmt == "markdown":
            lines = [f"**{title}**", "", "| " + " | ".join(header) + " |",
                     "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
        else:
            widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

            def line(cells):
                return "  ".join([str(cells[0]).ljust(widths[0])]
                                 + [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])]).rstrip()

            lines = [title, line(header)] + [line(row) for row in rows]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# --- dimensional runs ------------------------------------------------------------------------

VALUE_INTERVAL_HEADER = ("CCC 95% CI", "ΔCCC vs first", "p", "p (Holm)")


def check_dimensional(runs: Sequence[tuple[Run, RunMetrics]]) -> tuple[str, ...]:
    """The dimensions all ``runs`` predict; () when none is dimensional. InputError for a mix."""
    dims = {tuple(run.dimensions) for run, _ in runs}
    if dims == {()}:
        return ()
    if len(dims) > 1:
        listed = " vs ".join(",".join(d) or "emotion only" for d in sorted(dims))
        raise InputError(f"cannot compare runs of different targets ({listed}); compare each target's runs apart")
    return dims.pop()


def value_sums_of(members: Sequence[tuple[Run, RunMetrics]], dims: Sequence[str]):
    """:class:`~serattn.analysis.statistics.SpeakerValueSums` of a group's test predictions, its runs'
    (seeds') predictions averaged utterance by utterance (the CCC of the seed-mean prediction)."""
    tables = []
    for run, _ in members:
        rows = sorted((r for r in run.prediction_rows() if r["split"] == "test"), key=lambda r: r["id"])
        tables.append(rows)
    first = tables[0]
    true = np.array([[float(r[f"true_{d}"]) for d in dims] for r in first])
    predicted = np.mean([[[float(r[f"pred_{d}"]) for d in dims] for r in rows] for rows in tables], axis=0)
    return stats.speaker_value_sums(true, predicted, [r["speaker"] for r in first], dims)


def value_summary_table(groups: Groups, keys: Sequence[str], dims: Sequence[str],
                        resamples: int = stats.RESAMPLES, seed: int = stats.SEED) -> Table:
    """Per group: n runs, seeds, mean CCC and each dimension's CCC, Pearson r and MSE (mean ± std
    over runs), the speaker-bootstrap interval of the mean CCC and the paired speaker permutation
    test of its difference to the first group (Holm-adjusted)."""
    def spread(values, digits=3):
        values = np.asarray([v for v in values if v is not None], dtype=np.float64)
        if not len(values):
            return "-"
        return f"{values[0]:.{digits}f}" if len(values) == 1 else \
            f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"

    sums = [value_sums_of(members, dims) for _, members in groups]
    first_set = test_set_of(*groups[0][1][0])
    comparable = [i for i, (_, members) in enumerate(groups) if i and test_set_of(*members[0]) == first_set]
    tests = dict(zip(comparable, stats.compare_ccc_to_first([sums[0]] + [sums[i] for i in comparable],
                                                            resamples, seed=seed)))
    header = list(keys) + ["n", "seeds", "CCC"] + [f"{name} {d}" for d in dims for name in ("CCC", "r", "MSE")] + \
        list(VALUE_INTERVAL_HEADER)
    rows = []
    for index, (values, members) in enumerate(groups):
        metrics = [m for _, m in members]
        boot = stats.bootstrap_ccc(sums[index], resamples, seed=seed)["mean"]
        cells = [show_value(v) for v in values] + [str(len(members)),
                                                   ",".join(show_value(run.record.seed) for run, _ in members),
                                                   spread([m.ccc for m in metrics])]
        for d in dims:
            cells += [spread([m.dimension_scores[d]["ccc"] for m in metrics]),
                      spread([m.dimension_scores[d]["pearson"] for m in metrics]),
                      spread([m.dimension_scores[d]["mse"] for m in metrics], 4)]
        cells.append(f"[{boot[1]:.3f}, {boot[2]:.3f}]")
        test = tests.get(index)
        if test is None:
            cells += ["first" if index == 0 else "-", "-", "-"]
        else:
            difference, low, high = test["ccc_difference"]
            cells += [f"{difference:+.3f} [{low:+.3f}, {high:+.3f}]", stats.format_p(test["p_value"]),
                      stats.format_p(test["p_holm"])]
        rows.append(cells)
    if not keys:
        header, rows = ["runs"] + header, [["all"] + row for row in rows]
    title = ("Concordance correlation (CCC) on the test set (95% CI: speaker bootstrap of the CCC of the group's "
             "seed-mean predictions; ΔCCC and p: paired speaker permutation test against the first group, "
             "Holm-adjusted)")
    return title, header, rows
