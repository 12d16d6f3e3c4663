"""The published attention LSTM for speech emotion recognition.

frames (T, D) -> LSTM(60, all time steps) -> Dense(50, tanh, no bias) -> Dense(1, no
bias) -> softmax over time = attention weights (T,) -> weighted sum of the LSTM
outputs = attention representation (60,) -> Dense(classes, softmax).

The model takes two inputs: ``features`` (batch, frames, D) and ``mask`` (batch,
frames), True on real frames. With ``masked=True`` (default) padded frames are
skipped by the LSTM and get exactly zero attention, so an utterance gives the same
output whatever it is padded to. ``masked=False`` ignores the mask as the published
scripts did (they pre-padded every utterance to the longest one and let the softmax
spread weight over the padding); use it to compare with the published numbers.
"""

import keras
from keras import layers

from serattn.define import ACTIVATIONS, FUNCTIONALS_NORMS
from serattn.errors import InputError
from serattn.models.augment import FrameAugment
from serattn.models.layers import TargetHead, UniformWeights
from serattn.models.pooling import (FUNCTIONALS, HEADS, ClassGain, ClasswiseOutput, EvidenceOutput, HeadMean, MaskedFunctionals,
                                    PredictedClassWeights, SpeakerStandardize, attention_head, check_pooling)
from serattn.poolings import BASIC_LSTM, POOLINGS, has_functionals, pooling_names


def build_attention_lstm(
    num_features,
    num_classes,
    units=60,
    activation="tanh",
    recurrent_dropout=0.5,
    attention_units=50,
    attention_activation="tanh",
    masked=True,
    pooling="attention",
    heads=1,
    augment=None,
    pooled_dropout=0.0,
    pool_inputs=False,
    functionals_norm="batch",
    num_values=0,
    functionals_fit="joint",
):
    """Build the published attention LSTM (functional API, every layer named).

    The defaults build the published model; ``pooling``, ``heads``, ``augment``,
    ``pooled_dropout`` and ``pool_inputs`` select the variants of :mod:`serattn.models.pooling` and the
    training-only regularizers of :mod:`serattn.models.augment`.

    Args:
        num_features: D, features per frame (32 for IS09 LLD + deltas).
        num_classes: size of the softmax output (0: none, a dimensional run).
        units: LSTM units (published: 60).
        activation: LSTM activation, ``"tanh"`` or ``"relu"`` (published: both).
        recurrent_dropout: dropout on the recurrent state (published: 0.5).
        attention_units: units of the first attention layer (published: 50).
        attention_activation: its activation (published: tanh).
        masked: skip padded frames (see module docstring).
        pooling: ``"attention"`` (published) or another attention LSTM pooling of
            :data:`serattn.poolings.POOLINGS`.
        heads: attention heads (``pooling="multihead"`` only).
        augment: keyword arguments of :class:`serattn.models.augment.FrameAugment`
            (layer ``augment`` before the LSTM), or None for none.
        pooled_dropout: dropout rate on the pooled vector (layer ``pooled_dropout``).
        pool_inputs: pool the input frames next to the LSTM outputs (layer
            ``pooled_frames``), with the same attention weights; scores still come
            from the LSTM outputs.
        functionals_norm: how ``attention+functionals`` normalizes its functionals:
            ``"batch"`` (batch normalization) or ``"speaker"`` (with the speaker's
            statistics, a third input; see :func:`standardized_functionals`).
        num_values: numeric targets (arousal, valence...) predicted next to the
            classes by a linear head (:class:`~serattn.models.layers.TargetHead`); 0 builds
            the categorical model.
        functionals_fit: ``"joint"``: one softmax layer over the pooled vector and the
            functionals; ``"logreg"``: the functionals get a frozen linear layer of their own,
            which :func:`serattn.training.functionals_fit.fit_functionals_classifier` sets
            before training, and the pooled vector's logits add to it (see :func:`fitted_output`).

    Returns:
        A ``keras.Model`` with inputs ``{"features", "mask"}`` (and
        ``"speaker_functionals"`` with ``functionals_norm="speaker"``) and output
        ``(batch, num_classes)`` probabilities.
    """
    check_model_args(num_features, num_classes, units, activation, recurrent_dropout,
                     attention_units, attention_activation, num_values)
    features = keras.Input(shape=(None, num_features), name="features")
    mask = keras.Input(shape=(None,), dtype="bool", name="mask")
    inputs = {"features": features, "mask": mask} | functionals_inputs(num_features, functionals_norm, pooling)

    check_pooling(pooling, heads)
    if not masked and (POOLINGS[pooling].needs_mask or pool_inputs):
        raise InputError(f"--pooling {pooling} needs the padding mask; drop --no-mask")
    lstm_mask = mask if masked else None
    lstm_input = features
    if augment:
        lstm_input = FrameAugment(**augment, name="augment")(features, mask)  # training batches only
    outputs = layers.LSTM(units, activation=activation, recurrent_dropout=recurrent_dropout,
                          return_sequences=True, name="lstm1")(lstm_input, mask=lstm_mask)
    # (batch, frames, units)
    values = outputs
    if pool_inputs:  # pool the input frames next to the LSTM outputs
        values = layers.Concatenate(name="pooled_frames")([outputs, lstm_input])  # (batch, frames, units + D)
    if POOLINGS[pooling].per_class and num_values:
        raise InputError(f"--pooling {pooling} has one attention per class and predicts classes only")
    if POOLINGS[pooling].output == "EvidenceOutput" and pooled_dropout:
        raise InputError(f"--pooled-dropout does not apply to --pooling {pooling}: its logits are its pooled evidence")
    representation = attention_head(outputs, mask, pooling, heads, attention_units, attention_activation,
                                    values=values, masked=masked, frames=lstm_input,
                                    classes=num_classes)  # (batch, pooled size)
    functionals = None
    if POOLINGS[pooling].functionals:  # the classifier also sees the functionals of the input frames
        functionals = standardized_functionals(lstm_input, mask, inputs.get("speaker_functionals"))
        if functionals_fit == "joint":
            representation = layers.Concatenate(name="pooled")([representation, functionals])
    if pooled_dropout:
        representation = layers.Dropout(pooled_dropout, name="pooled_dropout")(representation)
    if functionals_fit != "joint":
        return keras.Model(inputs, fitted_output(representation, functionals, num_classes, num_values),
                           name="attention_lstm")
    output = (CLASS_OUTPUTS[POOLINGS[pooling].output](num_classes, name="output") if POOLINGS[pooling].output
              else output_head(num_classes, num_values))
    return keras.Model(inputs, output(representation), name="attention_lstm")


CLASS_OUTPUTS = {"ClasswiseOutput": ClasswiseOutput, "EvidenceOutput": EvidenceOutput}  # Pooling.output -> its layer


def build_basic_lstm(num_features, num_classes, units=60, activation="tanh", recurrent_dropout=0.5,
                     pooling="mean", masked=True, functionals_norm="batch", num_values=0, functionals_fit="joint"):
    """The series' basic dynamic model: the same LSTM without attention.

    The utterance vector is the mean of the LSTM outputs over valid frames
    (``pooling="mean"``) or the output at the last valid frame (``"last"``). It is
    named ``attention_representation`` too, so analysis code treats both models
    alike; there is no ``attention_weights`` layer. ``"mean+functionals"`` is the
    ablation of ``--pooling attention+functionals``: the same functionals of the input
    frames next to the mean instead of the attention; ``functionals_fit`` is
    :func:`build_attention_lstm`'s.
    """
    check_model_args(num_features, num_classes, units, activation, recurrent_dropout, 1, "tanh", num_values)
    if pooling not in pooling_names(BASIC_LSTM):
        raise InputError(f"unknown pooling '{pooling}'; expected one of: {', '.join(pooling_names(BASIC_LSTM))}")
    features = keras.Input(shape=(None, num_features), name="features")
    mask = keras.Input(shape=(None,), dtype="bool", name="mask")
    inputs = {"features": features, "mask": mask} | functionals_inputs(num_features, functionals_norm, pooling)
    outputs = layers.LSTM(units, activation=activation, recurrent_dropout=recurrent_dropout,
                          return_sequences=True, name="lstm1")(features, mask=mask if masked else None)
    representation = HEADS[pooling](outputs, outputs, mask)  # (batch, units)
    if POOLINGS[pooling].functionals:
        functionals = standardized_functionals(features, mask, inputs.get("speaker_functionals"))
        if functionals_fit != "joint":
            return keras.Model(inputs, fitted_output(representation, functionals, num_classes, num_values),
                               name="basic_lstm")
        representation = layers.Concatenate(name="pooled")([representation, functionals])
    return keras.Model(inputs, output_head(num_classes, num_values)(representation), name="basic_lstm")


def output_head(num_classes, num_values=0):
    """The layer ``output``: the published softmax, or with numeric targets a :class:`TargetHead`."""
    if not num_values:
        return layers.Dense(num_classes, activation="softmax", name="output")
    return TargetHead(num_classes, num_values, name="output")


def functionals_inputs(num_features, functionals_norm, pooling):
    """``{"speaker_functionals": Input (2, 9 * D)}`` for per-speaker functionals, else ``{}``."""
    if functionals_norm not in FUNCTIONALS_NORMS:
        raise InputError(f"unknown functionals normalization '{functionals_norm}'; expected one of: "
                         f"{', '.join(FUNCTIONALS_NORMS)}")
    if functionals_norm == "batch":
        return {}
    if not has_functionals(pooling):
        raise InputError(f"--functionals-norm speaker needs a pooling with functionals, got --pooling {pooling}")
    return {"speaker_functionals": keras.Input(shape=(2, len(FUNCTIONALS) * num_features),
                                               name="speaker_functionals")}


def standardized_functionals(frames, mask, speaker_statistics=None):
    """The standardized functionals of ``frames`` (layer ``functionals_norm``), which the classifier sees next
    to the pooled vector.

    Kurtosis and slopes are on other scales than z-normalized means, so the functionals
    are standardized, as a static model's are: with batch normalization (global
    statistics), or with ``speaker_statistics`` (batch, 2, 9 * D), each speaker's own.
    """
    functionals = MaskedFunctionals(name="frame_functionals")(frames, mask)  # (batch, 9 * D)
    if speaker_statistics is None:
        return layers.BatchNormalization(name="functionals_norm")(functionals)
    return SpeakerStandardize(name="functionals_norm")(functionals, speaker_statistics)


FITTED_LAYER = "functionals_logits"  # fitted_output's frozen layer: the functionals' fitted logistic regression


def has_fitted_functionals(model) -> bool:
    """Whether ``model`` was built with ``functionals_fit="logreg"`` (:func:`fitted_output`)."""
    return FITTED_LAYER in [layer.name for layer in model.layers]


def fitted_output(representation, functionals, num_classes, num_values=0):
    """Softmax of the functionals' logits from a frozen layer plus the pooled vector's own.

    Trained jointly, the functionals' weights stop learning once the LSTM fits the training
    set, which on a small corpus takes a few epochs (docs/ATTENTION_VARIANTS.md): the network
    then falls short of logistic regression on the same functionals. Here
    ``functionals_logits`` is that logistic regression, fitted to the training set first
    (:func:`serattn.training.functionals_fit.fit_functionals_classifier`) and left as it is
    (not trainable, so weight decay leaves it too), and the network learns what it leaves. A
    gain per class on those logits (``functionals_gain``, 1 at the start and where weight decay
    pulls it) lets the network trust them less where the functionals carry little, as on a
    corpus whose cue is one short stretch.
    """
    if num_values:
        raise InputError("--functionals-fit logreg fits a classifier and applies to --target emotion only")
    own = layers.Dense(num_classes, name="pooled_logits")(representation)
    fitted = layers.Dense(num_classes, trainable=False, kernel_initializer="zeros",
                          name=FITTED_LAYER)(functionals)  # set before training
    fitted = ClassGain(name="functionals_gain")(fitted)  # how far the network trusts it, per class
    return layers.Activation("softmax", name="output")(layers.Add(name="logits")([own, fitted]))


# The layers a pooling's attention over frames comes from (serattn.poolings.Pooling.weights) -> that attention,
# given the layer's output and the model's.
FRAME_WEIGHTS = {
    "attention_weights": lambda weights, output: weights,  # (batch, frames)
    "attention_heads": lambda head_weights, output: HeadMean(name="attention_weights")(head_weights),  # their mean
    "class_attention": lambda class_weights, output: PredictedClassWeights(name="attention_weights")(
        class_weights, output),  # the predicted class's head
}


def build_analysis_model(model):
    """A model sharing ``model``'s weights that outputs probabilities, weights and z.

    Returns:
        ``keras.Model`` mapping the same inputs to ``(probabilities (batch,
        classes), attention weights (batch, frames), representation (batch, units))``.
        A model without attention (basic LSTM) reports uniform weights over the
        valid frames, i.e. what its mean pooling does; a multi-head model the mean
        of its heads' weights; a model with one head per class its predicted class's.
    """
    names = [layer.name for layer in model.layers]
    source = next((name for name in FRAME_WEIGHTS if name in names), None)
    if source is not None:
        weights = FRAME_WEIGHTS[source](model.get_layer(source).output, model.output)  # (batch, frames)
    else:
        mask = next(tensor for tensor in model.inputs if tensor.name == "mask")
        weights = UniformWeights(name="uniform_weights")(mask)
    return keras.Model(model.inputs, [model.output, weights,
                                      model.get_layer("attention_representation").output])


def check_model_args(num_features, num_classes, units, activation, recurrent_dropout,
                     attention_units, attention_activation, num_values=0):
    for name, value in [("number of features", num_features), ("units", units),
                        ("attention units", attention_units)]:
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if num_classes < 2 and not (num_values and num_classes == 0):
        raise InputError(f"need at least 2 classes to train a classifier, got {num_classes}")
    for name, value in [("activation", activation), ("attention activation", attention_activation)]:
        if value not in ACTIVATIONS:
            raise InputError(f"unknown {name} '{value}'; expected one of: {', '.join(ACTIVATIONS)}")
    if not 0 <= recurrent_dropout < 1:
        raise InputError(f"recurrent dropout must be in [0, 1), got {recurrent_dropout!r}")
