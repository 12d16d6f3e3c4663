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

from serattn.config import LSTM_POOLINGS
from serattn.define import ACTIVATIONS
from serattn.errors import InputError
from serattn.models.layers import AttentionPooling, MaskedPooling, MaskedTimeSoftmax, UniformWeights


def build_attention_lstm(
    num_features,
    num_classes,
    units=60,
    activation="tanh",
    recurrent_dropout=0.5,
    attention_units=50,
    attention_activation="tanh",
    masked=True,
):
    """Build the published attention LSTM (functional API, every layer named).

    Args:
        num_features: D, features per frame (32 for IS09 LLD + deltas).
        num_classes: size of the softmax output.
        units: LSTM units (published: 60).
        activation: LSTM activation, ``"tanh"`` or ``"relu"`` (published: both).
        recurrent_dropout: dropout on the recurrent state (published: 0.5).
        attention_units: units of the first attention layer (published: 50).
        attention_activation: its activation (published: tanh).
        masked: skip padded frames (see module docstring).

    Returns:
        A ``keras.Model`` with inputs ``{"features", "mask"}`` and output
        ``(batch, num_classes)`` probabilities.
    """
    check_model_args(num_features, num_classes, units, activation, recurrent_dropout,
                     attention_units, attention_activation)
    features = keras.Input(shape=(None, num_features), name="features")
    mask = keras.Input(shape=(None,), dtype="bool", name="mask")

    lstm_mask = mask if masked else None
    outputs = layers.LSTM(units, activation=activation, recurrent_dropout=recurrent_dropout,
                          return_sequences=True, name="lstm1")(features, mask=lstm_mask)
    # (batch, frames, units)
    scores = layers.Dense(attention_units, activation=attention_activation, use_bias=False,
                          name="attention_dense1")(outputs)  # (batch, frames, attention_units)
    scores = layers.Dense(1, use_bias=False, name="attention_dense2")(scores)  # (batch, frames, 1)
    weights = MaskedTimeSoftmax(masked=masked, name="attention_weights")(scores, mask)  # (batch, frames)
    representation = AttentionPooling(name="attention_representation")(outputs, weights)  # (batch, units)
    probabilities = layers.Dense(num_classes, activation="softmax", name="output")(representation)
    return keras.Model({"features": features, "mask": mask}, probabilities, name="attention_lstm")


def build_basic_lstm(num_features, num_classes, units=60, activation="tanh", recurrent_dropout=0.5,
                     pooling="mean", masked=True):
    """The series' basic dynamic model: the same LSTM without attention.

    The utterance vector is the mean of the LSTM outputs over valid frames
    (``pooling="mean"``) or the output at the last valid frame (``"last"``). It is
    named ``attention_representation`` too, so analysis code treats both models
    alike; there is no ``attention_weights`` layer.
    """
    check_model_args(num_features, num_classes, units, activation, recurrent_dropout, 1, "tanh")
    if pooling not in LSTM_POOLINGS:
        raise InputError(f"unknown pooling '{pooling}'; expected one of: {', '.join(LSTM_POOLINGS)}")
    features = keras.Input(shape=(None, num_features), name="features")
    mask = keras.Input(shape=(None,), dtype="bool", name="mask")
    outputs = layers.LSTM(units, activation=activation, recurrent_dropout=recurrent_dropout,
                          return_sequences=True, name="lstm1")(features, mask=mask if masked else None)
    representation = MaskedPooling(pooling, name="attention_representation")(outputs, mask)  # (batch, units)
    probabilities = layers.Dense(num_classes, activation="softmax", name="output")(representation)
    return keras.Model({"features": features, "mask": mask}, probabilities, name="basic_lstm")


def build_analysis_model(model):
    """A model sharing ``model``'s weights that outputs probabilities, weights and z.

    Returns:
        ``keras.Model`` mapping the same inputs to ``(probabilities (batch,
        classes), attention weights (batch, frames), representation (batch, units))``.
        A model without attention (basic LSTM) reports uniform weights over the
        valid frames, i.e. what its mean pooling does.
    """
    names = [layer.name for layer in model.layers]
    if "attention_weights" in names:
        weights = model.get_layer("attention_weights").output
    else:
        mask = next(tensor for tensor in model.inputs if tensor.name == "mask")
        weights = UniformWeights(name="uniform_weights")(mask)
    return keras.Model(model.inputs, [model.output, weights,
                                      model.get_layer("attention_representation").output])


def check_model_args(num_features, num_classes, units, activation, recurrent_dropout,
                     attention_units, attention_activation):
    for name, value in [("number of features", num_features), ("units", units),
                        ("attention units", attention_units)]:
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if num_classes < 2:
        raise InputError(f"need at least 2 classes to train a classifier, got {num_classes}")
    for name, value in [("activation", activation), ("attention activation", attention_activation)]:
        if value not in ACTIVATIONS:
            raise InputError(f"unknown {name} '{value}'; expected one of: {', '.join(ACTIVATIONS)}")
    if not 0 <= recurrent_dropout < 1:
        raise InputError(f"recurrent dropout must be in [0, 1), got {recurrent_dropout!r}")
