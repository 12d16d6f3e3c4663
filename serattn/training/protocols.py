"""Speaker-independent evaluation protocols: cross-validation folds and their pooling.

Each fold tests on speakers that training never heard; the folds' test
predictions are pooled for one confusion matrix, and UA/WA are reported both over
the pooled predictions and as mean +- std over folds (the two differ, and papers
mix them up, so both are named).

Augmented copies (``extract_features.py --augment``) share their source's speaker
and split, so every split here puts them where their source goes; they are then
dropped from every test and validation set. Folds and validation speakers are drawn
from the original utterances, so a run with copies tests and validates on exactly
the utterances of the same run without them, and trains on its fitting speakers'
originals and their copies only.

Two protocols follow a corpus's own structure: ``--cv leave-one-group-out --group-by
COLUMN`` holds out one value of a manifest column per fold (IEMOCAP's five sessions),
refused when a speaker lies in several groups, which would put a test speaker into
training; ``--split-by COLUMN`` trains, validates and tests on the partitions the
corpus defines (MSP-Podcast's Train, Development, Test1, Test2), see :func:`partition_roles`.
"""

import csv
import dataclasses
import gc
import os
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import threadpoolctl
from sklearn.model_selection import (GroupKFold, GroupShuffleSplit, LeaveOneGroupOut, StratifiedGroupKFold,
                                     StratifiedKFold)
from sklearn.utils.class_weight import compute_class_weight

from serattn.runs import folder as runs
from serattn.runs.folder import RunFolder, check_output, check_unlocked
from serattn.runs.reading import open_run
from serattn.runs.record import RunMetrics
from serattn.features.feature_set import check_same_features, load_feature_set
from serattn.features.label_map import apply_label_map, describe_dropped, read_label_map
from serattn.features.normalization import Normalization
from serattn.config import parse_class_weight_spec, validation_speaker_count
from serattn.errors import InputError
from serattn.analysis.attention import attention_metrics
from serattn.analysis.corpus import speaker_normalization_warning
from serattn.analysis.metrics import evaluate_predictions, headline, scores_by_group
from serattn.targets import dimensions_of_rows, evaluate_value_rows

# Partition names of --split-by (case-insensitive) -> role; any name starting with "test" is a test partition.
PARTITION_ROLES = {"train": "train", "training": "train", "development": "validation", "dev": "validation",
                   "validation": "validation", "valid": "validation", "val": "validation"}


def partition_roles(values, column, source, needed=("train", "test")):
    """(N,) role of each utterance, ``train``, ``validation`` or ``test``, from its partition name.

    ``Train``/``train`` train, ``Development``/``dev``/``validation`` choose the model (the
    epoch, the grid point), ``Test1``, ``Test2``, ``test``... are tested on, pooled.

    Raises:
        InputError: a partition name of none of these kinds, or none of a ``needed`` role.
    """
    values = np.asarray(values, dtype=str)
    names = np.unique(values)
    roles = {name: PARTITION_ROLES.get(name.lower(), "test" if name.lower().startswith("test") else None)
             for name in names}
    unknown = [name or "(empty)" for name, role in roles.items() if role is None]
    if unknown:
        raise InputError(f"--split-by {column}: '{source}' has partition(s) {', '.join(unknown)}; expected Train, "
                         f"Development (or validation) and Test names (Test1, Test2, test)")
    result = np.array([roles[v] for v in values], dtype=object).astype(str)
    for role in needed:
        if role not in result:
            raise InputError(f"--split-by {column}: '{source}' has no {role} partition (values: {', '.join(names)})")
    return result


def load_train_test(data=None, train=None, test=None, cv=False, padding="auto", prepare=None, split_by=None,
                    group_by=None, label_map=None, drop_unmapped=False):
    """The feature sets of an experiment, checked, as the training scripts take them.

    Args:
        data: one feature set whose ``split`` says train/test (any split with ``cv``).
        train, test: two feature sets instead of ``data``.
        cv: cross-validation: all of ``data`` is returned as the training set.
        padding: where padded input arrays carry their zeros (see load_feature_set).
        prepare: optional ``f(feature_set, path) -> feature_set`` applied on load
            (static models turn frames into one row per utterance).
        split_by: a column of ``data`` naming its partitions (see :func:`partition_roles`):
            the training set is its train and validation partitions, the test set the rest.
        group_by: the column of ``--cv leave-one-group-out``, checked to exist on load.
        label_map: a label map file (:mod:`serattn.features.label_map`): every set's labels
            are mapped to its common classes on load; the training set's ``meta["label_map"]``
            records the map and the utterances dropped from each file.
        drop_unmapped: drop labels the map does not name instead of refusing them.

    Returns:
        ``(train, test or None, sources, classes)``; sources maps data/train/test
        to paths, classes are the sorted training labels. The test set holds
        original utterances only (augmented copies dropped).
    """
    labels = read_label_map(label_map) if label_map else None
    records = {}

    def load(path, role):
        feature_set = load_feature_set(path, padding)
        feature_set = prepare(feature_set, path) if prepare else feature_set
        if labels is not None:
            feature_set, records[role] = apply_label_map(labels, feature_set, path, drop_unmapped)
            dropped = describe_dropped(records[role], role)
            if dropped:
                print(dropped, file=sys.stderr)
        return feature_set

    def recorded(feature_set):
        """The training set with the label map and its drops in its meta (config.json and metrics.json read it)."""
        if labels is None:
            return feature_set
        record = {"file": labels.path, "sha256": labels.sha256, "classes": list(labels.classes or []) or None,
                  "drop_unmapped": drop_unmapped, "sets": records}
        return dataclasses.replace(feature_set, meta={**feature_set.meta, "label_map": record})

    if data:
        feature_set, sources = recorded(load(data, "data")), {"data": data}
        for flag, column in (("--group-by", group_by), ("--split-by", split_by)):
            if column:
                feature_set.column(column, flag, data)
        if cv:
            return feature_set, None, sources, check_classes(feature_set, None, data)
        if split_by:
            is_test = partition_roles(feature_set.column(split_by, "--split-by"), split_by, data) == "test"
            train_set, test_set = feature_set.subset(~is_test), feature_set.subset(is_test).originals()
            warn_shared_speakers(train_set, test_set, split_by)
            return train_set, test_set, sources, check_classes(train_set, test_set, data)
        if feature_set.split is None:
            raise InputError(f"'{data}' has no 'split' array; give --train and --test, or use --cv")
        unknown = sorted(str(s) for s in set(feature_set.split) - {"train", "test"})
        if unknown:
            raise InputError(f"'{data}' has split values {', '.join(unknown)}; expected only train and test")
        train_set, test_set = (feature_set.subset(feature_set.split == s) for s in ("train", "test"))
        test_set = test_set.originals()
        if len(train_set) == 0 or len(test_set) == 0:
            raise InputError(f"'{data}' needs utterances of both splits, train and test")
    else:
        train_set, test_set = load(train, "train"), load(test, "test").originals()
        train_set, sources = recorded(train_set), {"train": train, "test": test}
        check_same_features(train_set, test_set, train, test)
    return train_set, test_set, sources, check_classes(train_set, test_set, sources.get("test", data))


def scores_per_test_set(experiment, test, predicted, classes):
    """metrics.json's ``test_sets`` (``{partition: scores}``) with ``--split-by``: each test partition scored on
    its own (MSP-Podcast's Test1 and Test2) beside the pooled figures; None otherwise."""
    column = experiment.data.split_by
    if not column:
        return None
    return scores_by_group(test.labels, predicted, test.column(column, "--split-by"), classes)


def warn_shared_speakers(train, test, column):
    """One line when the corpus's partitions share speakers: the test is then not speaker-independent."""
    shared = sorted(set(train.speakers) & set(test.speakers))
    if shared:
        print(f"warning: --split-by {column}: {len(shared)} speaker(s) are in both training and test partitions "
              f"(first: {shared[0]}); the test is not speaker-independent", file=sys.stderr)


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


def class_weights(spec, classes, labels):
    """Loss weight per class, in ``classes`` order, for LSTM and static models alike.

    Args:
        spec: ``balanced`` (n / (classes * count), from ``labels``), ``none``, or
            ``A=1.1,E=0.5,...`` (unnamed classes weigh 1).
        classes: class labels in model order.
        labels: (N,) labels of the training utterances.

    Returns:
        (C,) float64 weights.
    """
    spec = parse_class_weight_spec(spec)
    if spec == "none":
        return np.ones(len(classes))
    if spec == "balanced":
        return compute_class_weight("balanced", classes=np.asarray(classes), y=np.asarray(labels))
    unknown = [name for name in spec if name not in classes]
    if unknown:
        raise InputError(f"--class-weight names class '{unknown[0]}', which the training set does not "
                         f"have; classes: {', '.join(classes)}")
    return np.array([spec.get(c, 1.0) for c in classes])


VALIDATION_DRAWS = 100  # draws of validation speakers tried, in the seed's order, for one that keeps every class


def split_validation_speakers(speakers, spec, seed, labels=None):
    """Pick validation speakers among the training speakers.

    A fraction or a count is a random draw of speakers (scikit-learn's GroupShuffleSplit
    with ``seed``). Given ``labels``, the draw must leave every class some training
    utterances: on a corpus where most speakers have one class, the first draw may take
    every speaker of a class, so the next draws of the same seeded sequence are tried in
    turn (up to :data:`VALIDATION_DRAWS`); the first draw is kept whenever it already
    keeps every class, as before this check.

    Args:
        speakers: (N,) speaker of each training utterance.
        spec: a fraction of the speakers (``"0.2"``), a count (``"2"``), a comma
            list of speaker ids, or ``"0"``/``"none"`` for no validation set.
        seed: seed of the random choice.
        labels: (N,) class of each utterance, or None to take the first draw as it is.

    Returns:
        (N,) bool, True for validation utterances.
    """
    speakers = np.asarray(speakers)
    unique = np.unique(speakers)
    if spec in ("0", "none", ""):
        return np.zeros(len(speakers), dtype=bool)
    size = validation_speaker_count(spec)
    if size is None:
        chosen = [s.strip() for s in spec.split(",") if s.strip()]
        unknown = [s for s in chosen if s not in unique]
        if unknown:
            raise InputError(f"--val-speakers: speaker(s) {', '.join(unknown)} are not among the "
                             f"training speakers ({', '.join(unique[:20])}{'...' if len(unique) > 20 else ''})")
        is_val = np.isin(speakers, chosen)
    else:
        if len(unique) < 2:
            raise InputError(f"--val-speakers: the training set has {len(unique)} speaker, so no "
                             f"speaker-disjoint validation set is possible; use --val-speakers 0")
        count = int(size) if size >= 1 else max(1, round(size * len(unique)))
        is_val = _draw_validation_speakers(speakers, count, seed, labels, spec)
    if is_val.all():
        raise InputError("--val-speakers leaves no training speakers; choose fewer validation speakers")
    return is_val


def _draw_validation_speakers(speakers, count, seed, labels, spec):
    """(N,) bool of the first of the seed's draws of ``count`` speakers that keeps every class in training."""
    # draw k of n_splits=K is draw k of any larger K (one seeded permutation per draw), so draw 0 is the old choice
    splitter = GroupShuffleSplit(n_splits=VALIDATION_DRAWS if labels is not None else 1, test_size=count,
                                 random_state=seed)
    first = None
    for draw, (_, val_index) in enumerate(splitter.split(speakers, groups=speakers)):
        is_val = np.zeros(len(speakers), dtype=bool)
        is_val[val_index] = True
        if first is None:
            first = is_val
        if labels is None or set(np.asarray(labels)[~is_val]) == set(labels):
            if draw:
                print(f"--val-speakers {spec}: draw {draw + 1} of the seed's validation speakers keeps every class "
                      f"in training (the earlier ones took every speaker of a class)", file=sys.stderr)
            return is_val
    return first  # no draw keeps every class: hold_out_validation names the classes left without training


def hold_out_validation(train, classes, spec, seed, out, split_by=None):
    """Split ``train`` into (fit, validation) feature sets by speaker (see split_validation_speakers).

    With ``split_by`` the corpus's validation partition (Development) is the validation
    set instead, and ``spec`` is used only when the column has no validation partition.

    The validation speakers are drawn among the original utterances, as without
    augmented copies; the copies of fitting speakers stay in the fit set, those of
    validation speakers are dropped. InputError when holding out the validation
    speakers leaves a class without training utterances: the model could never
    predict it.
    """
    originals = train.originals()
    roles = partition_roles(train.column(split_by, "--split-by"), split_by, out, ("train",)) if split_by else None
    if roles is not None and "validation" in roles:
        is_val = roles == "validation"
    else:  # no --split-by, or a corpus without a validation partition: validation speakers drawn
        is_val = split_validation_speakers(originals.speakers, spec, seed, originals.labels)
        val_speakers = np.unique(originals.speakers[is_val])
        is_val = np.isin(train.speakers, val_speakers)
    fit_set, val_set = train.subset(~is_val), train.subset(is_val).originals()
    missing = sorted(set(classes) - {str(c) for c in fit_set.labels})
    if missing:
        tried = f" (none of {VALIDATION_DRAWS} draws of {spec} keeps every class)" \
            if roles is None and validation_speaker_count(spec) is not None else ""
        raise InputError(f"class(es) {', '.join(missing)} have no training utterances in '{out}' once "
                         f"validation speakers are held out{tried}; choose other --val-speakers or merge classes")
    return fit_set, val_set


def split_and_normalize(experiment, train, test, classes, out):
    """The sets of one run: validation speakers held out of ``train``, normalization fitted
    on the remaining (fit) speakers only and applied to every set.

    Returns:
        ``(fit_set, val_set, test, normalization)``.
    """
    needed = classes if experiment.model.predicts_classes else ()  # a purely dimensional run needs no class
    fit_set, val_set = hold_out_validation(train, needed, experiment.data.val_speakers, experiment.seed, out,
                                           experiment.data.split_by)
    normalization = Normalization.fit(fit_set, experiment.data.norm)
    fit_set, val_set, test = (normalization.apply(fs) for fs in (fit_set, val_set, test))
    return fit_set, val_set, test, normalization


def speaker_folds(speakers, protocol, folds=None, seed=None, labels=None, attribute=None, repeats=1,
                  groups=None):
    """(train index, test index) pairs whose test speakers never occur in training.

    ``kfold-speakers`` shuffles the speakers with ``seed`` before dealing them into
    ``folds`` folds (scikit-learn's GroupKFold sorts them, which on RAVDESS, odd actors
    male and even female, can give single-gender folds); ``seed=None`` keeps that
    unshuffled order.

    Args:
        speakers: (N,) speaker of each utterance.
        protocol: ``loso``, ``kfold-speakers`` or ``leave-one-group-out``.
        folds: K of kfold-speakers.
        seed: shuffles the speakers (kfold-speakers); None: no shuffle.
        labels: (N,) classes: balance the folds' class counts (StratifiedGroupKFold).
        attribute: {speaker: value}: balance the folds by a speaker attribute (e.g. gender).
        repeats: R > 1 repeats the K folds with R shuffles; repeat r's folds are pairs
            ``r*K`` to ``r*K + K - 1``.
        groups: ``(values, column)``: leave-one-group-out's (N,) group of each utterance
            and the column they come from (see :func:`check_groups`).

    Returns:
        A list of (train index, test index), ``K * R`` long for kfold-speakers.
    """
    speakers = np.asarray(speakers)
    if protocol == "leave-one-group-out":
        values, column = groups
        check_groups(speakers, values, column)
        return list(LeaveOneGroupOut().split(speakers, groups=values))
    unique = np.unique(speakers)
    if len(unique) < 2 or (folds and folds > len(unique)):
        raise InputError(f"--cv {protocol}{' ' + str(folds) if folds else ''} needs at least "
                         f"{folds or 2} speakers; the data has {len(unique)}")
    if protocol == "loso":
        return list(LeaveOneGroupOut().split(speakers, groups=speakers))
    pairs = []
    for repeat in range(repeats):
        state = None if seed is None else int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0])
        with warnings.catch_warnings():  # a class or attribute value rarer than K folds: balanced as far as it goes
            warnings.simplefilter("ignore", UserWarning)
            if attribute is not None:
                values = np.array([str(attribute[s]) for s in unique])
                splitter = StratifiedKFold(n_splits=folds, shuffle=state is not None, random_state=state)
                tested = [np.isin(speakers, unique[test]) for _, test in splitter.split(unique, values)]
                pairs += [(np.flatnonzero(~is_test), np.flatnonzero(is_test)) for is_test in tested]
            elif labels is not None:
                splitter = StratifiedGroupKFold(n_splits=folds, shuffle=state is not None, random_state=state)
                pairs += list(splitter.split(speakers, np.asarray(labels), groups=speakers))
            else:
                splitter = GroupKFold(n_splits=folds, shuffle=state is not None, random_state=state)
                pairs += list(splitter.split(speakers, groups=speakers))
    return pairs


def check_groups(speakers, groups, column):
    """Refuse groups that would let a test speaker train: every speaker must lie in one group.

    Raises:
        InputError: an utterance without a group, fewer than 2 groups, or a speaker in several
            groups (naming the speaker and two of its groups).
    """
    groups = np.asarray(groups, dtype=str)
    if np.any(groups == ""):
        raise InputError(f"--group-by {column}: {int(np.sum(groups == ''))} utterance(s) have no '{column}' value "
                         f"(first: speaker '{speakers[np.flatnonzero(groups == '')[0]]}')")
    if len(np.unique(groups)) < 2:
        raise InputError(f"--cv leave-one-group-out needs at least 2 values of '{column}'; the data has "
                         f"{len(np.unique(groups))}")
    for speaker in np.unique(speakers):
        spans = np.unique(groups[speakers == speaker])
        if len(spans) > 1:
            raise InputError(f"--group-by {column}: speaker '{speaker}' is in several groups ('{spans[0]}', "
                             f"'{spans[1]}'), so a held-out group's speaker would also train; group by a column "
                             f"that holds each speaker whole, or use --cv loso")


def speaker_attribute(data, column):
    """{speaker: value} of a speaker attribute for ``--stratify-speakers-by COLUMN``.

    RAVDESS's ``gender`` comes from the actor number (odd male, even female); any other
    column is read from the feature set's columns (CREMA-D's ``gender``, IEMOCAP's) or
    else from the CSV manifest the features were extracted from, and must hold one value
    per speaker.
    """
    speakers = sorted({str(s) for s in data.speakers})
    if data.meta.get("corpus") == "ravdess" and column == "gender":
        return {s: "male" if int(s.rsplit("_", 1)[-1]) % 2 else "female" for s in speakers}
    if column in data.columns:  # carried in the feature set (recipes, manifests extracted since columns were kept)
        rows = [{"speaker": str(s), column: str(v)} for s, v in zip(data.speakers, data.columns[column])]
        return _one_value_per_speaker(rows, column, "the feature set")
    manifest = data.meta.get("manifest")
    if not manifest or not Path(manifest).is_file():
        raise InputError(f"--stratify-speakers-by {column}: the feature set was not extracted from a CSV manifest "
                         f"(or it has moved: '{manifest}'); use 'classes', or 'gender' on RAVDESS")
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or column not in rows[0]:
        raise InputError(f"--stratify-speakers-by: manifest '{manifest}' has no column '{column}'; columns: "
                         f"{', '.join(rows[0]) if rows else 'none'}")
    values = _one_value_per_speaker(rows, column, f"'{manifest}'")
    missing = [s for s in speakers if s not in values]
    if missing:
        raise InputError(f"--stratify-speakers-by: speaker(s) {', '.join(missing[:5])} are not in manifest "
                         f"'{manifest}'")
    return {s: values[s] for s in speakers}


def _one_value_per_speaker(rows, column, source):
    values = {}
    for row in rows:
        if values.setdefault(row["speaker"], row[column]) != row[column]:
            raise InputError(f"--stratify-speakers-by: column '{column}' of {source} has several values for "
                             f"speaker '{row['speaker']}' ('{values[row['speaker']]}', '{row[column]}'); it must "
                             f"describe the speaker")
    return values


def run_seeds(experiment, train, test, classes, data_files, resume=None):
    """One run per seed of ``experiment.seeds`` (sibling folders ``OUT-seedK`` when there are several).

    Each seed is a new experiment (:meth:`~serattn.experiment.Experiment.with_seed`), run
    as a cross-validation (``data.cv``: fold folders ``fold-KK`` pooled into the seed's
    folder) or one train/test run. The single runs of every seed and fold go to
    :func:`run_tasks` together, so ``output.jobs`` processes (or a Dask cluster) share
    them; the parent folders are written here only.

    Args:
        resume: None for a script that cannot resume (any failure removes a CV
            parent); False or True for one that can: an input error removes a new
            parent (it would hit every rerun alike), an interruption leaves it,
            marked incomplete, and True continues it, keeping the finished folds.

    Yields:
        ``(metrics, title)`` per seed, for the end-of-run report.
    """
    if experiment.data.norm == "speaker":
        warn_speaker_normalization(train, test)
    outs = seed_folders(experiment)
    for out in outs:  # before any training: a refused --out should not cost a run
        if resume:
            check_unlocked(out)
        else:
            check_output(out, experiment.output.overwrite)
    scheduler = connect_to_scheduler(experiment.output.dask_scheduler)  # before any folder: nothing left on failure
    seeds, tasks = [], []
    try:
        for seed, out in zip(experiment.seeds, outs):
            seeded = experiment.with_seed(seed, out)
            if seeded.data.cv:
                parent, folds, fold_tasks = start_cross_validation(seeded, train, classes, data_files, resume)
                seeds.append((seeded, parent, folds, [t.out for t in fold_tasks]))
                tasks += fold_tasks
            else:
                seeds.append((seeded, None, None, [out]))
                tasks.append(RunTask(seeded, train, test, classes, out, data_files))
        results = {}
        for task, metrics in run_tasks(tasks, experiment.output.jobs, scheduler):
            results[str(task.out)] = metrics
            if len(tasks) > 1:
                print(f"{task.out}: finished ({len(results)} of {len(tasks)} runs), {headline(metrics)}",
                      file=sys.stderr)
    except BaseException as error:
        for _, parent, _, _ in seeds:
            if parent is not None and (resume is None or (isinstance(error, InputError) and not parent.resumed)):
                parent.remove()
        raise
    finally:
        if scheduler is not None:
            scheduler.close()

    for seeded, parent, folds, outs in seeds:
        if parent is None:
            metrics = results[outs[0]]
            best = f", best epoch {metrics['best_epoch']}" if metrics.get("best_epoch") is not None else ""
            yield metrics, f"{outs[0]}: test set{best}"
            continue
        metrics = write_pooled_run(parent, folds, classes, seeded.data.repeats)
        parent.mark_complete()
        yield metrics, f"{parent}: pooled test predictions of {len(folds)} {seeded.data.cv[0]} folds"


def seed_folders(experiment):
    """The run folder of each seed: ``--out`` itself, or its siblings ``OUT-seedK`` when there are several."""
    out = experiment.output.out
    return [f"{out}-seed{seed}" if len(experiment.seeds) > 1 else out for seed in experiment.seeds]


def warn_speaker_normalization(train, test):
    """Print one line when per-speaker normalization meets speakers of one class or few utterances.

    Both trainers come through :func:`run_seeds`, so this is the one place the check runs
    (once per command, not per fold or seed).
    """
    sets = [train.originals()] + ([test] if test is not None else [])
    warning = speaker_normalization_warning(np.concatenate([fs.speakers for fs in sets]),
                                            np.concatenate([fs.labels for fs in sets]))
    if warning:
        print(warning, file=sys.stderr)


def start_cross_validation(experiment, data, classes, data_files, resume=None):
    """Create (or reopen) the parent folder of a cross-validation and plan its folds.

    Returns:
        ``(parent RunFolder, fold RunFolders, tasks)``: a task for every fold not
        finished yet (a resumed run keeps its finished folds).
    """
    fold_sets = cross_validation_sets(data, experiment.data, experiment.seed)
    out = experiment.output.out
    resuming = bool(resume) and Path(out).exists()  # a finished folder is refused there
    parent = RunFolder.reopen(out, data_files) if resuming else RunFolder.create(out, experiment.output.overwrite)
    fold_runs = [parent.fold(k) for k in range(len(fold_sets))]
    try:
        folds = fold_table(fold_runs, fold_sets, experiment.data.repeats)
        if parent.resumed:  # before anything is rewritten
            parent.check_same_folds(folds, shuffled=experiment.data.cv[0] == "kfold-speakers")
        parent.write_config(runs.run_config(experiment.to_flags(), parent.path, classes, data, data_files,
                                            folds=[fold.path.name for fold in fold_runs]))
        parent.write_folds(folds)
    except BaseException:
        if not parent.resumed:
            parent.remove()
        raise
    tasks = [RunTask(experiment, train, test, classes, fold.path, data_files)
             for fold, (train, test) in zip(fold_runs, fold_sets) if not fold.is_complete]
    return parent, fold_runs, tasks


def cross_validation_sets(data, data_config, seed):
    """``(train, test)`` feature sets of each speaker fold of ``data``.

    Folds are drawn over the original utterances (the folds of the same data
    without augmented copies); a fold's training set holds its training speakers'
    originals and copies, its test set the test speakers' originals only.

    Args:
        data: the feature set to split.
        data_config: its :class:`~serattn.config.DataConfig`: ``cv``, ``group_by``, ``stratify_speakers_by``,
            ``repeats``.
        seed: shuffles the speakers of kfold-speakers.
    """
    protocol, folds = data_config.cv
    originals = data.originals()
    by = data_config.stratify_speakers_by
    attribute = speaker_attribute(originals, by) if by and by != "classes" else None
    groups = None
    if protocol == "leave-one-group-out":
        groups = (originals.column(data_config.group_by, "--group-by"), data_config.group_by)
    sets = []
    for train_index, test_index in speaker_folds(originals.speakers, protocol, folds, seed=seed,
                                                 labels=originals.labels if by == "classes" else None,
                                                 attribute=attribute, repeats=data_config.repeats, groups=groups):
        train_speakers = np.unique(originals.speakers[train_index])
        sets.append((data.subset(np.isin(data.speakers, train_speakers)), originals.subset(test_index)))
    return sets


def fold_table(fold_runs, fold_sets, repeats=1):
    """folds.csv rows: which speakers each fold tests, and how many utterances."""
    per_repeat = len(fold_sets) // repeats
    return [{"fold": run.path.name, "repeat": index // per_repeat, "test_speaker": str(speaker),
             "test_utterances": int(np.sum(test.speakers == speaker))}
            for index, (run, (_, test)) in enumerate(zip(fold_runs, fold_sets))
            for speaker in np.unique(test.speakers)]


@dataclasses.dataclass(frozen=True)
class RunTask:
    """One single-split run (a fold or a seed) as a picklable unit of work for a worker process."""

    experiment: object  # serattn.experiment.Experiment
    train: object
    test: object
    classes: list
    out: object
    data_files: dict

    def __call__(self):
        return train_one_run(self.experiment, self.train, self.test, self.classes, self.out, self.data_files)


def train_one_run(experiment, train, test, classes, out, data_files):
    """The single-split run of the experiment's trainer, which writes a complete run folder ``out``.

    Imported here, not at the top: TensorFlow loads only where an LSTM trains.
    """
    if experiment.is_lstm:
        from serattn.training.lstm_run import train_one_run as train_and_evaluate
    else:
        from serattn.training.static_run import train_one_run as train_and_evaluate
    return train_and_evaluate(experiment, train, test, classes, out, data_files)


def connect_to_scheduler(address, timeout=10):
    """A Dask client of the scheduler at ``address`` (None without one); one line if none answers there."""
    if address is None:
        return None
    from dask.distributed import Client

    try:
        return Client(address, timeout=timeout)
    except (OSError, ValueError, TimeoutError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    # The failed client lives on in a reference cycle; collected later, its finalizer may run inside the start of
    # the next client's event-loop thread and wait for a lock that start holds (a deadlock seen in the tests). Collect
    # it here, where no lock is held.
    gc.collect()
    raise InputError(f"--dask-scheduler: no Dask scheduler answers at '{address}' ({reason}); start one "
                     f"(dask scheduler) and give its address as tcp://HOST:8786")


def run_tasks(tasks, jobs=1, scheduler=None):
    """Run tasks here, in ``jobs`` local processes, or on a Dask cluster; yield ``(task, result)``
    as each finishes.

    Local workers share the cores: each gets ``cores // jobs`` TensorFlow and BLAS
    threads. With ``scheduler`` (a client of :func:`connect_to_scheduler`) joblib hands
    the tasks to the cluster's workers, which need this repository on their path and
    the run folders on a file system every machine sees; a worker that dies has its
    task rerun by Dask.
    """
    if scheduler is None and (jobs == 1 or len(tasks) <= 1):
        for task in tasks:
            yield task, task()
        return
    if scheduler is None:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        calls = (joblib.delayed(_run_in_worker)(index, task, threads, os.getpid()) for index, task in enumerate(tasks))
        for index, result in joblib.Parallel(n_jobs=jobs, return_as="generator_unordered")(calls):
            yield tasks[index], result
        return
    calls = (joblib.delayed(_run_in_own_process)(index, task) for index, task in enumerate(tasks))
    with joblib.parallel_config(backend="dask", client=scheduler):
        for index, result in joblib.Parallel(n_jobs=-1, return_as="generator_unordered")(calls):
            yield tasks[index], result


def _run_in_worker(index, task, threads, parent):
    """Limit this worker's threads (before TensorFlow starts in it), then run the task; end with ``parent``."""
    from serattn.training.worker import end_with_parent

    end_with_parent(parent)  # a SIGKILLed command leaves no worker training on
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(threads))
    with threadpoolctl.threadpool_limits(threads):
        return index, task()


def _run_in_own_process(index, task):
    """A Dask task: the run in a fresh process next to the worker (see serattn.training.worker)."""
    from serattn.training.worker import run_in_fresh_process

    return index, run_in_fresh_process(task)


def pool_folds(folds, classes, repeats=1):
    """Pooled and per-fold scores of finished fold run folders.

    Args:
        folds: the folds' :class:`~serattn.runs.folder.RunFolder`, in fold order.
        classes: class labels in model order.
        repeats: R of repeated k-fold: the folds are R runs of K folds; each repeat's
            pooled UA/WA go to ``repeats`` (and their mean and std), and the pooled
            predictions hold every utterance R times (with a ``repeat`` column).

    Returns:
        ``(metrics, rows)``: the parent's :class:`~serattn.runs.record.RunMetrics`, and the pooled test rows of
        the folds' predictions.csv with a ``fold`` column added.
    """
    rows, per_fold = [], []
    per_repeat = len(folds) // repeats
    dims = dimensions_of_rows(open_run(folds[0].path).prediction_rows()) if folds else ()
    if dims:
        return pool_value_folds(folds, classes, dims, repeats)
    for index, fold in enumerate(folds):
        extra = {"fold": index} | ({"repeat": index // per_repeat} if repeats > 1 else {})
        test_rows = [dict(row, **extra) for row in open_run(fold.path).prediction_rows() if row["split"] == "test"]
        scores = evaluate_predictions([r["true"] for r in test_rows], [r["predicted"] for r in test_rows],
                                      classes)
        per_fold.append({"fold": index, "test_speakers": sorted({r["speaker"] for r in test_rows}),
                         "ua": scores["ua"], "wa": scores["wa"], "n": scores["n"]})
        rows += test_rows
    repeat_scores = None
    if repeats > 1:
        repeat_scores = []
        for repeat in range(repeats):
            part = [r for r in rows if r["repeat"] == repeat]
            scores = evaluate_predictions([r["true"] for r in part], [r["predicted"] for r in part], classes)
            repeat_scores.append({"repeat": repeat, "ua": scores["ua"], "wa": scores["wa"], "n": scores["n"]})
    metrics = RunMetrics.of_folds(
        evaluate_predictions([r["true"] for r in rows], [r["predicted"] for r in rows], classes), per_fold,
        repeats=repeat_scores,
        label_map_dropped=open_run(folds[0].path).metrics().label_map_dropped,  # the command's data: alike in every fold
        seconds=summed_seconds(folds))
    return metrics, rows


def summed_seconds(folds):
    """The folds' training time summed, None where a fold did not record its own."""
    fold_seconds = [open_run(fold.path).metrics().seconds for fold in folds]
    return round(sum(fold_seconds), 3) if all(seconds is not None for seconds in fold_seconds) else None


def pool_value_folds(folds, classes, dims, repeats=1):
    """:func:`pool_folds` of dimensional or multi-task folds: CCC, Pearson and MSE per dimension over
    the pooled test predictions, and each fold's mean CCC (with their mean and std); UA and WA too
    when the folds also predict the classes."""
    rows, per_fold = [], []
    per_repeat = len(folds) // repeats
    for index, fold in enumerate(folds):
        extra = {"fold": index} | ({"repeat": index // per_repeat} if repeats > 1 else {})
        test_rows = [dict(row, **extra) for row in open_run(fold.path).prediction_rows() if row["split"] == "test"]
        scores = evaluate_value_rows(test_rows, dims)
        entry = {"fold": index, "test_speakers": sorted({r["speaker"] for r in test_rows}), "ccc": scores["ccc"],
                 "ccc_per_dimension": {d: s["ccc"] for d, s in scores["dimensions"].items()}, "n": scores["n"]}
        if "predicted" in test_rows[0]:
            entry["ua"] = evaluate_predictions([r["true"] for r in test_rows], [r["predicted"] for r in test_rows],
                                               classes)["ua"]
        per_fold.append(entry)
        rows += test_rows
    repeat_scores = None
    if repeats > 1:
        repeat_scores = [{"repeat": r, **{k: v for k, v in evaluate_value_rows(
            [row for row in rows if row["repeat"] == r], dims).items() if k in ("ccc", "n")}} for r in range(repeats)]
    class_scores = evaluate_predictions([r["true"] for r in rows], [r["predicted"] for r in rows], classes) \
        if "predicted" in rows[0] else None
    metrics = RunMetrics.of_value_folds(class_scores, evaluate_value_rows(rows, dims), per_fold,
                                        repeats=repeat_scores, seconds=summed_seconds(folds))
    return metrics, rows


def write_pooled_run(run, folds, classes, repeats=1):
    """Pool finished folds into the parent run folder ``run``.

    Writes ``metrics.json`` (pooled and per-fold scores), ``predictions.csv`` (the
    folds' test rows, with a ``fold`` column) and, when the folds have attention
    arrays, ``attention.npz`` (the folds' test utterances), so that figure and
    comparison scripts read a cross-validation like any other run.

    Returns:
        The pooled :class:`~serattn.runs.record.RunMetrics`.
    """
    metrics, rows = pool_folds(folds, classes, repeats)
    run.write_metrics(metrics)
    run.write_prediction_rows(rows)
    fold_runs = [open_run(fold.path) for fold in folds]
    if all(fold.has_attention for fold in fold_runs):
        tests = [fold.attention() for fold in fold_runs]
        tests = [attention.select(attention.split == "test") for attention in tests]
        heads = None
        if all(attention.head_weights is not None for attention in tests):
            heads = [np.split(attention.head_weights, np.cumsum(attention.lengths)[:-1]) for attention in tests]
            heads = [h for fold_heads in heads for h in fold_heads]
        not_pooled = None
        if len({attention.z.shape[1] for attention in tests}) == 1:
            run.write_attention([attention.utterance(i) for attention in tests for i in range(len(attention))],
                                *(np.concatenate([getattr(attention, key) for attention in tests])
                                  for key in ("z", "ids", "labels", "speakers", "split", "padding_mass")),
                                head_weights=heads)
        else:  # folds of a nested search may choose different model sizes: their representations do not stack
            not_pooled = "the folds' representations differ in size; see each fold's attention.npz"
        metrics = metrics.with_attention(attention_metrics(np.concatenate([attention.weights for attention in tests]),
                                                           np.concatenate([attention.lengths for attention in tests]),
                                                           np.concatenate([attention.ids for attention in tests]),
                                                           fold_runs[0].manifest_path), not_pooled)
        run.write_metrics(metrics)
    return metrics
