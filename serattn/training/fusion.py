"""Late fusion: combine the class probabilities of several runs on the same utterances.

``mean`` averages the members' ``p_<class>`` columns; ``weighted`` interpolates
them with weights on a grid over the simplex (steps of 0.1 by default) chosen to
maximize UA on the validation rows, i.e. on utterances that every member held out
of its training. Test labels are never looked at before the weights are fixed.
Cross-validation parents are combined fold by fold, each fold tuning its own
weights on its own validation speakers. Dimensional runs have their predicted values
combined (``weighted``: on validation CCC), multi-task runs their probabilities and values
with the same weights (``weighted``: CCC and UA weighted as the runs' loss).
"""

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np

from serattn.errors import InputError
from serattn.analysis.metrics import evaluate_predictions
from serattn.runs.folder import CONFIG_FILE, PREDICTIONS_FILE, file_sha256
from serattn.runs.reading import open_run
from serattn.runs.record import RunConfig, read_record

METHODS = ("mean", "weighted")
MAX_GRID_POINTS = 200_000
SUM_TOLERANCE = 1e-3  # probabilities are written with 6 decimals


@dataclasses.dataclass
class SavedRows:
    """A member run's predictions.csv rows: which utterance, speaker and split each row is."""

    path: Path
    config: dict
    ids: np.ndarray  # (N,) str
    speakers: np.ndarray  # (N,) str
    split: np.ndarray  # (N,) str

    @property
    def name(self):
        return str(self.path)

    @property
    def record(self):
        """The member's config.json, typed (:class:`~serattn.runs.record.RunConfig`)."""
        return RunConfig.of(self.config)

    def rows(self, split):
        """{id: row index} of the rows of one split."""
        return {utterance: i for i, utterance in enumerate(self.ids) if self.split[i] == split}


@dataclasses.dataclass
class Member(SavedRows):
    """One run's saved predictions, probabilities in its own class order."""

    classes: tuple  # class labels, order of ``probabilities`` columns
    true: np.ndarray  # (N,) str
    probabilities: np.ndarray  # (N, C) float64


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
    run.refuse_dimensional("ensemble.py")
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
    record = RunConfig.of(config)
    members = record.member_runs if record.recorded_model == "ensemble" else None
    if not members:
        return {Path(path).resolve()}
    found = set()
    for member in members:
        found |= underlying_runs(member, read_record(member))
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
    return RunConfig.of(config).describe_model()


def common_items(dicts):
    """The items that every dict has with the same value (e.g. the members' shared feature_meta)."""
    first, *rest = dicts
    return {key: value for key, value in first.items() if all(key in d and d[key] == value for d in rest)}


def cv_folds(members):
    """Fold folder names shared by CV-parent members, or None if no member is a CV parent.

    Raises:
        InputError: some members are CV parents and others are not, or their folds differ.
    """
    folds = [m.record.folds if m.record.is_folded else None for m in members]
    if all(f is None for f in folds):
        return None
    if any(f is None for f in folds):
        kinds = ", ".join(f"'{m.name}' ({'cross-validation' if f else 'single split'})"
                          for m, f in zip(members, folds))
        raise InputError(f"cannot combine a cross-validation run with a single-split run: {kinds}")
    for member, fold_names in zip(members[1:], folds[1:]):
        if list(fold_names) != list(folds[0]):
            raise InputError(f"runs have different folds: '{members[0].name}' has {len(folds[0])} "
                             f"({members[0].record.cv}), '{member.name}' has {len(fold_names)} "
                             f"({member.record.cv}); combine runs of the same --cv on the same data")
    return list(folds[0])


# --- dimensional and multi-task runs: the members' values (and probabilities) combined ---------------


@dataclasses.dataclass
class ValueMember(SavedRows):
    """One dimensional run's saved predictions: true and predicted values per dimension; a multi-task
    run's class probabilities too."""

    dimensions: tuple
    true: np.ndarray  # (N, K) float64
    predicted: np.ndarray  # (N, K) float64
    classes: tuple = ()  # a multi-task run's class labels, order of ``probabilities`` columns
    true_labels: np.ndarray | None = None  # (N,) str, multi-task only
    probabilities: np.ndarray | None = None  # (N, C) float64, multi-task only


def is_dimensional(path):
    """Whether the finished run folder ``path`` predicts numeric targets (arousal, valence...)."""
    return bool(open_run(path).dimensions)


def read_value_member(path):
    """A dimensional or multi-task run's predictions.csv as a :class:`ValueMember`; InputError for
    missing value or probability columns."""
    run = open_run(path)
    rows = run.prediction_rows()
    dims = run.dimensions
    source = run.file(PREDICTIONS_FILE)
    missing = [f"{p}{d}" for d in dims for p in ("true_", "pred_") if rows and f"{p}{d}" not in rows[0]]
    if missing or not rows:
        raise InputError(f"'{source}' lacks the column(s) {', '.join(missing) or 'rows'} of its dimensions")
    try:
        true = np.array([[float(r[f"true_{d}"]) for d in dims] for r in rows])
        predicted = np.array([[float(r[f"pred_{d}"]) for d in dims] for r in rows])
    except ValueError:
        raise InputError(f"the true_/pred_ columns of '{source}' are not numbers") from None
    classes, labels, probabilities = (), None, None
    if run.record.is_multitask:  # multi-task: its class probabilities are combined too
        classes = run.classes
        missing = [f"p_{c}" for c in classes if f"p_{c}" not in rows[0]] + [k for k in ("true",) if k not in rows[0]]
        if missing:
            raise InputError(f"'{source}' lacks the column(s) {', '.join(missing)} of the multi-task run's classes")
        try:
            probabilities = np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows])
        except ValueError:
            raise InputError(f"the p_<class> columns of '{source}' are not numbers") from None
        if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0) \
                or np.max(np.abs(probabilities.sum(axis=1) - 1)) > SUM_TOLERANCE:
            raise InputError(f"the p_<class> columns of '{source}' are not probabilities (finite, >= 0, "
                             f"summing to 1 per row)")
        labels = np.array([r["true"] for r in rows])
    return ValueMember(path=run.path, config=run.config, dimensions=dims,
                       ids=np.array([r["id"] for r in rows]), speakers=np.array([r.get("speaker", "") for r in rows]),
                       split=np.array([r["split"] for r in rows]), true=true, predicted=predicted,
                       classes=classes, true_labels=labels, probabilities=probabilities)


def concordances(true, predicted):
    """Lin's CCC of each candidate and dimension: true (N, K), predicted (G, N, K) -> (G, K), NaN where undefined
    (the vectorized :func:`serattn.targets.concordance`)."""
    mean_t, mean_p = true.mean(axis=0), predicted.mean(axis=1)  # (K,), (G, K)
    covariance = ((true - mean_t) * (predicted - mean_p[:, None, :])).mean(axis=1)
    denominator = true.var(axis=0) + predicted.var(axis=1) + (mean_t - mean_p) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * covariance / np.where(denominator > 0, denominator, 1), np.nan)


def value_selection(members):
    """{metric: weight} of the validation score weighted ensembles maximize: each dimension's CCC
    (``ccc_arousal``...) and, for multi-task runs, UA, weighted as the first member's loss, as its epochs were chosen."""
    from serattn.targets import selection_weights

    record = members[0].record
    return selection_weights(record.target, record.loss_weights)


def tune_value_weights(val, classes, selection, step=0.1):
    """Simplex weights maximizing the validation score ``selection`` (mean CCC; UA too in a multi-task run).

    Args:
        val: the validation part of :func:`combine_value_members` (``true``, ``member_predicted``...).
        classes: a multi-task run's classes, () otherwise.
        selection: {metric: weight}, e.g. ``{"ccc_arousal": 1, "ccc_valence": 1, "ua": 1}``.

    Returns:
        ``(weights (M,), score)``; ties broken toward uniform weights, as :func:`tune_weights` does.
    """
    member_predicted = val["member_predicted"]
    grid = simplex_grid(len(member_predicted), step)
    dims = [key[len("ccc_"):] for key in selection if key.startswith("ccc_")]
    columns = [list(val["dimensions"]).index(d) for d in dims]
    if classes:
        index = {c: j for j, c in enumerate(classes)}
        true_index = np.array([index.get(c, -1) for c in val["true_labels"]])
    scores = []
    for chunk in np.array_split(grid, max(1, len(grid) // 500)):
        ccc = concordances(val["true"][:, columns], np.einsum("km,mnd->knd", chunk, member_predicted[:, :, columns]))
        parts = [selection[f"ccc_{d}"] * np.nan_to_num(ccc[:, k], nan=-1.0) for k, d in enumerate(dims)]
        if "ua" in selection and classes:
            probabilities = np.einsum("km,mnc->knc", chunk, val["member_probabilities"])
            known = true_index >= 0
            parts.append(selection["ua"] * unweighted_recalls(probabilities[:, known], true_index[known], len(classes)))
        scores.append(np.sum(parts, axis=0) / sum(selection.values()))
    scores = np.concatenate(scores)
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    spread = np.round(((grid[best] - 1 / grid.shape[1]) ** 2).sum(axis=1), 9)
    choice = best[np.argmin(spread)]
    return grid[choice], float(scores[choice])


def combine_value_members(members, method="mean", step=0.1):
    """Combine dimensional (or multi-task) members on their common test rows (and common validation rows):
    values and class probabilities averaged with the same weights, uniform (``mean``) or chosen on the
    validation rows (``weighted``: mean CCC, with UA as the runs' loss weights say for multi-task runs).

    Returns:
        dict with ``dimensions``, ``classes`` (() unless multi-task), ``weights`` (M,), ``val_score``, and
        ``val``/``test``: each None or a dict of ``ids``, ``speakers``, ``true`` (N, K), ``predicted`` (N, K),
        ``member_predicted`` (M, N, K) and, multi-task, ``true_labels`` (N,), ``probabilities`` (N, C),
        ``member_probabilities`` (M, N, C).

    Raises:
        InputError: members of other dimensions or classes, other test utterances, other true values or
            labels; ``weighted`` without common validation rows.
    """
    if method not in METHODS:
        raise InputError(f"unknown method '{method}'; expected one of: {', '.join(METHODS)}")
    dims = members[0].dimensions
    classes = members[0].classes
    for member in members[1:]:
        if member.dimensions != dims:
            raise InputError(f"runs predict different dimensions: '{members[0].name}' has {', '.join(dims)}, "
                             f"'{member.name}' has {', '.join(member.dimensions)}; combine runs of the same targets")
        if set(member.classes) != set(classes):
            raise InputError(f"runs predict different classes: '{members[0].name}' has {', '.join(classes) or 'none'}, "
                             f"'{member.name}' has {', '.join(member.classes) or 'none'}; combine runs of the same targets")
    parts = {"test": common_test_ids(members), "val": common_val_ids(members)}
    combined = {"dimensions": dims, "classes": classes}
    for split, ids in parts.items():
        if not ids:
            combined[split] = None
            continue
        index = [np.array([m.rows(split)[i] for i in ids]) for m in members]
        true = members[0].true[index[0]]
        for member, rows in zip(members[1:], index[1:]):
            if not np.allclose(member.true[rows], true, atol=1e-5) or \
                    (classes and np.any(member.true_labels[rows] != members[0].true_labels[index[0]])):
                raise InputError(f"runs disagree on the true values of their {split} utterances: '{members[0].name}' "
                                 f"and '{member.name}'; were they trained on the same corpus?")
        part = {"ids": np.asarray(ids, dtype=str), "speakers": members[0].speakers[index[0]], "true": true,
                "dimensions": dims, "member_predicted": np.stack([m.predicted[rows] for m, rows in zip(members, index)])}
        if classes:
            part["true_labels"] = members[0].true_labels[index[0]]
            part["member_probabilities"] = np.stack([m.probabilities[rows][:, [m.classes.index(c) for c in classes]]
                                                     for m, rows in zip(members, index)])
        combined[split] = part
    weights, combined["val_score"] = np.full(len(members), 1 / len(members)), None
    if method == "weighted":
        if combined["val"] is None:
            counts = ", ".join(f"'{m.name}' {len(m.rows('val'))}" for m in members)
            raise InputError(f"--method weighted tunes weights on validation rows, but no utterance is a "
                             f"validation row of every run (val rows: {counts}); train the runs with the same "
                             f"--seed and --val-speakers, or use --method mean")
        weights, combined["val_score"] = tune_value_weights(combined["val"], classes, value_selection(members), step)
    combined["weights"] = weights
    for part in (combined["val"], combined["test"]):
        if part is not None:
            part["predicted"] = np.einsum("m,mnd->nd", weights, part["member_predicted"])
            if classes:
                part["probabilities"] = np.einsum("m,mnc->nc", weights, part["member_probabilities"])
    return combined
