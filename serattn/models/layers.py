"""Every custom Keras object of serattn, registered for safe-mode loading.

Importing this module (``import serattn.models`` does) registers the layers and
the UA metric under the package name ``serattn``, so a saved ``model.keras``
loads with ``keras.saving.load_model(path, safe_mode=True)``. No ``Lambda`` layers:
each object implements ``get_config`` and is rebuilt from it.
"""

import keras
from keras import layers, ops


class MaskConsumer(layers.Layer):
    """A layer that takes the padding mask as an explicit input and passes no Keras mask on.

    Every masked layer of serattn receives the mask as a tensor (so padding gets exactly
    zero weight); Keras' implicit mask propagation stops at these layers.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, *args, **kwargs):
        return None


@keras.saving.register_keras_serializable(package="serattn")
class MaskedTimeSoftmax(MaskConsumer):
    """Softmax over the time axis of (batch, frames, 1) scores; zero where masked."""

    def __init__(self, masked=True, **kwargs):
        super().__init__(**kwargs)
        self.masked = masked

    def call(self, scores, mask):
        scores = ops.squeeze(scores, axis=-1)  # (batch, frames)
        if not self.masked:
            return ops.softmax(scores, axis=-1)
        mask = ops.cast(mask, "bool")
        # Subtract the max over valid frames only, then zero the padding exactly
        # (adding a large negative number leaves tiny non-zero weights behind). Padding
        # is replaced by the smallest score rather than -inf: tf2onnx turns ``where`` into
        # mask * a + (1 - mask) * b, where 0 * -inf would be NaN (see serattn.deploy.export).
        lowest = ops.min(scores, axis=-1, keepdims=True)  # (batch, 1)
        peak = ops.max(ops.where(mask, scores, lowest), axis=-1, keepdims=True)
        exp = ops.where(mask, ops.exp(scores - peak), ops.zeros_like(scores))
        return exp / ops.sum(exp, axis=-1, keepdims=True)  # (batch, frames)

    def get_config(self):
        return {**super().get_config(), "masked": self.masked}


@keras.saving.register_keras_serializable(package="serattn")
class AttentionPooling(MaskConsumer):
    """Sum over time of attention weights times the LSTM outputs."""

    def call(self, values, weights):
        # values (batch, frames, units), weights (batch, frames) -> (batch, units)
        return ops.sum(values * ops.expand_dims(weights, -1), axis=1)


@keras.saving.register_keras_serializable(package="serattn")
class MaskedPooling(MaskConsumer):
    """Mean over valid frames, or the last valid frame, of (batch, frames, units)."""

    def __init__(self, mode="mean", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, values, mask):
        mask = ops.cast(mask, values.dtype)  # (batch, frames)
        if self.mode == "mean":
            total = ops.sum(values * ops.expand_dims(mask, -1), axis=1)
            return total / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
        # The last valid frame: the highest index where the mask is on.
        frames = ops.cast(ops.arange(ops.shape(mask)[1]), values.dtype)
        last = ops.argmax(mask * (frames + 1.0), axis=1)  # (batch,)
        return ops.take_along_axis(values, ops.reshape(last, (-1, 1, 1)), axis=1)[:, 0]

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="serattn")
class UniformWeights(layers.Layer):
    """1 / length on valid frames, 0 on padding: the weights of mean pooling."""

    def call(self, mask):
        mask = ops.cast(mask, "float32")
        return mask / ops.maximum(ops.sum(mask, axis=-1, keepdims=True), 1.0)


@keras.saving.register_keras_serializable(package="serattn")
class UnweightedAverageRecall(keras.metrics.Metric):
    """UA as a streaming Keras metric, for monitoring and early stopping.

    Sample weights (e.g. from class weighting) are ignored on purpose: UA already
    weighs every class equally, and weighting the counts would change its meaning.
    Classes with no true examples seen so far are left out of the mean, as
    scikit-learn's ``balanced_accuracy_score`` does.
    """

    def __init__(self, num_classes, name="ua", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.confusion = self.add_variable(shape=(num_classes, num_classes), initializer="zeros",
                                           name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.num_classes)
        predicted = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes)
        self.confusion.assign_add(ops.matmul(ops.transpose(true), predicted))

    def result(self):
        support = ops.sum(self.confusion, axis=1)
        recall = ops.diagonal(self.confusion) / ops.maximum(support, 1.0)
        present = ops.cast(support > 0, recall.dtype)
        return ops.sum(recall * present) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="serattn")
class TargetHead(layers.Layer):
    """The head of a dimensional or multi-task run, as one layer named ``output``.

    Class probabilities (a softmax over ``num_classes``; none when 0) next to
    ``num_values`` linear outputs (arousal, valence...): (batch, num_classes + num_values).
    One output tensor keeps every consumer of ``model.output`` (the training views, the
    analysis model, inference) as it is for the categorical model; the loss and the
    metrics split the columns (:mod:`serattn.models.targets`).
    """

    def __init__(self, num_classes, num_values, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.num_values = num_values
        self.classes = layers.Dense(num_classes, activation="softmax", name="classes") if num_classes else None
        self.values = layers.Dense(num_values, name="values")

    def build(self, input_shape):
        if self.classes is not None:
            self.classes.build(input_shape)
        self.values.build(input_shape)

    def call(self, representation):
        values = self.values(representation)
        if self.classes is None:
            return values
        return ops.concatenate([self.classes(representation), ops.cast(values, self.classes.compute_dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes + self.num_values)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "num_values": self.num_values}
