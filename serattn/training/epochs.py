"""``--epochs auto``: the number of epochs chosen by inner speaker folds of the training speakers.

A preset that names its epochs carries them from the corpus they were tuned on
(emodb_2s: 11 per speaker, 32 global); on a new corpus nobody knows them. Here the
training speakers of one run (one outer fold) are dealt into
:data:`~serattn.config.INNER_EPOCH_FOLDS` speaker folds, balanced by class
(:func:`~serattn.training.protocols.speaker_folds`, StratifiedGroupKFold); each fold
trains on the others, normalized on them alone, up to
:data:`~serattn.config.AUTO_MAX_EPOCHS` epochs with early stopping on its validation UA
(``--patience``). The epoch with the best validation UA (for numeric targets, the score that
picks a run's best epoch: :func:`serattn.targets.selection_weights`) averaged over the folds (over
the epochs every fold reached) is the number of epochs the run then trains on all its
training speakers. Test speakers are never seen. The curve and the choice are written
to ``epochs_auto.json`` in the run folder.
"""

import csv
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from serattn.config import AUTO_MAX_EPOCHS, INNER_EPOCH_FOLDS
from serattn.errors import InputError
from serattn.features.normalization import Normalization
from serattn.runs.folder import EPOCHS_AUTO_FILE
from serattn.targets import selection_score
from serattn.training import protocols

EPOCHS_FILE = EPOCHS_AUTO_FILE


def inner_folds(train, seed, folds=INNER_EPOCH_FOLDS):
    """The validation speakers of each inner fold: a list of sorted speaker lists."""
    originals = train.originals()
    count = min(folds, len(np.unique(originals.speakers)))
    if count < 2:
        raise InputError(f"--epochs auto needs at least 2 training speakers for its inner folds; the training set "
                         f"has {count}: give --epochs N")
    pairs = protocols.speaker_folds(originals.speakers, "kfold-speakers", count, seed=seed, labels=originals.labels)
    return [sorted({str(s) for s in originals.speakers[test]}) for _, test in pairs]


def mean_curve(curves):
    """The mean over folds of per-epoch validation UA, over the epochs every fold reached."""
    reached = min(len(curve) for curve in curves)
    return np.mean([curve[:reached] for curve in curves], axis=0)


def choose_epochs(curves):
    """The epoch (from 1) with the best mean validation UA; the earliest of equals."""
    return int(np.argmax(mean_curve(curves))) + 1


def read_validation_scores(history_path, selection):
    """The validation score of each epoch in a Keras CSVLogger file: ``val_ua`` for a categorical run,
    the weighted validation CCCs (and UA) of a dimensional or multi-task one (``selection``)."""
    with open(history_path, newline="") as handle:
        return [selection_score({key: float(value) for key, value in row.items() if value not in ("", None)},
                                selection) for row in csv.DictReader(handle)]


def auto_epochs(experiment, train, classes, run, selection, fit_one):
    """Choose the epochs of one run by inner speaker folds of ``train``; the choice is recorded in ``run``.

    Args:
        experiment: the run's experiment (``--epochs auto``).
        train: its training set, not yet normalized (every training speaker; no validation held out).
        classes: the class labels.
        run: the :class:`~serattn.runs.folder.RunFolder`; a resumed one keeps the choice it recorded.
        selection: the validation metrics that pick an epoch, and their weights
            (:func:`serattn.targets.selection_weights`: ``{"ua": 1}`` for a categorical run).
        fit_one: ``fit_one(fit_set, val_set, epochs, checkpoint_dir, history_path)`` trains a fresh
            model on normalized sets with early stopping on ``val_set``.

    Returns:
        The number of epochs.
    """
    record = run.path / EPOCHS_FILE
    if record.is_file():  # a resumed run chose before it was interrupted
        return int(json.loads(record.read_text())["epochs"])
    curves, folds = [], inner_folds(train, experiment.seed)
    by_ua = list(selection) == ["ua"]
    key, what = ("val_ua", "validation UA") if by_ua else ("val_score", "validation score")

    def shown(score):
        return f"{100 * score:.1f}%" if by_ua else f"{score:.3f}"

    for index, val_speakers in enumerate(folds):
        needed = classes if experiment.model.predicts_classes else ()  # as protocols.split_and_normalize
        fit_set, val_set = protocols.hold_out_validation(train, needed, ",".join(val_speakers), experiment.seed,
                                                         f"{run.path} (inner fold {index + 1} of --epochs auto)")
        normalization = Normalization.fit(fit_set, experiment.data.norm)
        fit_set, val_set = normalization.apply(fit_set), normalization.apply(val_set)
        with tempfile.TemporaryDirectory(prefix="serattn-epochs-") as scratch:
            history = Path(scratch) / "history.csv"
            fit_one(fit_set, val_set, AUTO_MAX_EPOCHS, Path(scratch) / "checkpoint", history)
            curves.append(read_validation_scores(history, selection))
        if not experiment.output.quiet:
            print(f"{run.path}: --epochs auto, inner fold {index + 1} of {len(folds)}: best {what} "
                  f"{shown(max(curves[-1]))} at epoch {int(np.argmax(curves[-1])) + 1}", file=sys.stderr)
    epochs = choose_epochs(curves)
    run.write_epochs_auto({"epochs": epochs, "max_epochs": AUTO_MAX_EPOCHS, "patience": experiment.training.patience,
                           "inner_folds": folds, "selection": selection,
                           key: [[round(v, 6) for v in curve] for curve in curves],
                           f"mean_{key}": [round(float(v), 6) for v in mean_curve(curves)]})
    print(f"{run.path}: --epochs auto chose {epochs} epochs (mean {what} "
          f"{shown(mean_curve(curves)[epochs - 1])} over {len(folds)} inner speaker folds)", file=sys.stderr)
    return epochs


def with_epochs(experiment, epochs):
    """``experiment`` with a whole number of epochs in place of ``auto``."""
    return replace(experiment, training=replace(experiment.training, epochs=epochs))
