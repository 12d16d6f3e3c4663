"""Loss and metrics of dimensional and multi-task runs (registered, so model.keras loads in safe mode).

The model's one output is (batch, C + K): C class probabilities (none in a purely
dimensional run) then K values (:class:`~serattn.models.layers.TargetHead`). The
targets are (batch, 1 + K): the class index (ignored without classes) then the true
values. The loss and the metrics split those columns.
"""

import keras
from keras import ops

from serattn.models.layers import UnweightedAverageRecall

EPSILON = 1e-8  # keeps the CCC of a constant batch finite


def batch_ccc(true, predicted):
    """Concordance correlation per column of (batch, K) values, over the batch: (K,)."""
    true_mean, predicted_mean = ops.mean(true, axis=0), ops.mean(predicted, axis=0)
    covariance = ops.mean((true - true_mean) * (predicted - predicted_mean), axis=0)
    denominator = ops.var(true, axis=0) + ops.var(predicted, axis=0) + (true_mean - predicted_mean) ** 2
    return 2 * covariance / (denominator + EPSILON)


@keras.saving.register_keras_serializable(package="serattn")
class TargetLoss(keras.losses.Loss):
    """Weighted sum of the class cross-entropy and each dimension's loss.

    ``kind="ccc"``: 1 - CCC of the dimension over the batch (the loss the CCC-scored
    challenges train with: it fits scale and offset, not only the ranking), the same
    for every utterance of the batch; ``"mse"``: each utterance's squared error.
    Sample weights (class weights of a multi-task run) scale each utterance's share.

    Args:
        num_classes: C, the softmax columns (0 for a purely dimensional run).
        dimensions: the K numeric targets' names, in column order (names the metrics).
        weights: [emotion weight, then one per dimension] (the emotion weight unused without classes).
        kind: ``"ccc"`` or ``"mse"``.
        label_smoothing: of the class targets, as ``--label-smoothing``.
    """

    def __init__(self, num_classes, dimensions, weights, kind="ccc", label_smoothing=0.0, name="target_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.dimensions = [str(d) for d in dimensions]
        self.weights = [float(w) for w in weights]
        self.kind = kind
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
        values, predicted = y_true[:, 1:], y_pred[:, self.num_classes:]
        dimension_weights = ops.convert_to_tensor(self.weights[1:], "float32")
        if self.kind == "ccc":
            per_dimension = ops.expand_dims(1.0 - batch_ccc(values, predicted), 0)  # (1, K), shared by the batch
            loss = ops.sum(per_dimension * dimension_weights, axis=-1) * ops.ones_like(y_true[:, 0])
        else:
            loss = ops.sum((values - predicted) ** 2 * dimension_weights, axis=-1)  # (batch,)
        if self.num_classes:
            classes = ops.one_hot(ops.cast(y_true[:, 0], "int32"), self.num_classes)
            if self.label_smoothing:
                classes = classes * (1 - self.label_smoothing) + self.label_smoothing / self.num_classes
            crossentropy = keras.losses.categorical_crossentropy(classes, y_pred[:, :self.num_classes])
            loss = loss + self.weights[0] * crossentropy
        return loss

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "dimensions": self.dimensions,
                "weights": self.weights,
                "kind": self.kind, "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="serattn")
class ClassRecall(UnweightedAverageRecall):
    """UA of the class columns of a multi-task output (``val_ua``, as in a categorical run)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(y_true[:, 0], y_pred[:, :self.num_classes])


@keras.saving.register_keras_serializable(package="serattn")
class ValueCCC(keras.metrics.Metric):
    """CCC of one dimension over everything seen since the last reset (``val_ccc_arousal``).

    Streaming: count, sums, sums of squares and of products are enough for the CCC
    of the whole validation set, not a mean of batch CCCs.
    """

    def __init__(self, num_classes, index, name="ccc", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.index = int(index)
        self.sums = self.add_variable(shape=(6,), initializer="zeros", name="sums")  # n, t, p, tt, pp, tp

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = ops.cast(y_true[:, 1 + self.index], "float32")
        predicted = ops.cast(y_pred[:, self.num_classes + self.index], "float32")
        self.sums.assign_add(ops.stack([ops.cast(ops.shape(true)[0], "float32"), ops.sum(true), ops.sum(predicted),
                                        ops.sum(true * true), ops.sum(predicted * predicted),
                                        ops.sum(true * predicted)]))

    def result(self):
        n, t, p, tt, pp, tp = (self.sums[i] for i in range(6))
        n = ops.maximum(n, 1.0)
        true_mean, predicted_mean = t / n, p / n
        covariance = tp / n - true_mean * predicted_mean
        denominator = tt / n - true_mean ** 2 + pp / n - predicted_mean ** 2 + (true_mean - predicted_mean) ** 2
        return 2 * covariance / (denominator + EPSILON)

    def reset_state(self):
        self.sums.assign(ops.zeros_like(self.sums))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "index": self.index}


def target_metrics(loss, num_outputs):
    """The compiled metrics of a model whose loss is ``loss``: UA and WA of a categorical
    model (``num_outputs`` classes), else UA of the classes (multi-task) and each dimension's CCC."""
    if not isinstance(loss, TargetLoss):
        return [UnweightedAverageRecall(num_outputs), keras.metrics.SparseCategoricalAccuracy(name="wa")]
    metrics = [ClassRecall(loss.num_classes)] if loss.num_classes else []
    return metrics + [ValueCCC(loss.num_classes, k, name=f"ccc_{dim}") for k, dim in enumerate(loss.dimensions)]
