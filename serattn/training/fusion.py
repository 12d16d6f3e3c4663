"""Late fusion: combine the class probabilities of several runs on the same utterances.

``mean`` averages the members' ``p_<class>`` columns; ``weighted`` interpolates
them with weights on a grid over the simplex (steps of 0.1 by default) chosen to
maximize UA on the validation rows, i.e. on utterances that every member held out
of its training. Test labels are never looked at before the weights are fixed.
Cross-validation parents are combined fold by fold, each fold tuning its own
weights on its own validation speakers.
"""

import dataclasses
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np

from serattn.errors import InputError
from serattn.analysis.metrics import evaluate_predictions
from serattn.runs.folder import (CONFIG_FILE, PREDICTIONS_FILE, RUN_FORMAT, RunFolder, environment_info,
                                 file_sha256)
from serattn.runs.reading import open_run
from serattn.training.protocols import write_pooled_run

METHODS = ("mean", "weighted")
MAX_GRID_POINTS = 200_000
SUM_TOLERANCE = 1e-3  # probabilities are written with 6 decimals


@dataclasses.dataclass
class Member:
    """One run's saved predictions, probabilities in its own class order."""

    path: Path
    config: dict
    classes: tuple  # class labels, order of ``probabilities`` columns
    ids: np.ndarray  # (N,) str
    speakers: np.ndarray  # (N,) str
    split: np.ndarray  # (N,) str
    true: np.ndarray  # (N,) str
    probabilities: np.ndarray  # (N, C) float64

    @property
    def name(self):
        return str(self.path)

    def rows(self, split):
        """{id: row index} of the rows of one split."""
        return {utterance: i for i, utterance in enumerate(self.ids) if self.split[i] == split}


@dataclasses.dataclass
class Combined:
    """The ensemble's rows of one split, in a common class order."""

    ids: np.ndarray  # (N,) str
    speakers: np.ndarray  # (N,) str
    true: np.ndarray  # (N,) str
    member_probabilities: np.ndarray  # (M, N, C)
    probabilities: np.ndarray | None = None  # (N, C), once weights are known


def read_member(path):
    """A finished run folder's predictions.csv, checked to hold probabilities of every class.

    Raises:
        InputError: the folder is not a finished run, or its probabilities are missing
            or are not probability rows.
    """
    run = open_run(path)
    columns = run.predictions()
    source = run.file(PREDICTIONS_FILE)
    missing = [f"p_{c}" for c in run.classes if f"p_{c}" not in columns]
    if missing:
        raise InputError(f"'{source}' lacks the probability column(s) {', '.join(missing)} of the run's "
                         f"classes; an ensemble needs p_<class> for every class")
    probabilities = np.stack([columns[f"p_{c}"] for c in run.classes], axis=1)
    if len(probabilities) and (not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0)
                               or np.max(np.abs(probabilities.sum(axis=1) - 1)) > SUM_TOLERANCE):
        raise InputError(f"the p_<class> columns of '{source}' are not probabilities (finite, >= 0, "
                         f"summing to 1 per row)")
    return Member(path=run.path, config=run.config, classes=run.classes, ids=columns["id"],
                  speakers=columns.get("speaker", np.full(len(columns["id"]), "")), split=columns["split"],
                  true=columns["true"], probabilities=probabilities)


def check_distinct(members):
    """Refuse members that count one model twice: a copy of another member, or an ensemble containing one.

    A copy is found by its config.json and predictions.csv (the same bytes under another folder: a
    run's config records its own path, so two runs never share it); an ensemble by the member runs
    its config.json records, followed down through nested ensembles.
    """
    seen = {}
    for member in members:
        digest = tuple(file_sha256(member.path / name) for name in (CONFIG_FILE, PREDICTIONS_FILE))
        if digest in seen:
            raise InputError(f"'{seen[digest].name}' and '{member.name}' have identical config.json and "
                             f"predictions.csv files (a copy of one run?); an ensemble counts each run once")
        seen[digest] = member
    runs = [underlying_runs(member.path, member.config) for member in members]
    for (a, runs_a), (b, runs_b) in itertools.combinations(zip(members, runs), 2):
        shared = runs_a & runs_b
        if shared:
            raise InputError(f"'{a.name}' and '{b.name}' both contain the run '{sorted(shared)[0]}'; an ensemble "
                             f"counts each run once")


def underlying_runs(path, config):
    """The resolved folders of the trained runs behind ``path``: itself, or an ensemble's members, recursively."""
    members = config.get("member_runs") if config.get("model") == "ensemble" else None
    if not members:
        return {Path(path).resolve()}
    found = set()
    for member in members:
        try:
            member_config = json.loads((Path(member) / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            member_config = {}
        found |= underlying_runs(member, member_config if isinstance(member_config, dict) else {})
    return found


def check_classes(members):
    """The common class order (the first member's); InputError if the class sets differ."""
    classes = members[0].classes
    for member in members[1:]:
        if set(member.classes) != set(classes):
            raise InputError(f"runs predict different classes: '{members[0].name}' has {', '.join(classes)}, "
                             f"'{member.name}' has {', '.join(member.classes)}; combine runs of the same task")
    return classes


def align(members, split, classes, ids):
    """The members' rows for ``ids`` of ``split``, as a :class:`Combined`.

    Raises:
        InputError: an id is missing, or members disagree on its true label.
    """
    stacked = []
    first_rows = members[0].rows(split)
    reference = np.array([first_rows[i] for i in ids], dtype=np.int64)
    true = members[0].true[reference]
    for member in members:
        rows = member.rows(split)
        index = np.array([rows[i] for i in ids], dtype=np.int64)
        differ = np.flatnonzero(member.true[index] != true)
        if len(differ):
            utterance = ids[differ[0]]
            raise InputError(f"runs disagree on the true label of '{utterance}': "
                             f"'{members[0].name}' says {true[differ[0]]}, '{member.name}' says "
                             f"{member.true[index][differ[0]]} ({len(differ)} such utterances); were they "
                             f"trained on the same corpus and labels?")
        order = [member.classes.index(c) for c in classes]
        stacked.append(member.probabilities[index][:, order])
    return Combined(ids=np.asarray(ids, dtype=str), speakers=members[0].speakers[reference], true=true,
                    member_probabilities=np.stack(stacked))


def common_test_ids(members):
    """The test ids (first member's order); InputError unless every member has the same ones."""
    reference = members[0].rows("test")
    if not reference:
        raise InputError(f"'{members[0].name}' has no test rows in predictions.csv")
    for member in members[1:]:
        ids = member.rows("test")
        only_first, only_this = sorted(set(reference) - set(ids)), sorted(set(ids) - set(reference))
        if only_first or only_this:
            example = (only_first or only_this)[0]
            raise InputError(
                f"runs were tested on different utterances: '{members[0].name}' has {len(reference)} test "
                f"utterances, '{member.name}' {len(ids)}; {len(only_first)} only in the first, {len(only_this)} "
                f"only in the other (e.g. '{example}'); combine runs of the same test set and fold")
    return list(reference)


def common_val_ids(members):
    """Ids that are validation rows of every member (first member's order)."""
    shared = set(members[0].rows("val"))
    for member in members[1:]:
        shared &= set(member.rows("val"))
    return [i for i in members[0].rows("val") if i in shared]


def check_step(step):
    """The number of equal parts ``step`` divides 1 into; InputError unless it does (0, NaN, 0.3 do not)."""
    parts = round(1 / step) if 0 < step <= 1 else 0
    if not parts or abs(parts * step - 1) > 1e-9:
        raise InputError(f"--step must divide 1 into equal parts (e.g. 0.1, 0.05, 0.25), got {step}")
    return parts


def simplex_grid(count, step):
    """Every weight vector of ``count`` non-negative multiples of ``step`` summing to 1.

    Returns:
        (K, count) float array, K = C(1/step + count - 1, count - 1).
    """
    parts = check_step(step)
    points = math.comb(parts + count - 1, count - 1)
    if points > MAX_GRID_POINTS:
        raise InputError(f"a step of {step} for {count} runs gives {points} weight vectors (more than "
                         f"{MAX_GRID_POINTS}); use a larger --step or fewer runs")
    grid = []
    for bars in itertools.combinations(range(parts + count - 1), count - 1):  # stars and bars
        edges = np.array([-1, *bars, parts + count - 1])
        grid.append(np.diff(edges) - 1)
    return np.array(grid, dtype=np.float64) / parts


def unweighted_recalls(probabilities, true_index, num_classes):
    """UA of each candidate: probabilities (K, N, C), true_index (N,) -> (K,)."""
    correct = probabilities.argmax(axis=2) == true_index  # (K, N)
    onehot = np.eye(num_classes)[true_index]  # (N, C)
    support = onehot.sum(axis=0)
    recall = (correct.astype(np.float64) @ onehot) / np.maximum(support, 1)  # (K, C)
    return recall[:, support > 0].mean(axis=1)


def tune_weights(member_probabilities, true, classes, step=0.1):
    """Simplex weights maximizing UA of the weighted mean of the members' probabilities.

    Args:
        member_probabilities: (M, N, C) validation probabilities of M members.
        true: (N,) true labels of the validation rows.
        classes: the class order of the last axis.
        step: grid step.

    Returns:
        ``(weights (M,), ua)``; among equally good weight vectors the one closest to
        uniform weights (the least committed), then the first.
    """
    grid = simplex_grid(len(member_probabilities), step)
    index = {c: j for j, c in enumerate(classes)}
    true_index = np.array([index[c] for c in true])
    scores = np.concatenate([
        unweighted_recalls(np.einsum("km,mnc->knc", chunk, member_probabilities), true_index, len(classes))
        for chunk in np.array_split(grid, max(1, len(grid) // 500))])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    spread = np.round(((grid[best] - 1 / grid.shape[1]) ** 2).sum(axis=1), 9)  # float noise must not break ties
    choice = best[np.argmin(spread)]
    return grid[choice], float(scores[choice])


def combine_members(members, method, step=0.1):
    """Combine members on their common test rows, with weights from validation rows only.

    Args:
        members: :class:`Member` list (2 or more) of runs on the same test utterances.
        method: ``mean`` or ``weighted``.
        step: simplex grid step of ``weighted``.

    Returns:
        dict with ``classes``, ``weights`` (M,), ``val`` (:class:`Combined` or None:
        rows held out by every member), ``test`` (:class:`Combined`), ``val_ua``
        (of the combination on ``val``; optimistic for ``weighted``, which chose it there).
    """
    if method not in METHODS:
        raise InputError(f"unknown method '{method}'; expected one of: {', '.join(METHODS)}")
    classes = check_classes(members)
    test = align(members, "test", classes, common_test_ids(members))
    val_ids = common_val_ids(members)
    val = align(members, "val", classes, val_ids) if val_ids else None
    if method == "mean":
        weights = np.full(len(members), 1 / len(members))
    else:
        if val is None:
            counts = ", ".join(f"'{m.name}' {len(m.rows('val'))}" for m in members)
            raise InputError(f"--method weighted tunes weights on validation rows, but no utterance is a "
                             f"validation row of every run (val rows: {counts}); train the runs with the same "
                             f"--seed and --val-speakers, or use --method mean")
        weights, _ = tune_weights(val.member_probabilities, val.true, classes, step)
    for part in (val, test):
        if part is not None:
            part.probabilities = np.einsum("m,mnc->nc", weights, part.member_probabilities)
    val_ua = None
    if val is not None:
        predicted = np.asarray(classes)[val.probabilities.argmax(axis=1)]
        val_ua = evaluate_predictions(val.true, predicted, classes)["ua"]
    return {"classes": list(classes), "weights": weights, "val": val, "test": test, "val_ua": val_ua}


def member_description(config):
    """A short name of a member's model, e.g. ``attention-lstm-tanh`` or ``linear-svm``."""
    model = str(config.get("model", "unknown"))
    return f"{model}-{config['activation']}" if model.endswith("lstm") and config.get("activation") else model


def common_items(dicts):
    """The items that every dict has with the same value (e.g. the members' shared feature_meta)."""
    first, *rest = dicts
    return {key: value for key, value in first.items() if all(key in d and d[key] == value for d in rest)}


def cv_folds(members):
    """Fold folder names shared by CV-parent members, or None if no member is a CV parent.

    Raises:
        InputError: some members are CV parents and others are not, or their folds differ.
    """
    folds = [m.config.get("folds") for m in members]
    if all(f is None for f in folds):
        return None
    if any(f is None for f in folds):
        kinds = ", ".join(f"'{m.name}' ({'cross-validation' if f else 'single split'})"
                          for m, f in zip(members, folds))
        raise InputError(f"cannot combine a cross-validation run with a single-split run: {kinds}")
    for member, fold_names in zip(members[1:], folds[1:]):
        if list(fold_names) != list(folds[0]):
            raise InputError(f"runs have different folds: '{members[0].name}' has {len(folds[0])} "
                             f"({members[0].config.get('cv')}), '{member.name}' has {len(fold_names)} "
                             f"({member.config.get('cv')}); combine runs of the same --cv on the same data")
    return list(folds[0])


def config_of(members, classes, method, step):
    """config.json of the ensemble: the member runs, their models and seeds, the method."""
    seeds = [m.config.get("seed") for m in members]
    return {
        "model": "ensemble",
        "method": method,
        "step": step if method == "weighted" else None,
        "member_runs": [str(m.path.resolve()) for m in members],
        "member_models": [member_description(m.config) for m in members],
        "member_seeds": seeds,
        "seed": seeds[0] if len(set(map(str, seeds))) == 1 else None,
        "cv": members[0].config.get("cv"),
        "classes": list(classes),
        "data_files": {f"member{i}_{name}": value for i, m in enumerate(members)
                       for name, value in (m.config.get("data_files") or {}).items()},
        "feature_meta": common_items([m.config.get("feature_meta") or {} for m in members]),
        "run_format": RUN_FORMAT,
        **environment_info(),
    }


def write_combination(run, result, members, config):
    """Write config.json, predictions.csv (val then test rows) and metrics.json of one combination."""
    classes = result["classes"]
    run.write_config({**config, "out": str(run), "weights": result["weights"].round(6)})
    parts = [(name, result[name]) for name in ("val", "test") if result[name] is not None]
    predicted = {name: np.asarray(classes)[part.probabilities.argmax(axis=1)] for name, part in parts}
    run.write_predictions(
        np.concatenate([p.ids for _, p in parts]),
        np.concatenate([p.speakers for _, p in parts]), np.concatenate([[name] * len(p.ids) for name, p in parts]),
        np.concatenate([p.true for _, p in parts]), np.concatenate([predicted[name] for name, _ in parts]),
        np.concatenate([p.probabilities for _, p in parts]), classes)
    test = result["test"]
    metrics = evaluate_predictions(test.true, predicted["test"], classes)
    metrics["n_test"] = metrics.pop("n")
    metrics["best_epoch"] = None
    metrics["val_ua"] = result["val_ua"]
    metrics["n_val"] = 0 if result["val"] is None else len(result["val"].ids)
    metrics["weights"] = result["weights"].round(6).tolist()
    metrics["member_test_ua"] = [
        evaluate_predictions(test.true, np.asarray(classes)[p.argmax(axis=1)], classes)["ua"]
        for p in test.member_probabilities]
    run.write_metrics(metrics)
    return metrics


def combine_folds(parents, folds, method, step):
    """Combine CV parents fold by fold; each fold's weights come from its own validation rows.

    Returns:
        [(fold name, members, result), ...], all checked before anything is written.
    """
    combined = []
    for fold in folds:
        members = [read_member(parent.path / fold) for parent in parents]
        combined.append((fold, members, combine_members(members, method, step)))
    return combined


def write_folds(parents, combined, run, method, step, quiet=False):
    """Fold folders fold-KK in ``run``, then the pooled test rows and scores in ``run`` itself."""
    fold_runs, fold_weights = [], []
    for fold, members, result in combined:
        fold_run = RunFolder(run.path / fold)
        fold_run.path.mkdir()
        write_combination(fold_run, result, members, config_of(members, result["classes"], method, step))
        fold_runs.append(fold_run)
        fold_weights.append(result["weights"].round(6).tolist())
        if not quiet:
            val_rows = 0 if result["val"] is None else len(result["val"].ids)
            val_ua = "-" if result["val_ua"] is None else f"{100 * result['val_ua']:.1f}%"
            print(f"{fold_run}: weights {', '.join(f'{w:.2f}' for w in result['weights'])} "
                  f"(val UA {val_ua} on {val_rows} rows)", file=sys.stderr)
    classes = check_classes(parents)
    metrics = write_pooled_run(run, fold_runs, classes)
    metrics["fold_weights"] = fold_weights  # each fold's config.json names its own
    run.write_metrics(metrics)
    run.write_config({**config_of(parents, classes, method, step), "out": str(run),
                      "folds": [fold for fold, _, _ in combined]})
    return metrics


def write_ensemble(run_dirs, out, method="mean", step=0.1, overwrite=False, quiet=False):
    """Combine finished runs (single-split runs on the same test set, or CV parents of the same folds)
    into the run folder ``out``, like ``ensemble.py``; every member is checked before anything is written.

    Returns:
        ``(metrics, title)`` of the combination's test rows.
    """
    # Members: every run checked before anything is written.
    parents = [read_member(path) for path in run_dirs]
    check_distinct(parents)
    check_classes(parents)
    folds = cv_folds(parents)

    # Combine: weights from validation rows only, fold by fold for cross-validation parents.
    if folds:
        combined = combine_folds(parents, folds, method, step)
    else:
        result = combine_members(parents, method, step)

    # Save: a run folder like a training run's (fold-KK sub-folders for cross-validation).
    run = RunFolder.create(out, overwrite)
    out = run.path
    try:
        if folds:
            metrics = write_folds(parents, combined, run, method, step, quiet)
            title = f"{out}: pooled test predictions of {len(folds)} folds, {method} of {len(parents)} runs"
        else:
            metrics = write_combination(run, result, parents, config_of(parents, result["classes"], method, step))
            title = f"{out}: test set, {method} of {len(parents)} runs, weights " + \
                ", ".join(f"{w:.2f}" for w in result["weights"])
    except BaseException:
        run.remove()
        raise
    run.mark_complete()
    return metrics, title
