"""Search spaces: for each trainer flag a range, a log-range or a list of choices (YAML or JSON).

A space file names its trainer and the flags to search, by their flag names
(``learning-rate`` or ``learning_rate``)::

    trainer: attention-lstm          # train_attention_lstm.py; or static (train_static.py)
    params:
      learning-rate: {low: 0.0003, high: 0.01, log: true}
      units: {low: 16, high: 96, step: 16}
      pooling: {choices: [attention, attention+stats]}
      grid.C: {low: 0.001, high: 10, log: true}   # static: one value of a --grid parameter

A trial's values are laid over the command's experiment dict
(:meth:`serattn.search.study.SearchJob.experiment`), so every trial is built and
checked by :meth:`serattn.experiment.Experiment.from_dict`, exactly as the command
with those flags added.
"""

import json
import typing
from dataclasses import dataclass
from pathlib import Path

from serattn.errors import InputError
from serattn.experiment import GROUPS, field_homes
from serattn.config import DataConfig, OutputConfig

TRAINERS = ("attention-lstm", "static")
# Flags a space may not search: the data, the protocol, the output and how the command runs.
NOT_SEARCHABLE = ("data", "train", "test", "input_padding", "cv", "group_by", "split_by", "stratify_speakers_by",
                  "repeats", "label_map", "drop_unmapped", "out",
                  "overwrite", "resume", "config", "seeds", "seed", "jobs", "dask_scheduler", "strategy",
                  "debug", "quiet", "tensorboard", "help", "mixed_precision", "grid_jobs")
SPEC_KEYS = {"low", "high", "log", "step", "choices"}


@dataclass(frozen=True)
class Param:
    """One searched flag: ``choices``, or a ``low``-``high`` range (integers if both bounds are)."""

    name: str  # the parser's dest (learning_rate), or grid.NAME for a static model's grid parameter
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        integers = isinstance(self.low, int) and isinstance(self.high, int)
        if integers and (self.step is None or isinstance(self.step, int)):
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def as_dict(self):
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log} | ({"step": self.step} if self.step else {})


@dataclass(frozen=True)
class Space:
    """A trainer and its searched flags."""

    trainer: str
    params: tuple
    source: str

    def suggest(self, trial):
        """{name: value} drawn by the trial's sampler."""
        return {param.name: param.suggest(trial) for param in self.params}

    def as_dict(self):
        return {"trainer": self.trainer, "params": {p.name: p.as_dict() for p in self.params}}

    def check(self, tunable: dict | None = None) -> "Space":
        """InputError for a name the trainer does not know or that may not be searched.

        Args:
            tunable: {static model: its grid parameters} for the models the trials may use
                (the command's ``--model``, or the searched ones): ``grid.NAME`` must be
                tunable for each of them, or every trial would be refused.
        """
        homes = field_homes(self.trainer)
        switches = on_off_settings(self.trainer)
        tunable = tunable or {}
        for param in self.params:
            if param.name.startswith("grid."):
                valid = sorted(set.intersection(*map(set, tunable.values()))) if tunable else []
                if self.trainer != "static" or param.name[5:] not in valid:
                    which = f"--model {', '.join(tunable)}" if self.trainer == "static" else \
                        f"trainer {self.trainer}"
                    raise InputError(f"space file '{self.source}': '{param.name}' is not a grid parameter of "
                                     f"{which}; expected one of: {', '.join('grid.' + t for t in valid) or 'none'}")
                continue
            if param.name not in homes or param.name in NOT_SEARCHABLE:
                known = sorted(set(homes) - set(NOT_SEARCHABLE))
                raise InputError(f"space file '{self.source}': '{param.name.replace('_', '-')}' is not a searchable "
                                 f"flag of trainer {self.trainer}; expected one of: "
                                 f"{', '.join(k.replace('_', '-') for k in known)}")
            if param.name in switches:
                if param.choices is None or not all(isinstance(c, bool) for c in param.choices):
                    raise InputError(f"space file '{self.source}': '{param.name.replace('_', '-')}' is an on/off "
                                     f"flag; give choices: [true, false]")
        return self


def on_off_settings(trainer: str) -> set[str]:
    """The settings of the trainer's experiment that are true or false."""
    model_group, training_group = GROUPS[trainer]
    return {name for group in (DataConfig, model_group, training_group, OutputConfig)
            for name, hint in typing.get_type_hints(group).items() if hint is bool}


def load_space(path):
    """Read and check a space file (``.yaml``/``.yml`` or ``.json``).

    Raises:
        InputError: the file is missing, not YAML/JSON, or a parameter is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"space file '{path}' does not exist")
    import yaml

    text = path.read_text()
    try:
        content = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise InputError(f"space file '{path}' is not valid {kind}: {' '.join(str(error).split())}") from None
    if not isinstance(content, dict) or set(content) - {"trainer", "params"}:
        raise InputError(f"space file '{path}': expected a mapping with the keys trainer and params")
    trainer = content.get("trainer")
    if trainer not in TRAINERS:
        raise InputError(f"space file '{path}': unknown trainer '{trainer}'; expected one of: {', '.join(TRAINERS)}")
    params = content.get("params")
    if not isinstance(params, dict) or not params:
        raise InputError(f"space file '{path}': 'params' must map at least one flag to a range or choices")
    return Space(trainer, tuple(_param(path, name, spec) for name, spec in params.items()), str(path))


def _param(path, name, spec):
    if not isinstance(name, str):  # YAML reads an unquoted 1 or true as a number or a boolean
        raise InputError(f"space file '{path}': parameter names are trainer flags, got {name!r} "
                         f"(a {'number' if isinstance(name, (int, float)) else type(name).__name__}); "
                         f"e.g. learning-rate or grid.C")
    where = f"space file '{path}', parameter '{name}'"
    dest = name if name.startswith("grid.") else str(name).removeprefix("--").replace("-", "_")
    if not isinstance(spec, dict) or not spec or set(spec) - SPEC_KEYS:
        raise InputError(f"{where}: expected {{low: L, high: H[, log: true][, step: S]}} or {{choices: [...]}}, "
                         f"got {spec!r}")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"} or not isinstance(choices, list) or not choices or not all(
                c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            raise InputError(f"{where}: choices must be a non-empty list of numbers, words or true/false, "
                             f"alone, got {spec!r}")
        return Param(dest, choices=tuple(choices))
    low, high, log, step = spec.get("low"), spec.get("high"), spec.get("log", False), spec.get("step")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numbers or not low < high:
        raise InputError(f"{where}: expected numbers low < high, got low={low!r}, high={high!r}")
    if not isinstance(log, bool) or (log and low <= 0):
        raise InputError(f"{where}: log must be true or false, and a log range needs low > 0 (got log={log!r}, "
                         f"low={low!r})")
    if step is not None and (log or not isinstance(step, (int, float)) or isinstance(step, bool) or step <= 0):
        raise InputError(f"{where}: step must be a positive number, and not with log: true (got {step!r})")
    return Param(dest, low, high, log, step)
