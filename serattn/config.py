"""Typed, frozen configurations of an experiment, each group checked by its ``check()``.

:class:`serattn.experiment.Experiment` holds one of each group; the library reads
them and never changes them: a seed or a fold is a new config made with
:func:`dataclasses.replace`. ``config.json`` in a run folder is their flat
serialization (one key per flag, as before this module existed, so
``compare_runs.py --by KEY`` and older run folders keep working).

Groups follow the scripts' flag groups:

* :class:`DataConfig`: which data, which speakers validate, normalization, CV.
* :class:`ModelConfig` / :class:`StaticModelConfig`: what is trained.
* :class:`TrainConfig` / :class:`StaticTrainConfig`: how it is trained.
* :class:`OutputConfig`: where the run folder goes and how the command behaves;
  never recorded as part of the experiment.
"""

import argparse
import importlib.util
import math
from dataclasses import dataclass, field
from typing import Literal

from serattn.define import ACTIVATIONS, CALIBRATIONS, FRAME_POOLS, FUNCTIONALS_FITS, FUNCTIONALS_NORMS
from serattn.errors import InputError
from serattn.poolings import check_pooling_choice, check_pooling_flags
from serattn.static_models import STATIC_MODELS, static_model
from serattn.targets import TARGET_LOSSES, parse_targets

NORMALIZATIONS = ("global", "speaker", "none")
CV_PROTOCOLS = ("loso", "kfold-speakers", "leave-one-group-out")
LSTM_MODELS = ("attention-lstm", "basic-lstm")
STRATEGIES = ("default", "mirrored", "multiworker")
LSTM_KERNELS = ("auto", "keras", "fused")
CLASS_WEIGHT_WORDS = ("balanced", "none")
# --preset NAME sets these flags' defaults (flags given on the command line win). "recommended" is
# the candidate with the best validation UA, averaged over folds and seeds 1-3 (2 speakers held out
# of the training speakers of each emodb_2s LOSO fold; test folds never used), among those of
# docs/ATTENTION_VARIANTS.md: the attention next to nine functionals of the input frames, trained
# with a learning rate at which those functionals' weights learn in tens of epochs, the functionals
# normalized per speaker when the frames are (--functionals-norm auto), and then their classifier a
# logistic regression fitted before training (--functionals-fit auto; chosen on inner folds and validation
# speakers of emodb_2s and two demo corpora, docs/ATTENTION_VARIANTS.md). It sets the model, optimizer
# and regularizers, not the epochs: model selection stays as flagged.
PRESETS = {
    "published": {},
    "recommended": {"pooling": "attention+functionals", "learning_rate": 0.01, "weight_decay": 1.0,
                    "recurrent_dropout": 0.0, "functionals_norm": "auto", "functionals_fit": "auto"},
    # Attention built to look at the cue (docs/ATTENTION_STUDY.md): one attention per class over regions of a
    # small convolution of the input frames and the LSTM outputs, each class's logit its own attended evidence,
    # the attention also steered by a classifier of the regions alone that names every frame as its utterance's
    # class; the recommended optimizer. (It was region-attention, then evidence-attention, before issue 29's
    # seventh round.)
    "localizing": {"pooling": "guided-evidence-attention", "learning_rate": 0.01, "weight_decay": 1.0,
                   "recurrent_dropout": 0.0},
}
# --epochs auto: the epochs are chosen by INNER_EPOCH_FOLDS speaker folds of the training speakers, each
# trained up to AUTO_MAX_EPOCHS with early stopping (--patience), then all training speakers are trained
# for the epoch with the best validation UA averaged over the folds (serattn.training.epochs).
AUTO_EPOCHS = "auto"
AUTO_MAX_EPOCHS = 50
INNER_EPOCH_FOLDS = 3
XLA_PAD_MULTIPLE = 16  # with --jit-compile: padded lengths 16, 32, ... frames, one XLA program each

# The values a field may take, for type checkers and readers; check() refuses others with one line.
Normalization = Literal["global", "speaker", "none"]
CvProtocol = Literal["loso", "kfold-speakers", "leave-one-group-out"]
Cv = tuple[CvProtocol, int | None]  # ("loso", None), ("kfold-speakers", K), ("leave-one-group-out", None)
LstmModel = Literal["attention-lstm", "basic-lstm"]
Activation = Literal["tanh", "relu"]
FunctionalsNorm = Literal["batch", "speaker"]
FunctionalsFit = Literal["joint", "logreg"]
Strategy = Literal["default", "mirrored", "multiworker"]
LstmKernel = Literal["auto", "keras", "fused"]
InputPadding = Literal["auto", "pre", "post"]
Calibration = Literal["auto", "sigmoid", "isotonic"]
FramePool = Literal["none", "mean"]
ClassWeightWord = Literal["balanced", "none"]
TargetLoss = Literal["ccc", "mse"]


@dataclass(frozen=True)
class DataConfig:
    """The feature sets and the speaker protocol."""

    data: str | None = None  # one feature set whose 'split' says train/test (any split with cv)
    train: str | None = None
    test: str | None = None
    input_padding: InputPadding = "auto"  # where padded arrays without lengths carry their zeros
    norm: Normalization = "global"  # see serattn.features.normalization
    val_speakers: str = "0.2"  # fraction, count, ids, or "0"
    cv: Cv | None = None
    group_by: str | None = None  # leave-one-group-out: the column whose values are held out in turn (IEMOCAP session)
    split_by: str | None = None  # a column of the corpus's partitions: train, validation (optional) and test
    # kfold-speakers: folds balanced by the utterances' classes ("classes") or by a speaker attribute
    # (a manifest column; "gender" on RAVDESS), and repeated with other shuffles of the speakers.
    stratify_speakers_by: str | None = None
    repeats: int = 1
    # Cross-corpus: a file mapping each corpus's labels to a common class set (serattn.features.label_map);
    # labels it does not name are refused, or dropped and counted with drop_unmapped.
    label_map: str | None = None
    drop_unmapped: bool = False

    def check(self) -> "DataConfig":
        if self.data and (self.train or self.test):
            raise InputError("give either --data or --train and --test, not both")
        if not self.data and not (self.train and self.test):
            raise InputError("give --data FILE, or --train FILE and --test FILE")
        if self.cv and not self.data:
            raise InputError("--cv splits one --data file by speaker; --train/--test have a fixed split")
        if bool(self.group_by) != bool(self.cv and self.cv[0] == "leave-one-group-out"):
            raise InputError("--cv leave-one-group-out and --group-by COLUMN go together (e.g. --cv "
                             "leave-one-group-out --group-by session)")
        if self.split_by and (self.cv or not self.data):
            raise InputError(f"--split-by {self.split_by} splits one --data file by its partitions; it replaces "
                             f"--cv and --train/--test")
        _check_choice("normalization", self.norm, NORMALIZATIONS)
        if self.repeats < 1 or int(self.repeats) != self.repeats:
            raise InputError(f"--repeats must be at least 1, got {self.repeats}")
        if (self.repeats > 1 or self.stratify_speakers_by) and (not self.cv or self.cv[0] != "kfold-speakers"):
            raise InputError("--repeats and --stratify-speakers-by apply to --cv kfold-speakers K only "
                             "(leave-one-speaker-out has a single way to split)")
        validation_speaker_count(self.val_speakers)
        if self.drop_unmapped and not self.label_map:
            raise InputError("--drop-unmapped drops the labels a --label-map FILE does not name; give --label-map")
        return self


@dataclass(frozen=True)
class ModelConfig:
    """The attention LSTM (or the basic LSTM) and its sizes."""

    model: LstmModel = "attention-lstm"
    units: int = 60
    activation: Activation = "tanh"
    recurrent_dropout: float = 0.5
    attention_units: int = 50
    attention_activation: Activation = "tanh"
    pooling: str = "attention"  # one of serattn.poolings.POOLINGS for this model
    heads: int = 1  # pooling "multihead"
    pool_inputs: bool = False  # attention also pools the input frames next to the LSTM outputs
    functionals_norm: FunctionalsNorm = "batch"  # "+functionals" poolings: batch normalization, or per speaker
    functionals_fit: FunctionalsFit = "joint"  # their classifier: trained with the network, or a fitted logistic regression
    mask: bool = True  # False: published pre-padding, attention sees the padding
    max_length: int | None = None  # frames to pad to with pad_to_max
    # Training-only layers of the attention LSTM (serattn.models.augment), and dropout on the pooled vector.
    time_mask: int = 0
    feature_mask: int = 0
    mask_count: int = 2
    input_noise: float = 0.0
    pooled_dropout: float = 0.0
    # What the head predicts (serattn.targets): "emotion" (softmax over the classes), numeric manifest
    # columns (a regression head: arousal, valence...), or both (multi-task).
    target: tuple[str, ...] = ("emotion",)

    @property
    def predicts_classes(self) -> bool:
        """Whether the model has a softmax over the classes (``emotion`` among its targets)."""
        return "emotion" in self.target

    def check(self) -> "ModelConfig":
        _check_choice("model", self.model, LSTM_MODELS)
        if parse_targets(self.target) != tuple(self.target):
            raise InputError(f"--target: expected a tuple of target names, got {self.target!r}")
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("attention activation", self.attention_activation, ACTIVATIONS)
        for flag in ("units", "attention_units"):
            _check_positive(flag, getattr(self, flag))
        for flag in ("recurrent_dropout", "input_noise", "pooled_dropout"):
            _check_finite(flag, getattr(self, flag))
        if not 0 <= self.recurrent_dropout < 1:
            raise InputError(f"--recurrent-dropout must be in [0, 1), got {self.recurrent_dropout}")
        if self.max_length is not None:
            _check_positive("max_length", self.max_length)
        for flag in ("time_mask", "feature_mask", "mask_count", "input_noise"):
            if getattr(self, flag) < 0:
                raise InputError(f"--{flag.replace('_', '-')} must not be negative, got {getattr(self, flag)}")
        if not 0 <= self.pooled_dropout < 1:
            raise InputError(f"--pooled-dropout must be in [0, 1), got {self.pooled_dropout}")
        self._check_pooling()
        return self

    def _check_pooling(self):
        """Refuse pooling flags the chosen model lacks."""
        spec = check_pooling_choice(self.model, self.pooling, self.heads)
        _check_choice("functionals normalization", self.functionals_norm, FUNCTIONALS_NORMS)
        check_pooling_flags(spec, self.functionals_norm, self.pool_inputs, self.mask, self.target, self.pooled_dropout)
        _check_choice("functionals fit", self.functionals_fit, FUNCTIONALS_FITS)
        if self.functionals_fit != "joint" and not (spec.functionals and self.functionals_norm == "speaker"
                                                    and self.target == ("emotion",)):
            raise InputError(f"--functionals-fit {self.functionals_fit} fits a classifier to per-speaker functionals "
                             f"before training: it needs a pooling with functionals, --functionals-norm speaker (or "
                             f"auto with --norm speaker) and --target emotion; got --pooling {self.pooling}, "
                             f"--functionals-norm {self.functionals_norm}, --target {','.join(self.target)}")
        if self.model == "basic-lstm" and (self.time_mask or self.feature_mask or self.input_noise
                                           or self.pooled_dropout):
            raise InputError("--time-mask, --feature-mask, --input-noise and --pooled-dropout apply to "
                             "--model attention-lstm only")


@dataclass(frozen=True)
class TrainConfig:
    """How the LSTM is trained."""

    epochs: int | str = 50  # or "auto": chosen by inner speaker folds of the training speakers (AUTO_EPOCHS)
    patience: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    clipnorm: float | None = None
    class_weight: str = "balanced"  # balanced, none, or A=1.1,E=0.5,... (checked by parse_class_weight_spec)
    pad_to_max: bool = False
    seed: int = 1
    strategy: Strategy = "default"
    mixed_precision: bool = False
    jit_compile: bool = False  # XLA for the train and test steps; batches padded to multiples of XLA_PAD_MULTIPLE
    weight_decay: float = 0.0  # > 0: AdamW instead of Adam
    label_smoothing: float = 0.0
    lstm_kernel: LstmKernel = "auto"  # LSTM_KERNELS: fused (TensorFlow's BlockLSTM) where exact, else the Keras loop
    target_loss: TargetLoss = "ccc"  # the loss of numeric targets: 1 - CCC over the batch, or the squared error
    loss_weights: str | None = None  # emotion=1,arousal=0.5,...: each target's share of the loss (default 1 each)

    @property
    def pad_multiple(self) -> int:
        """Frames each bucketed batch is padded to a multiple of (XLA compiles once per padded shape)."""
        return XLA_PAD_MULTIPLE if self.jit_compile else 1

    def check(self) -> "TrainConfig":
        if self.epochs != AUTO_EPOCHS:
            if not isinstance(self.epochs, int):
                raise InputError(f"--epochs: expected a number of epochs or 'auto', got '{self.epochs}'")
            _check_positive("epochs", self.epochs)
        for flag in ("batch_size", "patience"):
            _check_positive(flag, getattr(self, flag))
        for flag in ("learning_rate", "weight_decay", "label_smoothing", "clipnorm"):
            _check_finite(flag, getattr(self, flag))
        if self.learning_rate <= 0:
            raise InputError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise InputError(f"--weight-decay must not be negative, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise InputError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("LSTM kernel", self.lstm_kernel, LSTM_KERNELS)
        parse_class_weight_spec(self.class_weight)
        _check_choice("target loss", self.target_loss, TARGET_LOSSES)
        if self.jit_compile and self.strategy != "default":
            raise InputError(f"--jit-compile works with --strategy default only (Keras turns XLA off under "
                             f"tf.distribute), got --strategy {self.strategy}")
        return self


@dataclass(frozen=True)
class StaticModelConfig:
    """A scikit-learn model on utterance functionals."""

    model: str = "linear-svm"  # a registered static model (serattn.static_models)
    grid: dict = field(default_factory=dict)  # hyper-parameter -> values to choose from
    hidden: tuple[int, ...] | None = None  # mlp hidden layer sizes
    max_iter: int = 10_000
    calibration: Calibration = "auto"
    pool: FramePool = "none"  # frame-level input: refuse (none) or mean and std per utterance

    predicts_classes = True  # a static model is a classifier

    def check(self) -> "StaticModelConfig":
        _check_choice("model", self.model, STATIC_MODELS)
        _check_choice("calibration", self.calibration, CALIBRATIONS)
        _check_choice("frame pooling", self.pool, FRAME_POOLS)
        check_grid(self.grid, self.model)
        if self.hidden is not None and (not self.hidden or min(self.hidden) < 1):
            raise InputError(f"--hidden: every layer needs at least 1 unit, got {list(self.hidden)}")
        if int(self.max_iter) != self.max_iter or self.max_iter < 1:
            raise InputError(f"--max-iter must be at least 1, got {self.max_iter}")
        return self


@dataclass(frozen=True)
class StaticTrainConfig:
    """How a static model is chosen and fitted."""

    class_weight: ClassWeightWord = "balanced"
    inner_folds: int = 5
    seed: int = 1

    def check(self) -> "StaticTrainConfig":
        _check_choice("class weight", self.class_weight, CLASS_WEIGHT_WORDS)
        if int(self.inner_folds) != self.inner_folds or self.inner_folds < 2:
            raise InputError(f"--inner-folds must be at least 2, got {self.inner_folds}")
        return self


@dataclass(frozen=True)
class OutputConfig:
    """Where the run folder goes and how the command behaves (not part of the experiment)."""

    out: str | None = None  # None: a name made of the model and seed (Experiment.from_dict)
    overwrite: bool = False
    resume: str | None = None  # the run folder to continue
    quiet: bool = False
    tensorboard: bool = False
    jobs: int = 1  # processes that run the folds and seeds of the command
    dask_scheduler: str | None = None  # tcp://HOST:8786: run folds and seeds on a Dask cluster instead
    grid_jobs: int = 1  # parallel grid-search fits inside one static run
    seed_ensemble: bool = False  # also write OUT-ensemble: the seeds' probabilities averaged

    def check(self) -> "OutputConfig":
        if self.jobs < 1:
            raise InputError(f"--jobs must be at least 1, got {self.jobs}")
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise InputError("--tensorboard needs the tensorboard package, which is not installed: "
                             "pip install tensorboard (in .venv), or drop the flag")
        return self


def fused_lstm_blocker(model, training):
    """What the fused LSTM kernel needs that ``model``/``training`` lack (None: it is exact there).

    TensorFlow's BlockLSTM has tanh and sigmoid built in and no recurrent dropout, and XLA
    has no kernel for it (serattn.models.fused_lstm).
    """
    needs = [need for ok, need in [(model.activation == "tanh", "--activation tanh"),
                                   (not model.recurrent_dropout, "--recurrent-dropout 0"),
                                   (not training.jit_compile, "no --jit-compile"),
                                   (not training.mixed_precision, "no --mixed-precision")] if not ok]
    return ", ".join(needs) or None


def add_speaker_fold_flags(group):
    """The speaker-fold flags that train_attention_lstm.py, train_static.py and search.py share."""
    group.add_argument("--cv", nargs="+", metavar="PROTOCOL",
                       help="speaker cross-validation on --data: 'loso', 'kfold-speakers K' (speakers shuffled "
                            "with --seed) or 'leave-one-group-out' with --group-by COLUMN")
    group.add_argument("--group-by", metavar="COLUMN", default=None,
                       help="--cv leave-one-group-out: the column of the feature set whose values are held out "
                            "in turn (e.g. session on IEMOCAP); every speaker must lie in one group")
    group.add_argument("--split-by", metavar="COLUMN", default=None,
                       help="train, validate and test on the corpus's own partitions in COLUMN (e.g. partition on "
                            "MSP-Podcast): Train/train, Development/validation (replaces --val-speakers), "
                            "Test*/test (default: the 'split' array, or --cv)")
    group.add_argument("--stratify-speakers-by", metavar="COLUMN", default=None,
                       help="kfold-speakers: balance folds by the utterances' classes ('classes', scikit-learn's "
                            "StratifiedGroupKFold) or by a speaker attribute: a column of the corpus's CSV "
                            "manifest ('gender' on RAVDESS: odd actors male, even female)")
    group.add_argument("--repeats", type=int, default=1,
                       help="kfold-speakers: repeat the K folds with R shuffles of the speakers; pooled and "
                            "per-repeat UA (default: %(default)s)")


def add_label_map_flags(group):
    """The cross-corpus flags that train_attention_lstm.py and train_static.py share."""
    group.add_argument("--label-map", metavar="FILE", default=None,
                       help="map each corpus's labels to a common class set (YAML or CSV, see docs/guide/corpora.md): "
                            "e.g. --train emodb.npz --test iemocap.npz with W and ang both 'angry'; labels it does "
                            "not name are refused")
    group.add_argument("--drop-unmapped", action="store_true",
                       help="with --label-map: drop utterances whose label the map does not name (the count is "
                            "printed and written to metrics.json) instead of refusing them")


def parse_class_weight_spec(spec):
    """``balanced``/``none``, or ``A=1.1,E=0.5`` -> {class: weight}; checked, classes not yet known."""
    if spec in CLASS_WEIGHT_WORDS:
        return spec
    weights = {}
    for item in spec.split(","):
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or not math.isfinite(weight) or weight < 0:
            raise InputError(f"--class-weight: expected balanced, none or CLASS=WEIGHT,... with "
                             f"finite, non-negative weights, got '{item}'")
        weights[name.strip()] = weight
    return weights


def parse_grid(text: str | None, model: str) -> dict:
    """``"C=0.01,0.1;gamma=scale"`` -> {"C": [0.01, 0.1], "gamma": ["scale"]}; None -> default.

    Values are numbers, or words (such as ``scale``) kept as text.
    """
    if not text:
        return {name: list(values) for name, values in static_model(model).grid.items()}
    grid = {}
    for item in text.split(";"):
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not values.strip():
            raise InputError(f"--grid: expected NAME=V1,V2[;NAME=...], got '{item}'")
        grid[name] = [number_or_word(value.strip()) for value in values.split(",") if value.strip()]
    return check_grid(grid, model)


def check_grid(grid: dict, model: str) -> dict:
    """InputError unless every name of ``grid`` is a tunable hyper-parameter of ``model``."""
    for name, values in grid.items():
        tunable = static_model(model).tunable
        if name not in tunable:
            raise InputError(f"--grid: '{name}' is not tunable for {model}; expected one of: "
                             f"{', '.join(tunable)}")
        if not isinstance(values, list) or not values:
            raise InputError(f"--grid: '{name}' needs a list of values to choose from, got {values!r}")
    return grid


def describe_grids() -> str:
    """The default grids as text, e.g. ``linear-svm: C=1e-05,0.0001,...; mlp: alpha=...``."""
    def values(items):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in items)

    return "; ".join(f"{model.name}: " + " ".join(f"{name}={values(items)}" for name, items in model.grid.items())
                     for model in STATIC_MODELS.values())


def number_or_word(text: str) -> float | str:
    """A grid value: a number, or a word such as ``scale``."""
    try:
        return float(text)
    except ValueError:
        return text


def validation_speaker_count(spec):
    """``--val-speakers`` as a number (a fraction in (0, 1) or a whole count), None for speaker ids or "0".

    Checked with the other flags, before any data is read; the speaker ids are checked against the data.
    """
    if spec in ("0", "none", ""):
        return None
    try:
        size = float(spec)
    except ValueError:
        return None
    if not math.isfinite(size) or size <= 0 or (size >= 1 and size != int(size)):
        raise InputError(f"--val-speakers: expected a fraction in (0, 1), a speaker count, or "
                         f"speaker ids, got '{spec}'")
    return size


def parse_cv(values: str | list | tuple | None) -> Cv | None:
    """``["loso"]``, ``["kfold-speakers", "K"]`` or ``["leave-one-group-out"]`` -> (protocol, K or None).

    A recipe may also write ``loso`` or ``kfold-speakers 5`` as one string.
    """
    if not values:
        return None
    if isinstance(values, str):
        values = values.split()
    name, *rest = [str(v) for v in values if v is not None]  # a saved config holds [name, K or null]
    if name in ("loso", "leave-one-group-out") and not rest:
        return name, None
    if name == "kfold-speakers" and len(rest) == 1 and rest[0].isdigit() and int(rest[0]) >= 2:
        return name, int(rest[0])
    raise InputError(f"--cv: expected 'loso' or 'kfold-speakers K' with K >= 2, or 'leave-one-group-out', "
                     f"got '{' '.join(map(str, values))}'")


def parse_seeds(text: str | list | tuple | int | None, seed: int) -> tuple[int, ...]:
    """``"1,2,3"`` or ``[1, 2, 3]`` -> (1, 2, 3); None -> (seed,)."""
    if text is None or text == "" or text == []:
        return (seed,)
    try:
        if isinstance(text, (list, tuple)):
            return tuple(_whole_number(s) for s in text)
        return tuple(int(s) for s in str(text).split(","))
    except ValueError:
        raise InputError(f"--seeds: expected comma-separated integers, got '{text}'") from None


def _whole_number(value):
    if isinstance(value, bool) or int(value) != value:
        raise ValueError(value)
    return int(value)


def _check_choice(name, value, choices):
    if value not in choices:
        raise InputError(f"unknown {name} '{value}'; expected one of: {', '.join(choices)}")


def _check_finite(flag, value):
    if value is not None and not math.isfinite(value):
        raise InputError(f"--{flag.replace('_', '-')} must be a finite number, got {value}")


def parse_epochs(text: str | int) -> int | str:
    """``--epochs``: a whole number, or ``auto`` (an argparse type: argparse names the flag in its error)."""
    if str(text) == AUTO_EPOCHS:
        return AUTO_EPOCHS
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of epochs or 'auto', got '{text}'") from None


def _check_positive(flag, value):
    if int(value) != value or value < 1:
        raise InputError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
