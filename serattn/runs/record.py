"""The run record: what a run folder's ``config.json`` and ``metrics.json`` say, typed, with the defaults of old
folders in one place.

Readers (the recognizer, export, the report and its tables, ensembles, the figure
scripts) ask a :class:`RunConfig` for ``model``, ``target``, ``padding``... instead of
``config.get(key, default)`` each with its own default. A key that older run folders
lack is answered here, once, with the value those runs were trained with (``padding``
"post", ``functionals_norm`` "batch", ``mask`` True, ``target`` emotion...). No
TensorFlow: :func:`serattn.runs.reading.open_run` reads and checks the file
(``Run.record``), this interprets it.
"""

import collections.abc
import dataclasses
import json
import types
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from serattn.define import FRAME_RATE, SAMPLE_RATE
from serattn.runs.folder import CONFIG_FILE, MODEL_SHA256_KEY
from serattn.targets import EMOTION, dimensions

LSTM_MODELS = ("attention-lstm", "basic-lstm")
ENSEMBLE = "ensemble"
# What run folders written before a key was recorded were trained with: the one table of defaults.
DEFAULTS: Mapping[str, Any] = types.MappingProxyType({
    "model": "attention-lstm",  # the first runs recorded no model: all were train_attention_lstm.py's
    "padding": "post",
    "functionals_norm": "batch",
    "mask": True,
    "target": (EMOTION,),
    "method": "mean",  # ensembles before --method weighted
    "level": "lld",
    "frame_rate": FRAME_RATE,
    "sample_rate": SAMPLE_RATE,
})
# Settings of the trained model that an exported model card repeats (None where a run has none).
MODEL_KEYS = ("model", "pooling", "heads", "pool_inputs", "functionals_norm", "units", "attention_units",
              "activation", "recurrent_dropout")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A run's config.json, read only: typed answers with the defaults of old run folders.

    ``values`` is the file's JSON object as written; readers that list every key (the
    report's flags, compare_runs.py's grouping) iterate it, all others use the properties.
    """

    values: Mapping[str, Any]

    @classmethod
    def of(cls, config: "RunConfig | Mapping[str, Any] | None") -> "RunConfig":
        """``config`` as a RunConfig (a plain dict from an older caller, or None for an unreadable one)."""
        return config if isinstance(config, RunConfig) else cls(types.MappingProxyType(dict(config or {})))

    def _get(self, key, default=None):
        value = self.values.get(key)
        return value if value is not None else DEFAULTS.get(key, default)

    # --- what kind of run ---------------------------------------------------------------

    @property
    def model(self) -> str:
        """``attention-lstm``, ``basic-lstm``, a static model's name, or ``ensemble``."""
        return str(self._get("model"))

    @property
    def recorded_model(self) -> str | None:
        """The model as config.json names it, None where it names none."""
        return self.values.get("model")

    @property
    def is_lstm(self) -> bool:
        return self.model in LSTM_MODELS

    @property
    def member_runs(self) -> tuple[str, ...]:
        """An ensemble's member folders (empty for a trained run)."""
        return tuple(self.values.get("member_runs") or ())

    @property
    def folds(self) -> tuple[str, ...]:
        """A cross-validation parent's fold folders (empty for a single run)."""
        return tuple(self.values.get("folds") or ())

    @property
    def is_folded(self) -> bool:
        """Whether config.json lists folds (a cross-validation parent, or an ensemble of them)."""
        return self.values.get("folds") is not None

    @property
    def kind(self) -> str:
        """'ensemble', 'cross-validation', the LSTM model's name or 'static'."""
        if self.member_runs:
            return "ensemble"
        if self.folds:
            return "cross-validation"
        return self.model if self.is_lstm else "static"

    def describe_model(self) -> str:
        """A short name of the model, e.g. ``attention-lstm-tanh`` or ``linear-svm`` (``unknown`` if unrecorded)."""
        model = str(self.values.get("model") or "unknown")
        activation = self.values.get("activation")
        return f"{model}-{activation}" if model.endswith("lstm") and activation else model

    # --- what it predicts ----------------------------------------------------------------

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.values.get("classes") or ())

    @property
    def target(self) -> tuple[str, ...]:
        """What the run predicts (``--target``); emotion for runs from before dimensional targets."""
        return tuple(self._get("target"))

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The numeric targets (arousal, valence...; empty for a categorical run)."""
        return dimensions(self.target)

    @property
    def is_multitask(self) -> bool:
        """Classes and numeric values both."""
        return EMOTION in self.target and bool(self.dimensions)

    @property
    def loss_weights(self) -> str | None:
        """``--loss-weights`` (``emotion=1,arousal=0.5``), None for equal weights."""
        return self.values.get("loss_weights")

    # --- features and model settings -----------------------------------------------------

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.values.get("feature_names") or ())

    @property
    def feature_meta(self) -> dict:
        return dict(self.values.get("feature_meta") or {})

    def _meta(self, key):
        value = self.feature_meta.get(key)
        return value if value is not None else DEFAULTS.get(key)

    @property
    def feature_set(self) -> str | None:
        return self.feature_meta.get("feature_set")

    @property
    def level(self) -> str:
        return str(self._meta("level"))

    @property
    def frame_rate(self) -> float:
        """Frames per second of the features (100 for 10 ms frames)."""
        return float(self.feature_meta.get("frame_rate") or FRAME_RATE)

    @property
    def recorded_frame_rate(self):
        """feature_meta's frame rate as written (an int or float), FRAME_RATE where absent."""
        return self.feature_meta.get("frame_rate", FRAME_RATE)

    @property
    def recorded_sample_rate(self):
        return self.feature_meta.get("sample_rate", SAMPLE_RATE)

    @property
    def opensmile(self) -> str | None:
        """The openSMILE version that extracted the features."""
        return self.feature_meta.get("opensmile")

    @property
    def manifest(self) -> Path | None:
        manifest = self.feature_meta.get("manifest")
        return Path(manifest) if manifest else None

    @property
    def corpus_root(self) -> Path | None:
        root = self.feature_meta.get("corpus_root")
        return Path(root) if root else None

    @property
    def padding(self) -> str:
        return str(self._get("padding"))

    @property
    def functionals_norm(self) -> str:
        return str(self._get("functionals_norm"))

    @property
    def mask(self) -> bool:
        return bool(self._get("mask"))

    @property
    def max_length_used(self) -> int | None:
        return self.values.get("max_length_used")

    def model_settings(self) -> dict:
        """:data:`MODEL_KEYS` as recorded (None where absent), for a model card."""
        return {key: self.values.get(key) for key in MODEL_KEYS}

    # --- protocol ------------------------------------------------------------------------

    @property
    def seed(self):
        return self.values.get("seed")

    @property
    def cv(self):
        """The ``--cv`` spec as recorded (a list such as ``["kfold-speakers", 5]``), or None."""
        return self.values.get("cv")

    @property
    def group_by(self) -> str | None:
        return self.values.get("group_by")

    @property
    def split_by(self) -> str | None:
        return self.values.get("split_by")

    @property
    def method(self) -> str:
        """An ensemble's combination method."""
        return str(self._get("method"))

    @property
    def test_speakers(self) -> tuple[str, ...]:
        return tuple(self.values.get("test_speakers") or ())

    @property
    def val_speakers_used(self) -> tuple[str, ...]:
        return tuple(self.values.get("val_speakers_used") or ())

    @property
    def norm(self) -> str | None:
        return self.values.get("norm")

    # --- provenance ----------------------------------------------------------------------

    @property
    def data_files(self) -> dict:
        """``{role: {"path": ..., "sha256": ...}}`` of the feature files the run read."""
        return dict(self.values.get("data_files") or {})

    @property
    def versions(self) -> dict:
        return dict(self.values.get("versions") or {})

    @property
    def git_commit(self) -> str | None:
        return self.values.get("git_commit")

    @property
    def model_sha256(self) -> dict:
        return dict(self.values.get(MODEL_SHA256_KEY) or {})


def read_record(folder) -> RunConfig:
    """The record of ``folder`` without checks, empty where its config.json is missing or unreadable.

    For following an ensemble's member runs, which may have moved: an unreadable
    member is simply not followed further (it is checked when opened as a member).
    """
    try:
        config = json.loads((Path(folder) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        config = {}
    return RunConfig.of(config if isinstance(config, dict) else {})


@dataclasses.dataclass(frozen=True, eq=False)
class RunMetrics(collections.abc.Mapping):
    """A run's metrics.json, checked by :meth:`serattn.runs.reading.Run.metrics`: typed scores, read only.

    Still a mapping (``metrics["ua"]``) for the tables that list optional diagnostics by
    key; the properties give each score with the value a run without it stands for.
    ``confusion`` is an integer array (rows true) in ``classes`` order.
    """

    values: Mapping[str, Any]

    @classmethod
    def of(cls, metrics: "RunMetrics | Mapping[str, Any]") -> "RunMetrics":
        return metrics if isinstance(metrics, RunMetrics) else cls(types.MappingProxyType(dict(metrics)))

    def __getitem__(self, key):
        return self.values[key]

    def __iter__(self):
        return iter(self.values)

    def __len__(self):
        return len(self.values)

    @property
    def ua(self) -> float | None:
        return self.values.get("ua")

    @property
    def wa(self) -> float | None:
        return self.values.get("wa")

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.values.get("classes") or ())

    @property
    def confusion(self) -> np.ndarray | None:
        confusion = self.values.get("confusion")
        return None if confusion is None else np.asarray(confusion)

    @property
    def per_class_recall(self) -> dict:
        return dict(self.values.get("per_class_recall") or {})

    @property
    def n_test(self) -> int | None:
        return self.values.get("n_test")

    @property
    def best_epoch(self) -> int | None:
        return self.values.get("best_epoch")

    @property
    def seconds(self) -> float | None:
        """Training time; None for runs from before it was recorded."""
        return self.values.get("seconds")

    @property
    def folds(self) -> list:
        """A cross-validation parent's per-fold scores (empty for a single run)."""
        return list(self.values.get("folds") or [])

    @property
    def ua_fold_mean(self) -> float | None:
        return self.values.get("ua_fold_mean")

    @property
    def ua_fold_std(self) -> float | None:
        return self.values.get("ua_fold_std")

    @property
    def test_sets(self) -> dict:
        """``--split-by``: the scores of each test partition on its own."""
        return dict(self.values.get("test_sets") or {})

    @property
    def label_map_dropped(self) -> dict | None:
        """Cross-corpus runs: the utterances each label map dropped, per data role."""
        return self.values.get("label_map_dropped")

    @property
    def ccc(self) -> float | None:
        """Mean CCC over the dimensions of a dimensional or multi-task run."""
        return self.values.get("ccc")

    @property
    def dimension_scores(self) -> dict:
        """``{dimension: {"ccc", "pearson", "mse"...}}`` of a dimensional or multi-task run."""
        return dict(self.values.get("dimensions") or {})

    @property
    def scored_on(self) -> tuple[str, ...]:
        """What the run was scored on: its classes, or a purely dimensional run's dimensions."""
        return self.classes or tuple(self.dimension_scores)
