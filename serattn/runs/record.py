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
    "functionals_fit": "joint",
    "mask": True,
    "target": (EMOTION,),
    "method": "mean",  # ensembles before --method weighted
    "level": "lld",
    "frame_rate": FRAME_RATE,
    "sample_rate": SAMPLE_RATE,
})
# Settings of the trained model that an exported model card repeats (None where a run has none).
MODEL_KEYS = ("model", "pooling", "heads", "pool_inputs", "functionals_norm", "functionals_fit", "units",
              "attention_units", "activation", "recurrent_dropout")


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

    # --- writing: each kind of run's metrics.json, built from its scores ------------------
    # The keys keep the order metrics.json has always had (its bytes are compared across
    # versions); a keyword left None is a key that kind of run writes only when it has it.

    @classmethod
    def of_lstm(cls, scores: Mapping[str, Any], *, best_epoch: int | None, epochs_auto: int | None,
                diverged_epoch: int | None, val_ua: float | None, test_sets: Mapping | None,
                label_map_dropped: Mapping | None, attention: Mapping[str, Any],
                functionals_fit: Mapping | None = None) -> "RunMetrics":
        """A categorical LSTM run: the test scores (:func:`~serattn.analysis.metrics.evaluate_predictions`),
        the epochs, the functionals' fitted classifier (``--functionals-fit logreg``), validation UA,
        per-test-set scores, label-map drops, attention diagnostics."""
        return cls._of(_n_test(scores), best_epoch=best_epoch, **_present(epochs_auto=epochs_auto),
                       **_present(functionals_fit=functionals_fit),
                       diverged_epoch=diverged_epoch, val_ua=val_ua,
                       **_present(test_sets=test_sets, label_map_dropped=label_map_dropped), **attention)

    @classmethod
    def of_lstm_values(cls, target: tuple[str, ...], class_scores: Mapping[str, Any] | None,
                       value_scores: Mapping[str, Any], *, val_ccc: float | None, val_ua: float | None,
                       best_epoch: int | None, epochs_auto: int | None, diverged_epoch: int | None,
                       label_map_dropped: Mapping | None, attention: Mapping[str, Any]) -> "RunMetrics":
        """A dimensional LSTM run (``class_scores`` None) or a multi-task one: CCC, Pearson and MSE per
        dimension (:func:`~serattn.targets.evaluate_values`), UA and WA too with emotion."""
        classified = class_scores is not None
        return cls._of(target=list(target), **_without_n(class_scores), **_n_test(value_scores), val_ccc=val_ccc,
                       **({"val_ua": val_ua} if classified else {}), best_epoch=best_epoch,
                       **_present(epochs_auto=epochs_auto), diverged_epoch=diverged_epoch,
                       **_present(label_map_dropped=label_map_dropped), **attention)

    @classmethod
    def of_static(cls, scores: Mapping[str, Any], *, val_ua: float | None, test_sets: Mapping | None,
                  label_map_dropped: Mapping | None, best_params: Mapping, selection: str, grid_scores: Any,
                  fit_info: Mapping[str, Any], seconds: float) -> "RunMetrics":
        """A static model: the test scores, then the hyper-parameter search (what won, how it was chosen, the
        grid's scores), the fit (:func:`~serattn.training.static.fit_static_model`'s info) and its time."""
        return cls._of(_n_test(scores), best_epoch=None, val_ua=val_ua,  # no epochs to choose among
                       **_present(test_sets=test_sets, label_map_dropped=label_map_dropped),
                       best_params=best_params, selection=selection, grid_scores=grid_scores, **fit_info,
                       seconds=seconds)

    @classmethod
    def of_ensemble(cls, scores: Mapping[str, Any], *, val_ua: float | None, n_val: int, weights: list,
                    member_test_ua: list) -> "RunMetrics":
        """An ensemble of categorical runs: its test scores, the weights chosen on ``n_val`` validation rows,
        and each member's own test UA."""
        return cls._of(_n_test(scores), best_epoch=None, val_ua=val_ua, n_val=n_val, weights=weights,
                       member_test_ua=member_test_ua)

    @classmethod
    def of_value_ensemble(cls, target: tuple[str, ...], class_scores: Mapping[str, Any] | None,
                          value_scores: Mapping[str, Any], *, val_ua: float | None, val_ccc: float | None,
                          weights: list, member_test_ccc: list) -> "RunMetrics":
        """An ensemble of dimensional (``class_scores`` None) or multi-task runs."""
        classified = {**_without_n(class_scores), "val_ua": val_ua} if class_scores is not None else {}
        return cls._of(target=list(target), **classified, **_n_test(value_scores), best_epoch=None,
                       val_ccc=val_ccc, weights=weights, member_test_ccc=member_test_ccc)

    @classmethod
    def of_folds(cls, scores: Mapping[str, Any], folds: list[dict], *, repeats: list[dict] | None,
                 label_map_dropped: Mapping | None, seconds: float | None) -> "RunMetrics":
        """A categorical cross-validation parent: the scores of the pooled test predictions, each fold's
        (``{"fold", "test_speakers", "ua", "wa", "n"}``) with their mean and std, and with repeated k-fold
        each repeat's (``{"repeat", "ua", "wa", "n"}``) with theirs."""
        fold_ua = [f["ua"] for f in folds if f["ua"] is not None]
        fold_wa = [f["wa"] for f in folds]
        pooled = "ua and wa are over the pooled test predictions of all folds"
        if repeats:
            pooled += " of all repeats (each utterance once per repeat)"
        by_repeat = {} if not repeats else {
            "repeats": repeats, "ua_repeat_mean": float(np.mean([r["ua"] for r in repeats])),
            "ua_repeat_std": float(np.std([r["ua"] for r in repeats]))}
        return cls._of(_n_test(scores), pooled=pooled,
                       ua_fold_mean=float(np.mean(fold_ua)), ua_fold_std=float(np.std(fold_ua)),
                       wa_fold_mean=float(np.mean(fold_wa)), wa_fold_std=float(np.std(fold_wa)),
                       folds=folds, **by_repeat, **_present(label_map_dropped=label_map_dropped, seconds=seconds))

    @classmethod
    def of_value_folds(cls, class_scores: Mapping[str, Any] | None, value_scores: Mapping[str, Any],
                       folds: list[dict], *, repeats: list[dict] | None, seconds: float | None) -> "RunMetrics":
        """A dimensional or multi-task cross-validation parent: the pooled test predictions' scores, each
        fold's mean CCC (``{"fold", "test_speakers", "ccc", "ccc_per_dimension", "n"}``, ``ua`` too with
        emotion) with their mean and std overall and per dimension, and each repeat's ``{"repeat", "ccc", "n"}``."""
        classified = {}
        if class_scores is not None:
            fold_ua = [f["ua"] for f in folds if f["ua"] is not None]
            classified = {**_without_n(class_scores), "ua_fold_mean": float(np.mean(fold_ua)),
                          "ua_fold_std": float(np.std(fold_ua))}
        values = _n_test(value_scores)
        values["dimensions"] = {dim: dict(scores) for dim, scores in values["dimensions"].items()}
        for dim, scores in values["dimensions"].items():
            fold_ccc = [f["ccc_per_dimension"][dim] for f in folds if f["ccc_per_dimension"][dim] is not None]
            scores["ccc_fold_mean"] = float(np.mean(fold_ccc)) if fold_ccc else None
        fold_ccc = [f["ccc"] for f in folds if f["ccc"] is not None]
        return cls._of(**classified, **values,
                       pooled="ccc, pearson and mse (and ua, wa) are over the pooled test predictions of all folds; "
                              "ccc_fold_mean is the mean of the folds' own mean CCC",
                       ccc_fold_mean=float(np.mean(fold_ccc)) if fold_ccc else None,
                       ccc_fold_std=float(np.std(fold_ccc)) if fold_ccc else None,
                       folds=folds, **_present(repeats=repeats, seconds=seconds))

    def with_attention(self, diagnostics: Mapping[str, Any], not_pooled: str | None = None) -> "RunMetrics":
        """A cross-validation parent's metrics with the attention diagnostics of its pooled test utterances
        (``not_pooled``: why its folds' attention.npz were not pooled into one)."""
        return self._of(self.values, **_present(attention_not_pooled=not_pooled), **diagnostics)

    def with_fold_weights(self, fold_weights: list) -> "RunMetrics":
        """An ensemble of cross-validation parents: each fold's weights (each fold's config.json names its own)."""
        return self._of(self.values, fold_weights=fold_weights)

    @classmethod
    def _of(cls, *first: Mapping[str, Any], **keys) -> "RunMetrics":
        values: dict[str, Any] = {}
        for block in first:
            values.update(block)
        values.update(keys)
        return cls(types.MappingProxyType(values))

    def __reduce__(self):
        """Picklable (the mapping proxy is not): metrics travel back from worker processes and Dask."""
        return RunMetrics.of, (dict(self.values),)


def _n_test(scores: Mapping[str, Any]) -> dict:
    """Scores of the test rows with their count ``n`` as metrics.json's ``n_test`` (last)."""
    scores = dict(scores)
    scores["n_test"] = scores.pop("n")
    return scores


def _without_n(scores: Mapping[str, Any] | None) -> dict:
    """Class scores beside value scores: the count is the value scores' (``n_test``)."""
    return {key: value for key, value in (scores or {}).items() if key != "n"}


def _present(**keys) -> dict:
    """The keys whose value is not None: written only by the runs that have them."""
    return {key: value for key, value in keys.items() if value is not None}
