"""The frame loss of ``--pooling guided-evidence-attention``: every frame named as its utterance's class.

The head's frame classifier (:class:`serattn.models.pooling.FrameGuide`) scores each region of an
utterance alone. Trained with the utterance's class as every frame's target, it learns what the
frames of a class look like where they differ from the frames of the others: on the class's cue,
since everything else is alike in every class (the multiple-instance learner's "each instance
inherits its bag's label"). The loss is added while training only: a view of the model takes the
targets as an input (:data:`FRAME_TARGETS`, each utterance's one-hot class times its class weight)
and the saved model is the one without it.
"""

import serattn

serattn.import_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

from serattn.models.pooling import FRAME_EVIDENCE  # noqa: E402

FRAME_TARGETS = "frame_targets"  # the training view's input: (batch, classes) each utterance's weighted class
FRAME_LOSS_WEIGHT = 1.0  # next to the utterance's cross-entropy (chosen on the demo corpora, ATTENTION_STUDY)


def has_frame_evidence(model) -> bool:
    """Whether ``model`` has a frame classifier for the frame loss to train (``guided-evidence-attention``)."""
    return FRAME_EVIDENCE in [layer.name for layer in model.layers]


def frame_targets(class_indices, weights, num_classes):
    """(N, classes) float32: each utterance's one-hot class times its (class) weight."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(class_indices)] * np.asarray(weights, np.float32)[:, None]


@keras.saving.register_keras_serializable(package="serattn")
class FrameLoss(layers.Layer):
    """Adds ``weight`` times the frames' mean loss against their utterance's class, one logistic loss per class
    (is the frame's utterance of class k?), weighted by the utterance's class weight; passes the model's output
    through unchanged.

    One question per class rather than a softmax over the classes: each class's scores answer for that class
    alone, as its attention reads them (chosen on inner speaker folds of the demo corpus, ATTENTION_STUDY).
    """

    def __init__(self, weight, **kwargs):
        super().__init__(**kwargs)
        self.weight = weight

    def call(self, output, frame_scores, frame_mask, targets):
        is_class = ops.cast(targets > 0, frame_scores.dtype)[:, None, :]  # (batch, 1, classes)
        logistic = is_class * ops.softplus(-frame_scores) + (1 - is_class) * ops.softplus(frame_scores)
        per_frame = ops.sum(targets, axis=-1)[:, None] * ops.sum(logistic, axis=-1)  # (batch, frames)
        valid = ops.cast(frame_mask, per_frame.dtype)
        per_utterance = ops.sum(per_frame * valid, axis=1) / ops.maximum(ops.sum(valid, axis=1), 1.0)
        self.add_loss(self.weight * ops.mean(per_utterance))
        return output

    def compute_output_shape(self, output_shape, *args):
        return output_shape

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


def frame_loss_view(model):
    """A model sharing ``model``'s layers that also takes :data:`FRAME_TARGETS` and adds the frame loss (the
    fused or unmasked view of :func:`~serattn.training.trainer.trainer_for` is then taken of it)."""
    targets = keras.Input(shape=(model.output.shape[-1],), name=FRAME_TARGETS)
    output = FrameLoss(FRAME_LOSS_WEIGHT, name="frame_loss")(
        model.output, model.get_layer(FRAME_EVIDENCE).output, model.input["mask"], targets)
    return keras.Model({**model.input, FRAME_TARGETS: targets}, output, name=model.name)
