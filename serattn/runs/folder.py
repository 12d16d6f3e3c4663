"""The run folder: one self-contained directory per run, and the only place its file names live.

``results/NAME/`` holds ``config.json`` (every resolved flag, data hashes, package
versions, git commit), ``model.keras`` (or ``model.joblib``), ``normalization.json``,
``history.csv``, ``metrics.json``, ``predictions.csv`` and ``attention.npz``. While
a run is being written the folder holds ``INCOMPLETE`` and a ``checkpoint/``; both
go last. :class:`RunFolder` writes LSTM, static, cross-validation parent and
ensemble runs alike; :mod:`serattn.runs.reading` reads them back with the names
defined here.

A folder being written is locked: its writer holds an OS lock (``fcntl.flock``) on
``LOCK`` for the run's lifetime, so a second writer (``--overwrite`` or ``--resume``
of the same folder) is refused instead of deleting or interleaving with the first.
The kernel drops the lock when its process dies, so a killed run resumes freely.
``--overwrite`` replaces only a folder that is a run folder (its config.json has a
``run_format``), never anything else.
"""

import csv
import fcntl
import fnmatch
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from serattn.atomic import write_atomically, write_atomically_named
from serattn.errors import InputError

if TYPE_CHECKING:
    from serattn.runs.record import RunMetrics

RUN_FORMAT = 1  # config.json's "run_format"; folders of a newer format are refused, older ones read
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
ATTENTION_FILE = "attention.npz"
HISTORY_FILE = "history.csv"
NORMALIZATION_FILE = "normalization.json"
KERAS_MODEL_FILE = "model.keras"
KERAS_ARCHIVE_CONFIG = "config.json"  # inside model.keras (a zip): the model's own config, not the run's
STATIC_MODEL_FILE = "model.joblib"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_STATE_FILE = "state.json"  # inside CHECKPOINT_DIR: epoch, early-stopping state
CHECKPOINT_BEST_FILE = "best.npz"  # inside CHECKPOINT_DIR: the best epoch's weights
INCOMPLETE = "INCOMPLETE"
LOCK_FILE = "LOCK"  # held with flock by the process writing the folder; holds its pid
MODEL_SHA256_KEY = "model_sha256"  # config.json: {model file name: SHA-256}, checked before loading
FIGURES_DIR = "figures"
REPORT_FILE = "report.html"  # report.py's page of the run, when written into the run folder
FOLDS_FILE = "folds.csv"  # cross-validation parents: the test speakers of each fold (and repeat)
EPOCHS_AUTO_FILE = "epochs_auto.json"  # --epochs auto: the inner folds' validation curves and the epochs chosen
TENSORBOARD_DIR = "tensorboard"
FOLD_DIRS = "fold-[0-9][0-9]*"  # cross-validation folds, run folders themselves
# Everything serattn writes into a run folder; --overwrite refuses a folder holding anything else (the user's
# notes, data), rather than deleting it. ``.NAME.*.tmp`` are atomic writes a killed process left behind.
RUN_ENTRIES = (CONFIG_FILE, METRICS_FILE, PREDICTIONS_FILE, ATTENTION_FILE, HISTORY_FILE, NORMALIZATION_FILE,
               KERAS_MODEL_FILE, STATIC_MODEL_FILE, CHECKPOINT_DIR, INCOMPLETE, LOCK_FILE, FIGURES_DIR, REPORT_FILE,
               FOLDS_FILE, TENSORBOARD_DIR, FOLD_DIRS, EPOCHS_AUTO_FILE, ".*.tmp")
PACKAGES = ("tensorflow", "keras", "numpy", "scikit-learn", "opensmile", "soundfile", "matplotlib")


class RunFolder:
    """A run folder being written: its lock, its life cycle (INCOMPLETE, checkpoint) and its files.

    Made with :meth:`create` (a new, empty folder) or :meth:`reopen` (an
    interrupted one to resume), both of which lock it for this process until
    :meth:`mark_complete` or :meth:`remove`; every file is written atomically.
    """

    def __init__(self, path, lock=None, resumed=False):
        self.path = Path(path)
        self._lock = lock  # the open LOCK file while this process writes the folder
        self.resumed = resumed  # reopened to continue an interrupted run

    def __str__(self):
        return str(self.path)

    @classmethod
    def create(cls, path, overwrite=False):
        return cls(*create_run_dir(path, overwrite))

    @classmethod
    def reopen(cls, path, data_files):
        path, lock = reopen_run_dir(path, data_files)
        return cls(path, lock, resumed=True)

    @property
    def checkpoint_dir(self):
        return self.path / CHECKPOINT_DIR

    @property
    def history_path(self):
        return self.path / HISTORY_FILE

    def fold(self, index):
        """The run folder of cross-validation fold ``index`` inside this one."""
        return RunFolder(self.path / f"fold-{index:02d}")

    @property
    def is_complete(self):
        return is_complete(self.path)

    def write_config(self, config):
        """config.json: a run's (:func:`run_config`), an ensemble's, or the flags of a search's best values
        (:func:`rerun_config`); every config.json goes through here."""
        write_json(self.path / CONFIG_FILE, config)

    def write_epochs_auto(self, record):
        """epochs_auto.json: ``--epochs auto``'s inner validation curves and the epochs chosen."""
        write_json(self.path / EPOCHS_AUTO_FILE, record)

    def write_metrics(self, metrics: "RunMetrics"):
        """metrics.json, from a :class:`~serattn.runs.record.RunMetrics` (its ``of_*`` constructors build each
        kind of run's), so that every metrics.json is assembled in one module."""
        from serattn.runs.record import RunMetrics  # record.py reads this module's names

        if not isinstance(metrics, RunMetrics):
            raise TypeError(f"write_metrics takes a RunMetrics, not {type(metrics).__name__}")
        write_json(self.path / METRICS_FILE, dict(metrics.values))

    def write_normalization(self, normalization):
        write_json(self.path / NORMALIZATION_FILE, normalization.to_dict())

    def write_predictions(self, *columns):
        """predictions.csv; see :func:`write_predictions` for the columns."""
        write_predictions(self.path / PREDICTIONS_FILE, *columns)

    def write_prediction_rows(self, rows):
        """predictions.csv from dict rows (cross-validation parents add a ``fold`` column)."""
        write_csv_rows(self.path / PREDICTIONS_FILE, rows)

    def write_folds(self, rows):
        """folds.csv of a cross-validation parent: ``fold, repeat, test_speaker, test_utterances`` rows."""
        write_csv_rows(self.path / FOLDS_FILE, rows)

    def check_same_folds(self, rows, shuffled):
        """Refuse to resume a cross-validation whose folds would differ from the recorded ones.

        ``rows`` are the folds.csv rows planned now; ``shuffled``: the planned folds depend
        on a shuffle (kfold-speakers), so a parent started before folds.csv was recorded,
        when kfold-speakers did not shuffle, cannot be resumed safely.
        """
        path = self.path / FOLDS_FILE
        if not path.exists():
            if shuffled:
                raise InputError(f"run '{self.path}' has no {FOLDS_FILE}: it was started before kfold-speakers "
                                 f"shuffled speakers, so its unfinished folds would test other speakers; "
                                 f"start it again with --config {self.path / CONFIG_FILE} --out NEW")
            return
        with open(path, newline="") as handle:
            recorded = list(csv.DictReader(handle))
        if recorded != [{key: str(value) for key, value in row.items()} for row in rows]:
            raise InputError(f"the folds of run '{self.path}' ({path.name}) differ from the folds this command "
                             f"plans (other data, seed or fold flags); cannot resume")

    def write_attention(self, *arrays, head_weights=None):
        """attention.npz; see :func:`write_attention` for the arrays."""
        write_attention(self.path / ATTENTION_FILE, *arrays, head_weights=head_weights)

    def write_evaluation(self, parts, outputs, classes):
        return write_evaluation(self.path, parts, outputs, classes)

    def save_keras_model(self, model):
        """model.keras, written whole or not at all (Keras needs the .keras name: a temporary folder holds it)."""
        write_atomically_named(self.path / KERAS_MODEL_FILE, model.save)
        self.record_model_hash(KERAS_MODEL_FILE)

    def save_static_model(self, pipeline):
        """model.joblib, a pickle: its SHA-256 goes to config.json and is checked before loading."""
        import joblib

        def write(temporary):
            joblib.dump(pipeline, temporary)

        write_atomically(self.path / STATIC_MODEL_FILE, write)
        self.record_model_hash(STATIC_MODEL_FILE)

    def record_model_hash(self, name):
        """Add the model file's SHA-256 to config.json (written before the model)."""
        config = json.loads((self.path / CONFIG_FILE).read_text())
        config[MODEL_SHA256_KEY] = {name: file_sha256(self.path / name)}
        self.write_config(config)

    def mark_complete(self):
        mark_complete(self.path)
        self._release()

    def remove(self):
        remove_run_dir(self.path)
        self._release()

    def _release(self):
        if self._lock is not None:
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            self._lock.close()  # closing the file drops the flock
            self._lock = None


def create_run_dir(path, overwrite=False):
    """Make an empty run folder marked incomplete, locked for this process.

    An existing folder is replaced only with ``overwrite``, only if it is a run
    folder (or empty), and only if no other process is writing it.

    Returns:
        ``(path, lock)``: the folder and its open, locked LOCK file.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        check_output(path, overwrite)
        lock = lock_run_dir(path)
        try:
            check_replaceable(path)  # again, now that no other writer can change it
            for entry in path.iterdir():
                if entry.name == LOCK_FILE:
                    continue  # kept, so the folder stays locked while it is replaced
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        except BaseException:
            lock.close()
            raise
    else:
        try:
            path.mkdir(parents=True)
        except FileExistsError:  # another process made it just now
            return create_run_dir(path, overwrite)
        except OSError as error:
            raise InputError(f"cannot create output folder '{path}': {error.strerror}") from None
        lock = lock_run_dir(path)
    (path / INCOMPLETE).write_text("this run is being written or was interrupted\n")
    return path, lock


def check_output(path, overwrite):
    """Raise InputError now if :func:`create_run_dir` would refuse ``path`` (checked before any work)."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise InputError(f"output folder '{path}' already exists; choose another --out, "
                         f"or pass --overwrite to replace it")
    check_replaceable(path)
    check_unlocked(path)


def check_unlocked(path):
    """Raise InputError now if another process is writing the run folder ``path``."""
    if (Path(path) / LOCK_FILE).is_file():
        lock_run_dir(path).close()


def check_replaceable(path):
    """Raise InputError unless ``--overwrite`` may replace ``path``: a run folder, or empty."""
    if path.is_symlink():
        raise InputError(f"--out '{path}' is a symbolic link; --overwrite replaces only a run folder itself")
    if not path.is_dir():
        raise InputError(f"--out '{path}' is a file, not a folder")
    leftovers = {entry.name for entry in path.iterdir()} - {LOCK_FILE, INCOMPLETE}
    if leftovers and not is_run_folder(path):
        raise InputError(f"output folder '{path}' is not a serattn run folder (no {CONFIG_FILE} with "
                         f"'run_format'); --overwrite replaces only run folders: choose another --out")
    check_only_ours(path, RUN_ENTRIES, nested={FOLD_DIRS: RUN_ENTRIES})


def check_only_ours(path, owned, nested=None):
    """Raise InputError if folder ``path`` holds entries that serattn did not write.

    ``owned``: the names (fnmatch patterns) a program writes there; ``nested``: pattern ->
    owned names, for the subfolders that are checked the same way (a run's folds).
    """
    foreign = foreign_entries(Path(path), owned, nested or {})
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5
                                                                 else "")
        raise InputError(f"output folder '{path}' holds files serattn did not write ({shown}); --overwrite "
                         f"deletes only its own files: move them, or choose another --out")


def foreign_entries(path, owned, nested):
    """Relative paths under ``path`` that match none of ``owned`` (subfolders of ``nested`` checked inside)."""
    foreign = []
    for entry in sorted(path.iterdir()):
        inner = next((names for pattern, names in nested.items() if fnmatch.fnmatchcase(entry.name, pattern)), None)
        if inner is not None and entry.is_dir() and not entry.is_symlink():
            foreign += [f"{entry.name}/{name}" for name in foreign_entries(entry, inner, nested)]
        elif not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in owned):
            foreign.append(entry.name + ("/" if entry.is_dir() else ""))
    return foreign


def is_run_folder(path):
    """Whether ``path`` holds a config.json that a serattn run wrote (it has ``run_format``)."""
    try:
        config = json.loads((Path(path) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and isinstance(config.get("run_format"), int)


def lock_run_dir(path):
    """Lock the run folder ``path`` for this process; refuse if another process holds it.

    The lock is ``flock`` on ``path/LOCK``, which holds the writer's pid for the
    message. The kernel releases it when the process exits, however it exits.

    Returns:
        The open LOCK file; closing it releases the lock.
    """
    lock_path = Path(path) / LOCK_FILE
    try:
        lock = open(lock_path, "a+")
    except OSError as error:
        raise InputError(f"cannot create output folder '{path}': {error.strerror}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise InputError(f"run folder '{path}' is being written by another process (pid {holder}); "
                         f"wait for it to finish, or choose another --out") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def mark_complete(path):
    """Drop the training checkpoint and the INCOMPLETE marker: the run is done."""
    shutil.rmtree(Path(path) / CHECKPOINT_DIR, ignore_errors=True)
    (Path(path) / INCOMPLETE).unlink(missing_ok=True)


def run_config(flags, out, classes, feature_set, data_files, **resolved):
    """The config.json of a run: its flags, what the run resolved, its data and environment."""
    meta = dict(feature_set.meta)
    label_map = meta.pop("label_map", None)  # cross-corpus: the map the labels went through, recorded on its own
    if label_map is not None:
        resolved = {**resolved, "label_map_used": label_map}
    return {**flags, "out": str(out), "classes": classes, **resolved, "data_files": data_files,
            "feature_meta": meta, "feature_names": feature_set.feature_names.tolist(), **provenance()}


def rerun_config(flags, **recorded):
    """A config.json that holds only flags to rerun with (``--config``), not a run: a search's
    best/config.json (``recorded``: the search it came from)."""
    return {"run_format": RUN_FORMAT, **flags, **recorded}


def provenance():
    """The last keys of every config.json: the run format, then the versions and the commit of the code."""
    return {"run_format": RUN_FORMAT, **environment_info()}


def write_csv_rows(path, rows):
    """A CSV file of dict rows (the first row's keys are the header), written atomically."""
    def write(temporary):
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    write_atomically(path, write)


def write_json(path, values):
    """Write JSON atomically (temp file, then rename)."""
    text = json.dumps(values, indent=2, default=_to_builtin) + "\n"
    write_atomically(path, lambda temporary: temporary.write_text(text))


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_predictions(path, ids, speakers, split, true_labels, predicted_labels, probabilities, classes):
    """predictions.csv: id, speaker, split, true, predicted, p_<class>..."""
    def write(temporary):
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "speaker", "split", "true", "predicted", *(f"p_{c}" for c in classes)])
            for row in zip(ids, speakers, split, true_labels, predicted_labels, probabilities):
                *fields, probs = row
                writer.writerow([*fields, *(f"{p:.6f}" for p in probs)])

    write_atomically(path, write)


def write_attention(path, weights, z, ids, labels, speakers, split, padding_mass, head_weights=None):
    """attention.npz: ragged weights (sum of lengths,) with lengths, z (N, units), ids...

    ``head_weights`` (list of (T_i, heads) arrays), when given, is saved as
    ``head_weights`` (sum of lengths, heads): the per-head attention of a multi-head
    model, whose mean over heads is ``weights``.
    """
    extra = {} if head_weights is None else {"head_weights": np.concatenate(head_weights).astype(np.float32)}

    def write(temporary):
        with open(temporary, "wb") as handle:
            np.savez(
                handle,
                weights=np.concatenate(weights).astype(np.float32),
                lengths=np.array([len(w) for w in weights], dtype=np.int64),
                z=np.asarray(z, np.float32),
                ids=np.asarray(ids, str),
                labels=np.asarray(labels, str),
                speakers=np.asarray(speakers, str),
                split=np.asarray(split, str),
                padding_mass=np.asarray(padding_mass, np.float32),
                **extra,
            )

    write_atomically(path, write)


def file_sha256(path):
    """SHA-256 of a file; of a feature store's index (which records its shards' hashes) for a store folder."""
    if os.path.isdir(path):
        from serattn.features.store import INDEX_FILE

        path = os.path.join(path, INDEX_FILE)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_data_files(sources):
    """``{name: {"path": absolute path, "sha256": ...}}`` for config.json."""
    return {name: {"path": os.path.abspath(path), "sha256": file_sha256(path)} for name, path in sources.items()}


def environment_info():
    """Python, package versions and the git commit of the code that ran."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"versions": versions, "git_commit": git_commit()}


def git_commit():
    """HEAD of the repository holding this package, '+dirty' if it has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def remove_run_dir(path):
    """Delete a run folder that a failed run created, so nothing half-written stays."""
    shutil.rmtree(path, ignore_errors=True)


def read_config(path):
    """The config.json of a run, for --config and --resume."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"'{path}' not found; expected the config.json of a run folder")
    try:
        config = json.loads(path.read_text())
    except ValueError as error:
        raise InputError(f"'{path}' is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise InputError(f"'{path}' is not a serattn run config (not a JSON object)")
    return check_run_format(config, path)


def check_run_format(config, source):
    """``config`` if this serattn reads its run format; one rule for every reader.

    Every run folder records ``run_format``; a config without it was not written by
    serattn, and one of a newer format needs a newer serattn.
    """
    run_format = config.get("run_format")
    if run_format is None:
        raise InputError(f"'{source}' is not a serattn run config (no 'run_format')")
    if not isinstance(run_format, int) or run_format > RUN_FORMAT:
        raise InputError(f"'{source}' has run format {run_format!r}, newer than this serattn reads "
                         f"({RUN_FORMAT}); update serattn")
    return config


def reopen_run_dir(path, data_files):
    """An interrupted run folder to resume, checked to match its data, and locked.

    Returns:
        ``(path, lock)`` as :func:`create_run_dir`.
    """
    path = Path(path)
    if not (path / INCOMPLETE).exists():
        raise InputError(f"run '{path}' finished; nothing to resume (start a new run with "
                         f"--config {path / CONFIG_FILE} --out NEW)")
    saved = read_config(path / CONFIG_FILE)
    for name, current in data_files.items():
        if saved["data_files"][name]["sha256"] != current["sha256"]:
            raise InputError(f"{describe_data_file(name, current['path'])} changed since run '{path}' started; "
                             f"cannot resume on different data")
    return path, lock_run_dir(path)


def describe_data_file(name, path):
    """'the feature file X' (--data) or 'the train feature file X' (--train/--test), for messages."""
    return f"the feature file '{path}'" if name == "data" else f"the {name} feature file '{path}'"


def warn_if_data_changed(saved_config, data_files):
    if not saved_config:
        return
    for name, current in data_files.items():
        before = saved_config.get("data_files", {}).get(name, {}).get("sha256")
        if before and before != current["sha256"]:
            print(f"warning: {describe_data_file(name, current['path'])} differs from the one the saved config "
                  f"was trained on", file=sys.stderr)


def write_evaluation(out, parts, outputs, classes):
    """predictions.csv and attention.npz for every split of a run.

    Args:
        out: the run folder.
        parts: ``[(split name, FeatureSet), ...]`` in the order to write.
        outputs: split name -> :func:`serattn.training.trainer.predict_with_attention` result.
        classes: class labels in model output order.

    Returns:
        split name -> predicted labels (N,).
    """
    predicted = {name: np.asarray(classes)[outputs[name]["probabilities"].argmax(1)] for name, _ in parts}

    def joined(key):
        return np.concatenate([getattr(fs, key) for _, fs in parts])

    split = np.concatenate([[name] * len(fs) for name, fs in parts])
    write_predictions(out / PREDICTIONS_FILE, joined("ids"), joined("speakers"), split, joined("labels"),
                      np.concatenate([predicted[name] for name, _ in parts]),
                      np.concatenate([outputs[name]["probabilities"] for name, _ in parts]), classes)
    write_attention(out / ATTENTION_FILE, [w for name, _ in parts for w in outputs[name]["weights"]],
                    np.concatenate([outputs[name]["z"] for name, _ in parts]),
                    joined("ids"), joined("labels"), joined("speakers"), split,
                    np.concatenate([outputs[name]["padding_mass"] for name, _ in parts]),
                    head_weights=([w for name, _ in parts for w in outputs[name]["head_weights"]]
                                  if "head_weights" in outputs[parts[0][0]] else None))
    return predicted


def is_complete(path):
    path = Path(path)
    return (path / METRICS_FILE).is_file() and not (path / INCOMPLETE).exists()
