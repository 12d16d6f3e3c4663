"""Regularization for small corpora: training-only input augmentation and a smoothed loss.

:class:`FrameAugment` perturbs the (normalized) input frames of training batches
only; at inference (``training=False``) it returns its input unchanged, so a
trained model predicts exactly as one built without it. It draws from a Keras
``SeedGenerator``, which :class:`serattn.training.EpochSeeds` reseeds every epoch
from ``(seed, epoch)``: runs are deterministic in ``--seed`` and resumable.

* Time masks (SpecAugment, Park et al., Interspeech 2019, arXiv 1904.08779):
  ``count`` stretches of 0..``time_mask`` frames per utterance, placed inside its
  valid frames, set to 0 (the mean, after z-normalization).
* Feature masks: ``count`` bands of 0..``feature_mask`` adjacent features per
  utterance, set to 0 on its valid frames.
* Gaussian noise of standard deviation ``noise_std`` on valid frames.

Padding stays untouched, so the padding invariance of the model holds in training too.
"""

import keras
from keras import ops

from serattn.models.layers import MaskConsumer


@keras.saving.register_keras_serializable(package="serattn")
class FrameAugment(MaskConsumer):
    """SpecAugment-style masking and input noise on training batches of (batch, frames, D)."""

    def __init__(self, time_mask=0, feature_mask=0, count=2, noise_std=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.time_mask = int(time_mask)
        self.feature_mask = int(feature_mask)
        self.count = int(count)
        self.noise_std = float(noise_std)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, features, mask, training=None):
        if not training:
            return features
        valid = ops.cast(mask, features.dtype)  # (batch, frames)
        batch, frames, dim = ops.shape(features)[0], ops.shape(features)[1], ops.shape(features)[2]
        keep = ops.ones_like(features)  # (batch, frames, D)
        lengths = ops.sum(valid, axis=1, keepdims=True)  # (batch, 1)
        frame = ops.cast(ops.arange(frames), features.dtype)[None, :]  # (1, frames)
        feature = ops.cast(ops.arange(dim), features.dtype)[None, :]  # (1, D)
        for _ in range(self.count if self.time_mask else 0):
            start, stop = self._stretch(batch, lengths, self.time_mask, features.dtype)
            inside = ops.logical_and(frame >= start, frame < stop)  # (batch, frames)
            keep = keep * (1.0 - ops.cast(inside, features.dtype))[:, :, None]
        for _ in range(self.count if self.feature_mask else 0):
            width = ops.ones((batch, 1), features.dtype) * ops.cast(dim, features.dtype)
            start, stop = self._stretch(batch, width, self.feature_mask, features.dtype)
            inside = ops.logical_and(feature >= start, feature < stop)  # (batch, D)
            keep = keep * (1.0 - ops.cast(inside, features.dtype))[:, None, :]
        augmented = features * keep
        if self.noise_std > 0:
            noise = keras.random.normal(ops.shape(features), stddev=self.noise_std, seed=self.seed_generator)
            augmented = augmented + noise * valid[:, :, None]
        # Padding keeps its values exactly.
        return ops.where(ops.cast(valid, "bool")[:, :, None], augmented, features)

    def _stretch(self, batch, extent, most, dtype):
        """Random [start, stop) of width 0..most inside [0, extent), per utterance (batch, 1)."""
        u = keras.random.uniform((batch, 2), seed=self.seed_generator, dtype=dtype)
        width = ops.minimum(ops.floor(u[:, :1] * (most + 1)), extent)
        start = ops.floor(u[:, 1:] * (extent - width + 1))
        return start, start + width

    def get_config(self):
        return {**super().get_config(), "time_mask": self.time_mask, "feature_mask": self.feature_mask,
                "count": self.count, "noise_std": self.noise_std, "seed": self.seed}


@keras.saving.register_keras_serializable(package="serattn")
class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy on integer targets smoothed towards the uniform distribution.

    The target is ``(1 - smoothing) * one_hot + smoothing / classes`` (Szegedy et al.,
    CVPR 2016); Keras' own sparse loss has no smoothing option.
    """

    def __init__(self, smoothing=0.1, name="smoothed_sparse_categorical_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true, y_pred):
        classes = ops.shape(y_pred)[-1]
        target = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), classes, dtype=y_pred.dtype)
        target = target * (1.0 - self.smoothing) + self.smoothing / ops.cast(classes, y_pred.dtype)
        return keras.losses.categorical_crossentropy(target, y_pred)

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}
