"""An experiment as a value: built from a dict (a recipe, a preset, flags, a search trial), checked once.

Every source of settings is a nested dict of the same shape as :meth:`Experiment.to_dict`::

    trainer: attention-lstm            # or static
    data: {data: data/demo/features.npz, cv: loso}
    model: {activation: relu}
    training: {epochs: 50}
    seeds: [1, 2, 3]
    output: {out: results/paper/relu}

Layers are merged key by key (:func:`merge`), later layers winning: a preset, then
a recipe or a run's config.json, then the flags given on the command line, then a
search trial's values. :meth:`Experiment.from_dict` fills what no layer set (the
model's own default pooling, ``functionals_norm: auto`` and ``functionals_fit: auto``, a static model's default
grid) and runs every check, before any data is read.
"""

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serattn import config
from serattn.atomic import write_atomically
from serattn.config import (
    DataConfig,
    ModelConfig,
    OutputConfig,
    StaticModelConfig,
    StaticTrainConfig,
    TrainConfig,
)
from serattn.errors import InputError
from serattn.poolings import default_pooling, has_functionals, pooling_names
from serattn.static_models import static_model
from serattn.targets import EMOTION, parse_loss_weights, parse_targets

TRAINERS = ("attention-lstm", "static")
GROUPS = {  # trainer -> (model group, training group)
    "attention-lstm": (ModelConfig, TrainConfig),
    "static": (StaticModelConfig, StaticTrainConfig),
}
# Keys of a run's config.json that a rerun (--config, --recipe) does not take over: how the earlier
# command was run, not what it trained.
NOT_SAVED = ("out", "overwrite", "resume", "quiet", "tensorboard", "jobs", "dask_scheduler", "grid_jobs", "seeds")


@dataclass(frozen=True)
class Experiment:
    """One command's experiment: data, model, training, output, and the seeds to run.

    ``model``/``training`` are :class:`~serattn.config.ModelConfig`/:class:`~serattn.config.TrainConfig`
    for the LSTM and :class:`~serattn.config.StaticModelConfig`/:class:`~serattn.config.StaticTrainConfig`
    for static models. Build it with :meth:`from_dict` (checked); copy it with a change
    with :func:`dataclasses.replace`.
    """

    data: DataConfig
    model: ModelConfig | StaticModelConfig
    training: TrainConfig | StaticTrainConfig
    output: OutputConfig
    seeds: tuple[int, ...] = (1,)

    @property
    def seed(self) -> int:
        return self.training.seed

    @property
    def is_lstm(self) -> bool:
        return isinstance(self.model, ModelConfig)

    @property
    def trainer(self) -> str:
        return "attention-lstm" if self.is_lstm else "static"

    def with_seed(self, seed: int, out: str | Path) -> "Experiment":
        """The same experiment for one seed, written to ``out``."""
        return dataclasses.replace(self, training=dataclasses.replace(self.training, seed=seed),
                                   output=dataclasses.replace(self.output, out=str(out)), seeds=(seed,))

    def with_out(self, out: str | Path) -> "Experiment":
        return dataclasses.replace(self, output=dataclasses.replace(self.output, out=str(out)))

    def check(self) -> "Experiment":
        """InputError for any value or combination that cannot run; every check, before any data is read."""
        self.data.check()
        self.model.check()
        self.training.check()
        self.output.check()
        if not self.seeds:
            raise InputError("--seeds: expected at least one seed")
        if self.output.resume and len(self.seeds) > 1:
            raise InputError("--resume continues one run folder; resume each seed's folder on its own")
        if self.output.seed_ensemble and len(self.seeds) < 2:
            raise InputError("--seed-ensemble averages the runs of several seeds; give --seeds, e.g. --seeds 1,2,3")
        if not self.is_lstm:
            return self
        targets = self.model.target
        parse_loss_weights(self.training.loss_weights, targets)
        if self.training.label_smoothing and EMOTION not in targets:
            raise InputError("--label-smoothing smooths class targets; --target has no emotion")
        if self.training.epochs == config.AUTO_EPOCHS and self.data.split_by:
            raise InputError("--epochs auto chooses the epochs by inner speaker folds; with --split-by the "
                             "corpus's validation partition chooses them: drop one of the two")
        if self.training.epochs == config.AUTO_EPOCHS and self.data.val_speakers not in ("0", "none", ""):
            raise InputError(f"--epochs auto chooses the epochs by inner speaker folds and then trains on every "
                             f"training speaker; drop --val-speakers {self.data.val_speakers}")
        if self.model.functionals_norm == "speaker" and self.data.norm != "speaker":
            raise InputError(f"--functionals-norm speaker uses each speaker's statistics, as --norm speaker does; "
                             f"use it with --norm speaker, not --norm {self.data.norm}")
        blocker = config.fused_lstm_blocker(self.model, self.training)
        if self.training.lstm_kernel == "fused" and blocker:
            raise InputError(f"--lstm-kernel fused computes the Keras LSTM exactly only with {blocker}; use "
                             f"--lstm-kernel auto or keras")
        strategy = self.training.strategy
        if (self.output.jobs > 1 or self.output.dask_scheduler) and strategy != "default":
            raise InputError(f"--jobs and --dask-scheduler run whole folds and seeds per process; with --strategy "
                             f"{strategy} one run already spans the devices, so use one or the other")
        if self.output.resume and strategy == "multiworker":
            raise InputError("--resume is not supported with --strategy multiworker (every worker would need the "
                             "chief's checkpoint); resume with --strategy default or mirrored, or start again")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The experiment as plain YAML/JSON values; :meth:`from_dict` of it gives it back."""
        data = _plain(dataclasses.asdict(self.data))
        if not self.is_lstm:
            data.pop("input_padding")  # static models read functionals, never padded frames
        return {"trainer": self.trainer,
                "data": data,
                "model": _plain(dataclasses.asdict(self.model)),
                "training": _plain(dataclasses.asdict(self.training)),
                "seeds": list(self.seeds),
                "output": _plain(dataclasses.asdict(self.output))}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> "Experiment":
        """The experiment a nested dict describes (a recipe, merged layers, :meth:`to_dict`), checked.

        Keys left out take the defaults of the groups, or of the chosen model (its pooling,
        grid, hidden sizes, solver iterations). Values may also be in their flag form
        (``cv: kfold-speakers 5``, ``seeds: 1,2,3``, ``grid: C=0.1,1``, ``hidden: 128,64``).

        Raises:
            InputError: an unknown key or trainer, a value of the wrong type, or any
                check of :meth:`check`.
        """
        spec = check_spec(spec)
        trainer = spec.get("trainer") or "attention-lstm"
        model_group, training_group = GROUPS[trainer]
        data = _group(DataConfig, spec.get("data", {}), "data")
        model = dict(spec.get("model", {}))
        training = _group(training_group, spec.get("training", {}), "training")
        output = dict(spec.get("output", {}))
        seeds = config.parse_seeds(spec.get("seeds"), training.seed)
        if trainer == "attention-lstm":
            if training.epochs == config.AUTO_EPOCHS and spec.get("data", {}).get("val_speakers") is None:
                data = dataclasses.replace(data, val_speakers="0")  # the inner folds validate; all speakers train
            if model.get("pooling") is None:  # the model's own pooling
                model["pooling"] = default_pooling(model.get("model", "attention-lstm"))
            if model.get("functionals_norm") == "auto":  # normalized like the frames; config.json records which
                speaker = data.norm == "speaker" and has_functionals(model["pooling"])
                model["functionals_norm"] = "speaker" if speaker else "batch"
            model["target"] = parse_targets(model.get("target"))
            if model.get("functionals_fit") == "auto":  # fitted wherever it can be: per-speaker functionals, classes
                fits = model.get("functionals_norm") == "speaker" and model["target"] == (EMOTION,)
                model["functionals_fit"] = "logreg" if fits else "joint"
            model = _group(ModelConfig, model, "model")
            # the published model pre-padded every utterance to one length
            training = dataclasses.replace(training, pad_to_max=training.pad_to_max or not model.mask)
            default_out = f"results/{model.model}-{model.activation}-seed{training.seed}"
        else:
            entry = static_model(model.get("model", "linear-svm"))
            if not isinstance(model.get("grid"), dict):
                model["grid"] = config.parse_grid(model.get("grid"), entry.name)
            model["hidden"] = _hidden(model.get("hidden")) if entry.hidden else None
            if model.get("max_iter") is None:
                model["max_iter"] = entry.max_iter
            model = _group(StaticModelConfig, model, "model")
            default_out = f"results/{model.model}-seed{training.seed}"
        output = _group(OutputConfig, output, "output")
        output = dataclasses.replace(output, out=output.resume or output.out or default_out)
        if trainer == "static":  # --jobs runs whole folds and seeds side by side, or grid fits inside one run
            several_runs = bool(data.cv) or len(seeds) > 1
            output = dataclasses.replace(output, grid_jobs=1 if several_runs else output.jobs)
        return cls(data, model, training, output, seeds).check()

    def to_flags(self) -> dict[str, Any]:
        """The flat ``{flag: value}`` record of config.json (output behaviour left out)."""
        flags = {}
        for group in (self.data, self.model, self.training):
            flags.update(dataclasses.asdict(group))
        flags["cv"] = list(self.data.cv) if self.data.cv else None
        if not self.is_lstm:  # static models read functionals: no padded input, no --input-padding
            flags.pop("input_padding")
            flags["hidden"] = list(self.model.hidden) if self.model.hidden else None
        flags["out"] = self.output.out
        if self.is_lstm:
            flags["tensorboard"] = self.output.tensorboard
        return flags


def merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Nested experiment dicts merged group by group; a later layer's key wins."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and key in ("data", "model", "training", "output"):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    return merged


def nest(flags: dict[str, Any], trainer: str) -> dict[str, Any]:
    """Flat ``{field: value}`` (flags, config.json, a preset, a search trial) as a nested experiment dict.

    Every field name is unique across the groups of one trainer, so each key has one home.

    Raises:
        InputError: a key that is no field of the trainer's experiment.
    """
    homes = field_homes(trainer)
    nested: dict[str, Any] = {"trainer": trainer}
    if "seed" in flags and "seeds" not in flags:  # --seed S over a recipe's seeds: that one seed
        nested["seeds"] = None
    for key, value in flags.items():
        if key == "seeds":
            nested["seeds"] = value
        elif key in homes:
            nested.setdefault(homes[key], {})[key] = value
        else:
            raise InputError(f"'{key}' is not a setting of trainer {trainer}; expected one of: "
                             f"{', '.join(sorted(homes))}")
    return nested


def field_homes(trainer: str) -> dict[str, str]:
    """{field name: its group} of the trainer's experiment."""
    model_group, training_group = GROUPS[trainer]
    homes = {}
    for group, cls in [("data", DataConfig), ("model", model_group), ("training", training_group),
                       ("output", OutputConfig)]:
        homes.update({f.name: group for f in dataclasses.fields(cls)})
    if trainer == "static":
        homes.pop("input_padding")  # static models read functionals, never padded frames
    return homes


def saved_layer(saved: dict[str, Any], trainer: str, resume: bool = False) -> dict[str, Any]:
    """A run's config.json (flat, with its derived keys) as the layer a rerun starts from.

    Only the experiment's settings are taken over, not how the earlier command was run.
    """
    homes = field_homes(trainer)
    flags = {k: v for k, v in saved.items() if k in homes and k not in NOT_SAVED}
    if trainer == "attention-lstm":
        if "heads" not in saved and saved.get("model", "attention-lstm") == "attention-lstm" \
                and flags.get("pooling") in pooling_names("basic-lstm"):
            flags.pop("pooling")  # a config.json from before pooling variants said 'mean' for basic-lstm only
        if resume and "lstm_kernel" not in saved:  # started before --lstm-kernel: its checkpoint is the loop's
            flags["lstm_kernel"] = "keras"
    elif flags.get("hidden") is None:
        flags.pop("hidden", None)
    return nest(flags, trainer)


def read_recipe(path: str | Path) -> dict[str, Any]:
    """A recipe file (YAML or JSON), checked for its shape; values are checked by :meth:`Experiment.from_dict`."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"recipe '{path}' does not exist")
    try:
        spec = yaml.safe_load(path.read_text())  # JSON is YAML too
    except yaml.YAMLError as error:
        raise InputError(f"recipe '{path}' is not valid YAML: {' '.join(str(error).split())}") from None
    try:
        return check_spec(spec)
    except InputError as error:
        raise InputError(f"recipe '{path}': {error}") from None


def write_recipe(experiment: Experiment, path: str | Path) -> None:
    """The experiment as a YAML recipe (output behaviour included)."""
    import yaml

    text = yaml.safe_dump(experiment.to_dict(), sort_keys=False)
    write_atomically(path, lambda temporary: Path(temporary).write_text(text))


def check_spec(spec: Any) -> dict[str, Any]:
    """InputError unless ``spec`` has the shape of :meth:`Experiment.to_dict` (keys known, groups mappings)."""
    if not isinstance(spec, dict):
        raise InputError(f"an experiment is a mapping of trainer, data, model, training, seeds and output; "
                         f"got {type(spec).__name__}")
    unknown = set(spec) - {"trainer", "data", "model", "training", "seeds", "output"}
    if unknown:
        raise InputError(f"unknown key '{sorted(unknown)[0]}'; expected trainer, data, model, training, seeds "
                         f"and output")
    trainer = spec.get("trainer") or "attention-lstm"
    if trainer not in TRAINERS:
        raise InputError(f"unknown trainer '{trainer}'; expected one of: {', '.join(TRAINERS)}")
    homes = field_homes(trainer)
    for group in ("data", "model", "training", "output"):
        values = spec.get(group, {})
        if not isinstance(values, dict):
            raise InputError(f"'{group}' must map settings to values, got {values!r}")
        for key in values:
            if homes.get(key) != group:
                where = f"; it belongs in '{homes[key]}'" if key in homes else \
                    f"; expected one of: {', '.join(k for k, g in homes.items() if g == group)}"
                raise InputError(f"'{key}' is not a setting of '{group}' for trainer {trainer}{where}")
    return spec


def _group(cls, values, name):
    """``cls(**values)`` with each value of the type its field declares (YAML reads 1e-3 as text)."""
    hints = typing.get_type_hints(cls)
    return cls(**{key: _typed(hints[key], value, f"{name}.{key}") for key, value in values.items()})


def _typed(hint, value, where):
    if value is None or hint is Any:
        return value
    if where.endswith(".cv"):
        return config.parse_cv(value)
    if where.endswith(".epochs"):  # a whole number, or "auto"
        if value == config.AUTO_EPOCHS:
            return value
        hint = int
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in allowed:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and not isinstance(value, bool):
            try:
                if float(value) == int(float(value)):
                    return int(float(value))
            except (TypeError, ValueError):
                pass
        if kind is float and not isinstance(value, bool):
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
        if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # val_speakers: 0.2 in a YAML file means the flag's "0.2"
    if any(kind in (bool, int, float) for kind in allowed):
        expected = " or ".join(kind.__name__ for kind in allowed if kind is not type(None))
        raise InputError(f"{where}: expected {expected}, got {value!r}")
    if isinstance(value, list):
        return tuple(value)
    return value


def _hidden(value):
    """mlp hidden layer sizes: ``128,64``, ``[128, 64]`` or None (one layer of 128)."""
    if value is None:
        return (128,)
    try:
        return tuple(int(units) for units in (value.split(",") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise InputError(f"--hidden takes comma-separated integers, got '{value}'") from None


def _plain(values):
    """Tuples as lists, for YAML and JSON."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
