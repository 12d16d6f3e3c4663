"""Read a saved run folder: config, metrics, predictions, attention arrays.

The analysis scripts need nothing but the folder ``train_attention_lstm.py``
wrote, so this module only reads (figures go to a ``figures/`` folder the
scripts make) and never imports TensorFlow. Every file is checked on load; a
missing, unfinished or malformed run raises :class:`InputError` naming the file
and what to do.

===================  ===========================================================
file                 content
===================  ===========================================================
``config.json``      every resolved training flag, plus ``classes``,
                     ``data_files``, ``versions``, ``git_commit``,
                     ``feature_meta``, ``run_format``
``metrics.json``     ``ua``, ``wa``, ``classes``, ``per_class_recall``,
                     ``confusion`` (rows true), ``n_test``, ``best_epoch``...
``predictions.csv``  ``id,speaker,split,true,predicted,p_<class>...``
``attention.npz``    ragged ``weights`` (sum(L),), ``lengths`` (N,), ``z``
                     (N, 60), ``ids``, ``labels``, ``speakers``, ``split``,
                     ``padding_mass`` (N,)
``INCOMPLETE``       present while the run is still being written
===================  ===========================================================

Model files are loaded only after their SHA-256 matches the one config.json
recorded when they were saved; ``model.keras`` in Keras' safe mode (TensorFlow is
imported then, not before). Still, ``model.joblib`` is a pickle: load run folders
only from sources you trust.
"""

import csv
import dataclasses
import functools
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from serattn.features.feature_set import offsets_of
from serattn.errors import InputError
from serattn.runs.folder import (ATTENTION_FILE, CONFIG_FILE, FIGURES_DIR, INCOMPLETE, KERAS_ARCHIVE_CONFIG,
                                 KERAS_MODEL_FILE, METRICS_FILE,
                                 NORMALIZATION_FILE, PREDICTIONS_FILE, STATIC_MODEL_FILE,
                                 check_run_format, file_sha256)
from serattn.runs.record import RunConfig, RunMetrics

INCOMPLETE_MARKER = INCOMPLETE
SPLITS = ("train", "val", "test")
ATTENTION_KEYS = ("weights", "lengths", "z", "ids", "labels", "speakers", "split")


@dataclasses.dataclass
class AttentionSet:
    """The attention arrays of a run, ragged like :mod:`serattn.features.feature_set` feature sets."""

    weights: np.ndarray  # (sum(L),) float32, each utterance's weights over its frames
    lengths: np.ndarray  # (N,) int64
    z: np.ndarray  # (N, units) float32 attention representations
    ids: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) str
    speakers: np.ndarray  # (N,) str
    split: np.ndarray  # (N,) str in SPLITS
    padding_mass: np.ndarray  # (N,) float32, attention on padding (0 when masked)
    head_weights: np.ndarray | None = None  # (sum(L), heads) per-head weights of a multi-head model

    def __len__(self):
        return len(self.lengths)

    @property
    def offsets(self):
        """Start of each utterance in ``weights``, shape (N + 1,)."""
        return offsets_of(self.lengths)

    def utterance(self, i):
        """The attention weights of utterance ``i``, shape (L_i,)."""
        return self.weights[self.offsets[i]:self.offsets[i + 1]]

    def select(self, selection):
        """The utterances picked by a boolean mask (N,), in their order."""
        selection = np.asarray(selection, dtype=bool)
        return AttentionSet(
            weights=self.weights[np.repeat(selection, self.lengths)],
            lengths=self.lengths[selection],
            z=self.z[selection],
            ids=self.ids[selection],
            labels=self.labels[selection],
            speakers=self.speakers[selection],
            split=self.split[selection],
            padding_mass=self.padding_mass[selection],
            head_weights=None if self.head_weights is None else self.head_weights[np.repeat(selection, self.lengths)],
        )

    def index_of(self, utterance_id, source=ATTENTION_FILE):
        """Position of an utterance id; InputError naming a few valid ids if absent."""
        hits = np.flatnonzero(self.ids == utterance_id)
        if len(hits) == 0:
            examples = ", ".join(f"'{i}'" for i in self.ids[:3])
            raise InputError(f"utterance '{utterance_id}' is not in '{source}'; "
                             f"ids look like {examples}")
        return int(hits[0])


@dataclasses.dataclass
class Run:
    """One finished run folder; files are read and checked when asked for."""

    path: Path
    config: dict  # config.json as written; read it through ``record``

    @functools.cached_property
    def record(self) -> RunConfig:
        """config.json, typed, with the defaults of old run folders (:mod:`serattn.runs.record`)."""
        return RunConfig.of(self.config)

    @property
    def name(self):
        return self.path.name

    @property
    def classes(self):
        """Class labels in model order (the order of ``p_<class>`` and the confusion)."""
        return self.record.classes

    @property
    def feature_meta(self):
        return self.record.feature_meta

    @property
    def frame_rate(self):
        """Frames per second of the features (100 for 10 ms frames)."""
        return self.record.frame_rate

    @property
    def manifest_path(self):
        """The corpus manifest named in ``feature_meta``, or None."""
        return self.record.manifest

    @property
    def audio_root(self):
        """Folder the manifest's relative ``path`` values start from, or None."""
        if self.manifest_path is not None:
            return self.manifest_path.parent
        return self.record.corpus_root

    def file(self, name):
        """Path of a file of the run; InputError if it is missing."""
        path = self.path / name
        if not path.is_file():
            raise InputError(f"run folder '{self.path}' lacks '{name}'; "
                             f"re-run training or point to a complete run")
        return path

    @property
    def figures_dir(self):
        """Where the figure scripts write by default."""
        return self.path / FIGURES_DIR

    def keras_model_file(self):
        """Path of ``model.keras``; InputError if the run has none."""
        return self.file(KERAS_MODEL_FILE)

    def load_keras_model(self):
        """``model.keras`` loaded in safe mode; one-line InputError if it is damaged, changed or unsafe."""
        path = self.checked_model_file(KERAS_MODEL_FILE, required=False)
        check_keras_archive(path)
        import serattn

        serattn.import_tensorflow()
        import keras

        import serattn.models  # noqa: F401  registers serattn's layers for safe mode
        try:
            model = keras.saving.load_model(path, safe_mode=True)
        except Exception as error:  # Keras raises ValueError, TypeError... for what it cannot rebuild
            raise InputError(describe_keras_load_error(path, error)) from None
        # a dimensional run's values follow its classes
        check_model_structure(model, path, len(self.classes) * ("emotion" in self.record.target) + len(self.dimensions))
        serattn.silence_onednn_bool_note()
        return model

    def load_static_model(self):
        """``model.joblib`` (a pickle), unpickled only once its SHA-256 matches config.json's."""
        import joblib

        return joblib.load(self.checked_model_file(STATIC_MODEL_FILE, required=True))

    def checked_model_file(self, name, required):
        """Path of a model file whose SHA-256 matches the one recorded in config.json.

        ``required``: refuse a file with no recorded hash (runs saved before hashes
        were recorded); a pickle must never load unchecked, a safe-mode Keras file may.
        """
        path = self.file(name)
        expected = self.record.model_sha256.get(name)
        if expected is None and required:
            raise InputError(f"refusing to load '{path}': config.json records no SHA-256 for it, so it "
                             f"cannot be checked (a pickle runs code when loaded)")
        if expected is not None and file_sha256(path) != expected:
            raise InputError(f"refusing to load '{path}': it does not match the SHA-256 recorded in "
                             f"{CONFIG_FILE} (changed or replaced after training)")
        return path

    def normalization(self):
        """The run's :class:`~serattn.features.normalization.Normalization`."""
        from serattn.features.normalization import Normalization

        return Normalization.from_dict(_read_json(self.file(NORMALIZATION_FILE)))

    def metrics(self) -> RunMetrics:
        """``metrics.json``, checked: UA/WA in 0..1, confusion C x C in class order (:class:`RunMetrics`)."""
        path = self.file(METRICS_FILE)
        metrics = _read_json(path)
        if "dimensions" in metrics:  # a dimensional run (serattn.targets); a multi-task one has classes too
            _require_keys(metrics, ("ccc", "dimensions"), path)
            if not isinstance(metrics["dimensions"], dict) or not metrics["dimensions"]:
                raise InputError(f"'dimensions' in '{path}' must map each dimension to its scores")
            if "confusion" not in metrics:
                return RunMetrics.of(metrics)
        _require_keys(metrics, ("ua", "wa", "classes", "per_class_recall", "confusion"), path)
        classes = [str(c) for c in metrics["classes"]]
        confusion = np.asarray(metrics["confusion"])
        if confusion.shape != (len(classes), len(classes)) or confusion.dtype.kind not in "iu" \
                or np.any(confusion < 0):
            raise InputError(f"'confusion' in '{path}' must be a {len(classes)}x{len(classes)} "
                             f"matrix of counts (one row per class), got shape {confusion.shape}")
        for key in ("ua", "wa"):
            if not isinstance(metrics[key], (int, float)) or not 0 <= metrics[key] <= 1:
                raise InputError(f"'{key}' in '{path}' must be a number in 0..1, got {metrics[key]!r}")
        missing = [c for c in classes if c not in metrics["per_class_recall"]]
        if missing:
            raise InputError(f"'per_class_recall' in '{path}' lacks class(es) {', '.join(missing)}")
        self._check_scores_match_predictions(metrics, classes, confusion, path)
        return RunMetrics.of({**metrics, "classes": classes, "confusion": confusion})

    def _check_scores_match_predictions(self, metrics, classes, confusion, path):
        """Refuse a metrics.json whose UA, WA or confusion differ from its own predictions.csv's test rows.

        Every reader (compare_runs.py's table, report.py's intervals, ensembles) then shows the
        numbers that the predictions give, never an edited or stale summary next to them.
        """
        from serattn.analysis.metrics import evaluate_predictions

        if not (self.path / PREDICTIONS_FILE).is_file():
            return
        rows = self.prediction_rows()
        test = [row for row in rows if row.get("split") == "test"]
        if not test or not all("true" in row and "predicted" in row for row in test):
            return
        scores = evaluate_predictions([r["true"] for r in test], [r["predicted"] for r in test], classes)
        differ = [key for key in ("ua", "wa") if scores[key] is not None and abs(scores[key] - metrics[key]) > 5e-5]
        if differ or not np.array_equal(np.asarray(scores["confusion"]), confusion):
            key = (differ or ["confusion"])[0]
            shown = (f"{key.upper()} {100 * metrics[key]:.1f}% there, {100 * scores[key]:.1f}% from the predictions"
                     if differ else "the confusion matrix differs")
            raise InputError(f"'{path}' does not match the test rows of {PREDICTIONS_FILE} ({shown}); the run "
                             f"folder was edited or damaged: train it again")

    def predictions(self):
        """``predictions.csv`` as a dict of columns (str arrays; ``p_*`` as float64)."""
        path = self.file(PREDICTIONS_FILE)
        columns = read_csv_columns(path)
        _require_keys(columns, ("id", "split", "true", "predicted"), path)
        for name in columns:
            if name.startswith("p_"):
                try:
                    columns[name] = columns[name].astype(np.float64)
                except ValueError:
                    raise InputError(f"column '{name}' of '{path}' must hold probabilities") from None
        return columns

    @property
    def dimensions(self):
        """The numeric targets the run predicts (arousal, valence...; empty for a categorical run)."""
        return self.record.dimensions

    def refuse_dimensional(self, what):
        """InputError for a dimensional or multi-task run where ``what`` handles categorical runs only."""
        if self.dimensions:
            raise InputError(f"'{self.path}' is a dimensional run (--target {','.join(self.record.target)}); "
                             f"{what} handles categorical runs only so far")

    def prediction_rows(self):
        """``predictions.csv`` as rows of text, each a dict keyed by the header (values as written)."""
        columns = read_csv_columns(self.file(PREDICTIONS_FILE))
        return [dict(zip(columns, values)) for values in zip(*columns.values())]

    @property
    def has_metrics(self):
        return (self.path / METRICS_FILE).is_file()

    @property
    def has_attention(self):
        return (self.path / ATTENTION_FILE).is_file()

    def attention(self):
        """``attention.npz`` as an :class:`AttentionSet`, checked for consistency."""
        model = self.record.model
        if not (self.path / ATTENTION_FILE).is_file() and not self.record.is_lstm:
            raise InputError(f"'{self.path}' is a {model} run: it has no attention weights or "
                             f"representations; attention figures and t-SNE need a train_attention_lstm.py run")
        path = self.file(ATTENTION_FILE)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except Exception as error:  # numpy raises many types for a bad file
            raise InputError(f"cannot read '{path}': {error}") from None
        missing = [key for key in ATTENTION_KEYS if key not in arrays]
        if missing:
            raise InputError(f"'{path}' lacks the array(s) {', '.join(missing)}; "
                             f"it was not written by train_attention_lstm.py")
        lengths = np.asarray(arrays["lengths"])
        n = len(lengths)
        attention = AttentionSet(
            weights=np.asarray(arrays["weights"], dtype=np.float32),
            lengths=lengths.astype(np.int64),
            z=np.asarray(arrays["z"], dtype=np.float32),
            ids=arrays["ids"].astype(str),
            labels=arrays["labels"].astype(str),
            speakers=arrays["speakers"].astype(str),
            split=arrays["split"].astype(str),
            padding_mass=np.asarray(arrays.get("padding_mass", np.zeros(n)), dtype=np.float32),
            head_weights=np.asarray(arrays["head_weights"], np.float32) if "head_weights" in arrays else None,
        )
        check_attention(attention, path)
        return attention


def open_run(path):
    """Open a finished run folder and read its ``config.json``.

    Raises:
        InputError: the folder is missing, still being written (``INCOMPLETE``)
            or lacks a valid ``config.json``.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"run folder '{path}' does not exist; pass a folder under results/ "
                         f"written by train_attention_lstm.py")
    if (path / INCOMPLETE_MARKER).exists():
        raise InputError(f"run folder '{path}' is incomplete (it has an '{INCOMPLETE_MARKER}' "
                         f"file): wait for training to finish or re-run it")
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise InputError(f"run folder '{path}' lacks '{CONFIG_FILE}'; is it a run folder?")
    config = _read_json(config_path)
    check_run_format(config, config_path)
    _require_keys(config, ("classes",), config_path)
    if not isinstance(config["classes"], list) or len(config["classes"]) < 2:
        raise InputError(f"'classes' in '{config_path}' must list at least 2 class labels")
    return Run(path=path, config=config)


def check_keras_archive(path):
    """Raise InputError unless ``path`` is a whole .keras zip archive with a config.json."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            archive.getinfo(KERAS_ARCHIVE_CONFIG)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as error:
        damaged = str(error) or type(error).__name__
    if damaged:
        raise InputError(f"cannot load '{path}': not a complete .keras model file ({damaged}); it is "
                         f"truncated or damaged: copy it again or re-run training")


MODEL_INPUTS = ("features", "mask")  # what every serattn sequence model takes, by name
MODEL_LAYERS = ("attention_representation",)  # what the analysis model reads, by name


def check_model_structure(model, path, n_classes):
    """Raise InputError unless a loaded model has the named inputs, layers and outputs serattn reads.

    A safe but foreign ``.keras`` file (another program's model) loads fine and then
    fails deep inside prediction; this says so in one line first.
    """
    inputs = [tensor.name for tensor in model.inputs]
    layers = [layer.name for layer in model.layers]
    missing = [f"input '{name}'" for name in MODEL_INPUTS if name not in inputs]
    missing += [f"layer '{name}'" for name in MODEL_LAYERS if name not in layers]
    outputs = model.outputs[0].shape[-1] if len(model.outputs) == 1 else None
    if missing or outputs != n_classes:
        what = ", ".join(missing) if missing else f"{outputs} outputs for the run's {n_classes} classes"
        raise InputError(f"'{path}' is not a serattn model of this run ({what}); it was not written by "
                         f"train_attention_lstm.py for this run: point to the run's own model")


def describe_keras_load_error(path, error):
    """One line for a model Keras refuses: the layer it would not rebuild, when the message names one."""
    message = str(error)
    if "Lambda" in message:
        layer = "Lambda"
    else:
        named = re.search(r"deserialize '([\w.]+)'|locate (?:class|function) '([\w.]+)'", message)
        layer = next((name for name in named.groups() if name), None) if named else None
    if layer:
        return f"refusing to load '{path}' (unsafe or unknown layer '{layer.rsplit('.', 1)[-1]}')"
    return f"cannot load '{path}': {message.splitlines()[0] if message else type(error).__name__}"


def check_attention(attention, source):
    """Raise InputError unless the attention arrays fit together."""
    n = len(attention.lengths)
    if attention.lengths.ndim != 1 or n == 0 or np.any(attention.lengths < 1):
        raise InputError(f"'lengths' in '{source}' must be N > 0 frame counts, all >= 1")
    if attention.weights.ndim != 1 or len(attention.weights) != int(attention.lengths.sum()):
        raise InputError(f"'weights' in '{source}' must be ragged, shape (sum of lengths,) = "
                         f"({int(attention.lengths.sum())},), got {attention.weights.shape}")
    if not np.all(np.isfinite(attention.weights)) or np.any(attention.weights < 0):
        raise InputError(f"'weights' in '{source}' must be finite and non-negative")
    if attention.z.ndim != 2 or len(attention.z) != n:
        raise InputError(f"'z' in '{source}' must be (N, units) with N={n}, got {attention.z.shape}")
    for name in ("ids", "labels", "speakers", "split", "padding_mass"):
        if getattr(attention, name).shape != (n,):
            raise InputError(f"'{name}' in '{source}' has shape {getattr(attention, name).shape}, "
                             f"expected ({n},) like 'lengths'")
    unknown = sorted(set(np.unique(attention.split)) - set(SPLITS))
    if unknown:
        raise InputError(f"'split' in '{source}' has unknown value(s) {', '.join(unknown)}; "
                         f"expected: {', '.join(SPLITS)}")


def check_splits(requested, available, source):
    """Raise InputError unless every requested split is known and present.

    Args:
        requested: split names given on the command line.
        available: (N,) split of each utterance.
        source: file named in the message.
    """
    present = sorted(set(np.unique(available)))
    for name in requested:
        if name not in SPLITS:
            raise InputError(f"unknown split '{name}'; expected one of: {', '.join(sorted(SPLITS))}")
        if name not in present:
            raise InputError(f"'{source}' has no '{name}' utterances; "
                             f"choose from: {', '.join(present)}")


def read_csv_columns(path):
    """A CSV file with a header as {column: str array}."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read '{path}': {error}") from None
    if not rows:
        raise InputError(f"'{path}' is empty; expected a CSV file with a header line")
    header, body = rows[0], rows[1:]
    if any(len(row) != len(header) for row in body):
        line = next(i for i, row in enumerate(body, start=2) if len(row) != len(header))
        raise InputError(f"line {line} of '{path}' does not have the {len(header)} fields of its header")
    table = np.array(body, dtype=str).reshape(len(body), len(header))
    return {name: table[:, j] for j, name in enumerate(header)}


def _read_json(path):
    try:
        with open(path) as handle:
            values = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read '{path}': {error}") from None
    if not isinstance(values, dict):
        raise InputError(f"'{path}' must hold a JSON object")
    return values


def _require_keys(values, keys, source):
    missing = [key for key in keys if key not in values]
    if missing:
        raise InputError(f"'{source}' lacks {', '.join(repr(k) for k in missing)}; "
                         f"re-run training to rewrite it")
