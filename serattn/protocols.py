"""Speaker-independent evaluation protocols: cross-validation folds and their pooling.

Each fold tests on speakers that training never heard; the folds' test
predictions are pooled for one confusion matrix, and UA/WA are reported both over
the pooled predictions and as mean +- std over folds (the two differ, and papers
mix them up, so both are named).
"""

import csv
import json
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, LeaveOneGroupOut

from serattn import runs
from serattn.attention import attention_diagnostics
from serattn.data import check_same_features, load_feature_set
from serattn.errors import InputError
from serattn.metrics import evaluate_predictions

CV_PROTOCOLS = ("loso", "kfold-speakers")


def parse_cv(values):
    """``["loso"]`` or ``["kfold-speakers", "K"]`` -> (protocol, K or None)."""
    if not values:
        return None
    name, *rest = [str(v) for v in values if v is not None]  # a saved config holds [name, K or null]
    if name == "loso" and not rest:
        return "loso", None
    if name == "kfold-speakers" and len(rest) == 1 and rest[0].isdigit() and int(rest[0]) >= 2:
        return name, int(rest[0])
    raise InputError(f"--cv: expected 'loso' or 'kfold-speakers K' with K >= 2, got '{' '.join(values)}'")


def load_train_test(data=None, train=None, test=None, cv=False, padding="auto", prepare=None):
    """The feature sets of an experiment, checked, as the training scripts take them.

    Args:
        data: one feature set whose ``split`` says train/test (any split with ``cv``).
        train, test: two feature sets instead of ``data``.
        cv: cross-validation: all of ``data`` is returned as the training set.
        padding: where padded input arrays carry their zeros (see load_feature_set).
        prepare: optional ``f(feature_set, path) -> feature_set`` applied on load
            (static models turn frames into one row per utterance).

    Returns:
        ``(train, test or None, sources, classes)``; sources maps data/train/test
        to paths, classes are the sorted training labels.
    """
    def load(path):
        feature_set = load_feature_set(path, padding)
        return prepare(feature_set, path) if prepare else feature_set

    if data:
        feature_set, sources = load(data), {"data": data}
        if cv:
            return feature_set, None, sources, check_classes(feature_set, None, data)
        if feature_set.split is None:
            raise InputError(f"'{data}' has no 'split' array; give --train and --test, or use --cv")
        unknown = sorted(str(s) for s in set(feature_set.split) - {"train", "test"})
        if unknown:
            raise InputError(f"'{data}' has split values {', '.join(unknown)}; expected only train and test")
        train_set, test_set = (feature_set.subset(feature_set.split == s) for s in ("train", "test"))
        if len(train_set) == 0 or len(test_set) == 0:
            raise InputError(f"'{data}' needs utterances of both splits, train and test")
    else:
        train_set, test_set, sources = load(train), load(test), {"train": train, "test": test}
        check_same_features(train_set, test_set, train, test)
    return train_set, test_set, sources, check_classes(train_set, test_set, sources.get("test", data))


def check_classes(train, test, test_source):
    """The training classes; InputError for test labels never trained or a single class."""
    classes = sorted(str(c) for c in set(train.labels))
    unseen = [] if test is None else sorted(str(c) for c in set(test.labels) - set(classes))
    if unseen:
        raise InputError(f"test labels {', '.join(unseen)} in '{test_source}' never occur in the training "
                         f"set (classes: {', '.join(classes)})")
    if len(classes) < 2:
        raise InputError(f"the training set has a single class ({classes[0]}); need at least 2")
    return classes


def split_validation_speakers(speakers, spec, seed):
    """Pick validation speakers among the training speakers.

    Args:
        speakers: (N,) speaker of each training utterance.
        spec: a fraction of the speakers (``"0.2"``), a count (``"2"``), a comma
            list of speaker ids, or ``"0"``/``"none"`` for no validation set.
        seed: seed of the random choice.

    Returns:
        (N,) bool, True for validation utterances.
    """
    speakers = np.asarray(speakers)
    unique = np.unique(speakers)
    if spec in ("0", "none", ""):
        return np.zeros(len(speakers), dtype=bool)
    try:
        size = float(spec)
    except ValueError:
        chosen = [s.strip() for s in spec.split(",") if s.strip()]
        unknown = [s for s in chosen if s not in unique]
        if unknown:
            raise InputError(f"--val-speakers: speaker(s) {', '.join(unknown)} are not among the "
                             f"training speakers ({', '.join(unique[:20])}{'...' if len(unique) > 20 else ''})")
        is_val = np.isin(speakers, chosen)
    else:
        if size <= 0 or (size >= 1 and size != int(size)):
            raise InputError(f"--val-speakers: expected a fraction in (0, 1), a speaker count, or "
                             f"speaker ids, got '{spec}'")
        if len(unique) < 2:
            raise InputError(f"--val-speakers: the training set has {len(unique)} speaker, so no "
                             f"speaker-disjoint validation set is possible; use --val-speakers 0")
        count = int(size) if size >= 1 else max(1, round(size * len(unique)))
        splitter = GroupShuffleSplit(n_splits=1, test_size=count, random_state=seed)
        _, val_index = next(splitter.split(speakers, groups=speakers))
        is_val = np.zeros(len(speakers), dtype=bool)
        is_val[val_index] = True
    if is_val.all():
        raise InputError("--val-speakers leaves no training speakers; choose fewer validation speakers")
    return is_val


def hold_out_validation(train, classes, spec, seed, out):
    """Split ``train`` into (fit, validation) feature sets by speaker (see split_validation_speakers).

    InputError when holding out the validation speakers leaves a class without
    training utterances: the model could never predict it.
    """
    is_val = split_validation_speakers(train.speakers, spec, seed)
    fit_set, val_set = train.subset(~is_val), train.subset(is_val)
    missing = sorted(set(classes) - {str(c) for c in fit_set.labels})
    if missing:
        raise InputError(f"class(es) {', '.join(missing)} have no training utterances in '{out}' once "
                         f"validation speakers are held out; choose other --val-speakers or merge classes")
    return fit_set, val_set


def speaker_folds(speakers, protocol, folds=None):
    """(train index, test index) pairs whose test speakers never occur in training."""
    speakers = np.asarray(speakers)
    count = len(np.unique(speakers))
    if count < 2 or (folds and folds > count):
        raise InputError(f"--cv {protocol}{' ' + str(folds) if folds else ''} needs at least "
                         f"{folds or 2} speakers; the data has {count}")
    splitter = LeaveOneGroupOut() if protocol == "loso" else GroupKFold(n_splits=folds)
    return list(splitter.split(speakers, groups=speakers))


def cross_validate(train_one_run, args, config, data, classes, out, data_files, resume=None):
    """Run ``train_one_run`` once per speaker fold in ``out/fold-KK``, then pool them into ``out``.

    Args:
        train_one_run: ``f(args, train, test, classes, fold_dir, data_files)``, the
            script's single-split run, which writes a complete run folder.
        args: the script's flags; ``args.cv`` is ``(protocol, K)``, ``args.overwrite``
            allows replacing ``out``.
        config: the flags to record in the parent's config.json.
        resume: None for a script that cannot resume (any failure removes ``out``);
            False or True for one that can: an input error removes ``out`` (it
            would hit every rerun alike), an interruption leaves it, marked
            incomplete, and True continues it, keeping the finished folds.

    Returns:
        The pooled metrics; ``seconds`` sums the folds' own when every fold has one.
    """
    protocol, folds = args.cv
    splits = speaker_folds(data.speakers, protocol, folds)
    resuming = bool(resume) and Path(out).exists()  # a finished folder is refused there
    out = runs.reopen_run_dir(out, data_files) if resuming else runs.create_run_dir(out, args.overwrite)
    fold_dirs = [out / f"fold-{k:02d}" for k in range(len(splits))]
    try:
        runs.write_json(out / "config.json", runs.run_config(
            config, out, classes, data, data_files, folds=[d.name for d in fold_dirs]))
        for fold_dir, (train_index, test_index) in zip(fold_dirs, splits):
            if runs.is_complete(fold_dir):
                continue  # finished before an interruption
            train_one_run(args, data.subset(train_index), data.subset(test_index), classes, fold_dir, data_files)
        metrics = write_pooled_run(out, fold_dirs, classes)
    except BaseException as error:
        if resume is None or (isinstance(error, InputError) and not resuming):
            runs.remove_run_dir(out)
        raise
    runs.mark_complete(out)
    return metrics


def run_seeds(args, train, test, classes, data_files, train_one_run, config, resume=None):
    """One run per seed of ``args.seed_list`` (sibling folders ``OUT-seedK`` when there are several).

    Each is a cross-validation (``args.cv``) or one train/test run; yields
    ``(metrics, title)`` for the end-of-run report.
    """
    for seed in args.seed_list:
        args.seed = seed
        out = f"{args.out}-seed{seed}" if len(args.seed_list) > 1 else args.out
        if args.cv:
            metrics = cross_validate(train_one_run, args, config(args), train, classes, out, data_files, resume)
            yield metrics, f"{out}: pooled test predictions of {len(metrics['folds'])} {args.cv[0]} folds"
        else:
            metrics = train_one_run(args, train, test, classes, out, data_files)
            best = f", best epoch {metrics['best_epoch']}" if metrics.get("best_epoch") is not None else ""
            yield metrics, f"{out}: test set{best}"


def pool_folds(fold_dirs, classes):
    """Pooled and per-fold scores of finished fold run folders.

    Returns:
        ``(metrics, rows)``: the parent's metrics dict, and the pooled test rows of
        the folds' predictions.csv with a ``fold`` column added.
    """
    rows, per_fold = [], []
    for fold, folder in enumerate(fold_dirs):
        with open(folder / "predictions.csv", newline="") as handle:
            test_rows = [dict(row, fold=fold) for row in csv.DictReader(handle) if row["split"] == "test"]
        scores = evaluate_predictions([r["true"] for r in test_rows], [r["predicted"] for r in test_rows],
                                      classes)
        per_fold.append({"fold": fold, "test_speakers": sorted({r["speaker"] for r in test_rows}),
                         "ua": scores["ua"], "wa": scores["wa"], "n": scores["n"]})
        rows += test_rows
    metrics = evaluate_predictions([r["true"] for r in rows], [r["predicted"] for r in rows], classes)
    metrics["n_test"] = metrics.pop("n")
    fold_ua = [f["ua"] for f in per_fold if f["ua"] is not None]
    fold_wa = [f["wa"] for f in per_fold]
    metrics.update(
        pooled="ua and wa are over the pooled test predictions of all folds",
        ua_fold_mean=float(np.mean(fold_ua)), ua_fold_std=float(np.std(fold_ua)),
        wa_fold_mean=float(np.mean(fold_wa)), wa_fold_std=float(np.std(fold_wa)),
        folds=per_fold,
    )
    fold_seconds = [_fold_metrics(folder).get("seconds") for folder in fold_dirs]
    if all(seconds is not None for seconds in fold_seconds):
        metrics["seconds"] = round(sum(fold_seconds), 3)
    return metrics, rows


def _fold_metrics(folder):
    with open(folder / "metrics.json") as handle:
        return json.load(handle)


def write_pooled_run(out, fold_dirs, classes):
    """Pool finished folds into the parent run folder ``out``.

    Writes ``metrics.json`` (pooled and per-fold scores), ``predictions.csv`` (the
    folds' test rows, with a ``fold`` column) and, when the folds have attention
    arrays, ``attention.npz`` (the folds' test utterances), so that figure and
    comparison scripts read a cross-validation like any other run.

    Returns:
        The pooled metrics.
    """
    metrics, rows = pool_folds(fold_dirs, classes)
    runs.write_json(out / "metrics.json", metrics)
    temporary = runs.atomic_path(out / "predictions.csv")
    try:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        temporary.replace(out / "predictions.csv")
    finally:
        temporary.unlink(missing_ok=True)
    if all((folder / "attention.npz").is_file() for folder in fold_dirs):
        _pool_attention(out, fold_dirs)
        with np.load(out / "attention.npz") as pooled:  # the folds' test utterances
            metrics.update(attention_diagnostics(pooled["weights"], pooled["lengths"]))
        runs.write_json(out / "metrics.json", metrics)
    return metrics


def _pool_attention(out, fold_dirs):
    pooled = {key: [] for key in ("weights", "z", "ids", "labels", "speakers", "split", "padding_mass",
                                  "head_weights")}
    for folder in fold_dirs:
        with np.load(folder / "attention.npz") as fold:
            test = fold["split"] == "test"
            weights = np.split(fold["weights"], np.cumsum(fold["lengths"])[:-1])
            pooled["weights"] += [w for w, keep in zip(weights, test) if keep]
            if "head_weights" in fold.files:
                heads = np.split(fold["head_weights"], np.cumsum(fold["lengths"])[:-1])
                pooled["head_weights"] += [h for h, keep in zip(heads, test) if keep]
            for key in ("z", "ids", "labels", "speakers", "split", "padding_mass"):
                pooled[key].append(fold[key][test])
    runs.write_attention(out / "attention.npz", pooled["weights"],
                         *(np.concatenate(pooled[key]) for key in ("z", "ids", "labels", "speakers", "split",
                                                                    "padding_mass")),
                         head_weights=pooled["head_weights"] or None)
