"""Pooling variants for the attention LSTM: how frames become one utterance vector.

The published model pools the LSTM outputs with one attention head (weighted sum,
:class:`serattn.model.AttentionPooling`). On emodb_2s that head is sharp (about 15%
of the frames carry most of the weight) and drops utterance-level statistics that
the mean over frames keeps (docs/RESULTS_EMODB.md). The variants here keep the same
scoring layers and names, and differ in what they pool:

* ``attentive-stats``: attention-weighted mean and standard deviation, concatenated
  (Okabe, Koshinaka, Shinoda, "Attentive statistics pooling for deep speaker
  embedding", Interspeech 2018, arXiv 1803.10963).
* ``multihead``: H heads, each with its own scoring vector over the shared
  ``attention_dense1`` hidden layer (the structured self-attention of Lin et al.,
  ICLR 2017, arXiv 1703.03130); their pooled vectors are concatenated.
* ``attention+mean``: the attention representation next to the mean over valid frames.
* ``attention+stats``: the attention representation next to the mean and standard
  deviation over valid frames: the utterance statistics that a sharp head drops (with
  ``--pool-inputs``, those of the input frames too, which alone carry most of what
  the functionals carry).
* ``attention+functionals``: the attention representation next to functionals of the
  input frames over valid frames (mean, standard deviation, skewness, kurtosis,
  minimum, maximum, their relative positions, and the slope of a line fitted over
  the utterance: the moments, extremes and regression of the IS09 functionals). The
  functionals carry what a static model sees; the attention carries what the LSTM
  finds in time, and an ablation shows what each is worth.
* ``class-attention``: one head per class (the published head's scores, one score per
  class), each pooling the LSTM outputs for its own class only: class k's logit is read
  from its own pooled vector (:class:`ClasswiseOutput`), so that "neutral" gets a head of
  its own rather than being recognized by the absence of the other classes' evidence. An
  utterance's attention is its predicted class's head (:class:`PredictedClassWeights`).
  On the demo corpus the neutral head still looks away from its cue (docs/ATTENTION_STUDY.md). Attention pooling per class
  is the multi-label tagging head of Kong, Xu, Wang, Plumbley, "Audio set classification
  with attention model: a probabilistic perspective", ICASSP 2018, arXiv 1711.00927.
* ``region-attention``: built to look at the cue. A one-way LSTM carries a cue into every
  later output, so a head that scores and pools those outputs may look anywhere after
  the cue. Here the pooled values are regions: a small convolution of the input frames
  (:data:`LOCAL_VALUE_WIDTH` frames), which holds the class only where the cue is,
  averaged over :data:`REGION_WIDTH` frames (0.25 s) so that the head scores stretches of
  the utterance rather than a kind of frame; the scores see the regions and the LSTM
  outputs. What it finds: docs/ATTENTION_STUDY.md.
* ``evidence-attention``: attention per class that can only look for evidence *for* its
  class. Every frame gets one score per class from its region (the local convolution
  averaged over :data:`EVIDENCE_REGION_WIDTH` frames) and the LSTM output there; class k's
  attention is the softmax over time of its scores (sharpened by a learned factor per
  class, :class:`ClassSharpness`), and class k's logit is its own scores pooled with that
  attention (:class:`EvidenceOutput`), with no weights of its own. A head whose logit reads
  a pooled vector through free weights can recognize a class by looking where another
  class's cue would be and finding none (what ``class-attention``'s neutral head does); here
  the logit is the attended evidence itself, so the head must find a stretch that speaks
  for its class. This is attention-based multiple-instance pooling with a learned
  sharpness (McFee, Salamon, Bello, "Adaptive pooling operators for weakly labeled sound
  event detection", IEEE/ACM TASLP 2018, arXiv 1804.10070). What it finds:
  docs/ATTENTION_STUDY.md.
* ``guided-evidence-attention`` (``--preset localizing``): ``evidence-attention`` whose
  class attention is also steered by a classifier of each region alone
  (:class:`FrameGuide`), trained by a loss that names every frame as its utterance's class
  (:mod:`serattn.training.frame_loss`) and by nothing else. Evidence attention lets a class
  that the others' absence recognizes (neutral, on the demo corpus) look anywhere; a frame
  classifier cannot learn absence, since a frame without any cue is as often in one class's
  utterances as in another's, so its scores are highest on the class's own cue. What it
  finds: docs/ATTENTION_STUDY.md.

Each variant (and each of the basic LSTM's poolings) is one entry of
:data:`serattn.poolings.POOLINGS`, with its constraints, and one head here, registered
in :data:`HEADS` with ``@head(name)``.

Every layer takes the mask explicitly: padded frames get exactly zero weight, and a
padded utterance gives the same output as the unpadded one. Layer names follow
``build_analysis_model``: ``attention_weights`` is the attention over frames,
``attention_representation`` the pooled vector; ``multihead`` has ``attention_heads``
(per-head weights) instead, and its analysis model reports their mean over heads as
``attention_weights``.
"""

import keras
import numpy as np
from keras import layers, ops

from serattn.errors import InputError
from serattn.features.normalization import STD_MIN, speaker_statistics
from serattn.features.padding import inference_batches
from serattn.models.layers import AttentionPooling, MaskConsumer, MaskedPooling, MaskedTimeSoftmax
from serattn.poolings import ATTENTION_LSTM, POOLINGS, multihead_names, pooling_names

STD_FLOOR = 1e-6  # variance floor inside the square root: a finite gradient at zero spread


@keras.saving.register_keras_serializable(package="serattn")
class MaskedHeadSoftmax(MaskConsumer):
    """Softmax over time of (batch, frames, heads) scores; exactly zero on padding."""

    def call(self, scores, mask):
        mask = ops.expand_dims(ops.cast(mask, "bool"), -1)  # (batch, frames, 1)
        lowest = ops.min(scores, axis=1, keepdims=True)  # not -inf: see MaskedTimeSoftmax
        peak = ops.max(ops.where(mask, scores, lowest), axis=1, keepdims=True)  # (batch, 1, heads)
        exp = ops.where(mask, ops.exp(scores - peak), ops.zeros_like(scores))
        return exp / ops.sum(exp, axis=1, keepdims=True)  # (batch, frames, heads)


@keras.saving.register_keras_serializable(package="serattn")
class HeadMean(layers.Layer):
    """Mean over heads of (batch, frames, heads) weights: one attention over frames."""

    def call(self, head_weights):
        return ops.mean(head_weights, axis=-1)  # (batch, frames)


def _weighted_stats(values, weights):
    """Weighted mean and standard deviation over frames.

    values (batch, frames, units), weights (batch, frames, heads) summing to 1 over
    frames -> mean and std, each (batch, heads, units).
    """
    mean = ops.einsum("bth,btu->bhu", weights, values)
    second = ops.einsum("bth,btu->bhu", weights, values * values)
    std = ops.sqrt(ops.maximum(second - mean * mean, 0.0) + STD_FLOOR)
    return mean, std


@keras.saving.register_keras_serializable(package="serattn")
class AttentiveStatsPooling(MaskConsumer):
    """Attention-weighted mean and standard deviation, concatenated: (batch, 2 * units)."""

    def call(self, values, weights):
        # values (batch, frames, units), weights (batch, frames)
        mean, std = _weighted_stats(values, ops.expand_dims(weights, -1))  # (batch, 1, units) each
        return ops.concatenate([mean[:, 0], std[:, 0]], axis=-1)  # (batch, 2 * units)


@keras.saving.register_keras_serializable(package="serattn")
class MultiHeadPooling(MaskConsumer):
    """Per-head weighted means (and optionally stds), concatenated: (batch, heads * units [* 2])."""

    def __init__(self, stats=False, **kwargs):
        super().__init__(**kwargs)
        self.stats = stats

    def call(self, values, head_weights):
        # values (batch, frames, units), head_weights (batch, frames, heads)
        mean, std = _weighted_stats(values, head_weights)  # (batch, heads, units) each
        pooled = ops.concatenate([mean, std], axis=-1) if self.stats else mean
        size = pooled.shape[1] * pooled.shape[2]  # static, so the classifier can be built
        return ops.reshape(pooled, (-1, size))  # (batch, heads * units [* 2])

    def get_config(self):
        return {**super().get_config(), "stats": self.stats}


@keras.saving.register_keras_serializable(package="serattn")
class AttentionMeanPooling(MaskConsumer):
    """Attention-weighted sum next to the mean over valid frames: (batch, 2 * units);
    with ``stats`` also the standard deviation over valid frames: (batch, 3 * units)."""

    def __init__(self, stats=False, **kwargs):
        super().__init__(**kwargs)
        self.stats = stats

    def call(self, values, weights, mask):
        # values (batch, frames, units), weights and mask (batch, frames)
        attended = ops.sum(values * ops.expand_dims(weights, -1), axis=1)  # (batch, units)
        mask = ops.expand_dims(ops.cast(mask, values.dtype), -1)  # (batch, frames, 1)
        count = ops.maximum(ops.sum(mask, axis=1), 1.0)  # (batch, 1)
        mean = ops.sum(values * mask, axis=1) / count  # (batch, units)
        if not self.stats:
            return ops.concatenate([attended, mean], axis=-1)
        second = ops.sum(values * values * mask, axis=1) / count
        std = ops.sqrt(ops.maximum(second - mean * mean, 0.0) + STD_FLOOR)  # (batch, units)
        return ops.concatenate([attended, mean, std], axis=-1)

    def get_config(self):
        return {**super().get_config(), "stats": self.stats}


FUNCTIONALS = ("mean", "std", "skewness", "kurtosis", "min", "max", "min_position", "max_position", "slope")


def _first_hit(hit, axis):
    """``hit`` (0/1) kept at its first 1 along ``axis`` only: comparisons and a cumulative sum, as argmin/argmax
    in Keras' TensorFlow backend bring ops that TFLite and ONNX lack."""
    return hit * ops.cast(ops.equal(ops.cumsum(hit, axis=axis), 1.0), hit.dtype)


def _first_position(values, extreme, position, weight):
    """Position (batch, D) of the first valid frame where ``values`` equals ``extreme`` (no argmin/argmax:
    :func:`_first_hit`)."""
    hit = ops.cast(ops.equal(values, extreme), values.dtype) * weight  # (batch, frames, D)
    first = _first_hit(hit, axis=1)
    return ops.sum(first * ops.expand_dims(position, -1), axis=1)


@keras.saving.register_keras_serializable(package="serattn")
class MaskedFunctionals(MaskConsumer):
    """Functionals over valid frames, per feature: (batch, frames, D) -> (batch, 9 * D).

    In the order of :data:`FUNCTIONALS`, each block D wide. Padding never enters:
    extremes see padded frames as the utterance's mean, and positions and the
    slope's time axis count valid frames only (0 at the first, 1 at the last).
    """

    def call(self, values, mask):
        # values (batch, frames, D), mask (batch, frames)
        valid = ops.cast(mask, "bool")
        weight = ops.expand_dims(ops.cast(valid, values.dtype), -1)  # (batch, frames, 1)
        count = ops.maximum(ops.sum(weight, axis=1), 1.0)  # (batch, 1)
        mean = ops.sum(values * weight, axis=1) / count  # (batch, D)
        centred = (values - ops.expand_dims(mean, 1)) * weight  # zero on padding
        variance = ops.sum(centred * centred, axis=1) / count
        std = ops.sqrt(variance + STD_FLOOR)
        z = centred / ops.expand_dims(std, 1)
        skewness = ops.sum(z * z * z, axis=1) / count
        kurtosis = ops.sum(z * z * z * z, axis=1) / count - 3.0
        # padding -> the utterance mean, which is never below its minimum or above its maximum
        filled = ops.where(ops.expand_dims(valid, -1), values, ops.expand_dims(mean, 1))
        minimum = ops.min(filled, axis=1)
        maximum = ops.max(filled, axis=1)
        # time 0..1 over the valid frames
        position = ops.cumsum(ops.cast(valid, values.dtype), axis=1) - 1.0  # (batch, frames)
        position = position / ops.maximum(count - 1.0, 1.0)
        min_position = _first_position(filled, ops.expand_dims(minimum, 1), position, weight)  # (batch, D)
        max_position = _first_position(filled, ops.expand_dims(maximum, 1), position, weight)
        position = (position - ops.sum(position * weight[..., 0], axis=1, keepdims=True) / count)
        position = ops.expand_dims(position, -1) * weight  # (batch, frames, 1), zero on padding
        slope = ops.sum(position * centred, axis=1) / ops.maximum(
            ops.sum(position * position, axis=1), STD_FLOOR)
        return ops.concatenate([mean, std, skewness, kurtosis, minimum, maximum, min_position, max_position,
                                slope], axis=-1)


@keras.saving.register_keras_serializable(package="serattn")
class SpeakerStandardize(layers.Layer):
    """Z-normalize utterance functionals with their speaker's statistics.

    (batch, F) functionals and (batch, 2, F) statistics (mean, std over the speaker's
    utterances, from :func:`speaker_functional_statistics`) -> (batch, F). The static
    models get about 3 UA points from normalizing functionals per speaker
    (docs/ATTENTION_VARIANTS.md); batch normalization can only normalize them globally.
    """

    def call(self, functionals, statistics):
        return (functionals - statistics[:, 0]) / statistics[:, 1]


def speaker_functional_statistics(sequences: list[np.ndarray], speakers: np.ndarray, is_copy: np.ndarray | None = None,
                                  batch_size: int = 64) -> np.ndarray:
    """Per-utterance (2, 9 * D) mean and std of its speaker's :class:`MaskedFunctionals`.

    The input of :class:`SpeakerStandardize`: every utterance gets the statistics of its
    speaker's utterances (original ones only when ``is_copy`` marks augmented copies, as
    :class:`~serattn.features.normalization.Normalization` does for frames). Like
    ``--norm speaker``, this uses the test speakers' unlabelled audio.

    Args:
        sequences: list of (T_i, D) normalized frames.
        speakers: (N,) speaker of each utterance.
        is_copy: (N,) bool, True for augmented copies, or None.

    Returns:
        (N, 2, 9 * D) float32.
    """
    layer = MaskedFunctionals()
    functionals = np.zeros((len(sequences), len(FUNCTIONALS) * sequences[0].shape[1]), np.float32)
    for index, inputs in inference_batches(sequences, batch_size):  # length-sorted: little padding
        functionals[index] = np.asarray(layer(inputs["features"], inputs["mask"]))

    def mean_std(sources):
        std = functionals[sources].std(axis=0)
        return np.stack([functionals[sources].mean(axis=0), np.where(std < STD_MIN, 1.0, std)])

    statistics = np.zeros((len(sequences), 2, functionals.shape[1]), np.float32)
    for utterances, values in speaker_statistics(speakers, is_copy, mean_std):
        statistics[utterances] = values
    return statistics


@keras.saving.register_keras_serializable(package="serattn")
class MaskedFrames(MaskConsumer):
    """(batch, frames, D) values with padded frames set to exactly zero.

    A convolution over time sees its neighbours: zeros after the last valid frame make an
    utterance's output the same whatever it is padded to, and whatever the LSTM put there
    (the trainer's unmasked view computes outputs on padding too).
    """

    def call(self, values, mask):
        return values * ops.expand_dims(ops.cast(mask, values.dtype), -1)


@keras.saving.register_keras_serializable(package="serattn")
class MaskedMovingAverage(MaskConsumer):
    """The mean of (batch, frames, D) values over the valid frames of a centred window of ``width`` frames.

    A fixed box, not a learned kernel: what is scored and pooled is a stretch of the utterance, not one
    kind of frame (a loud vowel, a pause) wherever it occurs."""

    def __init__(self, width=25, **kwargs):
        super().__init__(**kwargs)
        self.width = width

    def call(self, values, mask):
        weight = ops.expand_dims(ops.cast(mask, values.dtype), -1)  # (batch, frames, 1)
        before, after = self.width // 2, self.width - 1 - self.width // 2

        def window_sums(x):
            padded = ops.pad(x, [[0, 0], [before + 1, after], [0, 0]])
            total = ops.cumsum(padded, axis=1)
            return total[:, self.width:] - total[:, :-self.width]  # (batch, frames, ...)

        return window_sums(values * weight) / ops.maximum(window_sums(weight), 1.0) * weight

    def get_config(self):
        return {**super().get_config(), "width": self.width}


LOCAL_VALUE_WIDTH = 9  # frames (10 ms each) each local value of region-attention sees
REGION_WIDTH = 25  # frames of local values region-attention averages into one region
EVIDENCE_REGION_WIDTH = 11  # ...and evidence-attention (chosen on the demo corpus's validation speakers)


HEADS = {}  # pooling name (serattn.poolings.POOLINGS) -> the function that builds its head


def head(*names):
    """Register the decorated function as the head of the poolings ``names``.

    A head is called as ``build(outputs, values, mask, heads=..., attention_units=...,
    attention_activation=..., masked=...)``: it scores the LSTM ``outputs`` (batch, frames,
    units), pools ``values`` (batch, frames, V) over the valid frames of ``mask`` and returns
    the ``attention_representation`` tensor (batch, pooled size).
    """
    def register(build):
        for name in names:
            if name in HEADS:
                raise ValueError(f"pooling '{name}' has two heads")
            HEADS[name] = build
        return build
    return register


def _scores(outputs, count, attention_units, attention_activation):
    """``count`` attention scores per frame: (batch, frames, count)."""
    hidden = layers.Dense(attention_units, activation=attention_activation, use_bias=False,
                          name="attention_dense1")(outputs)  # (batch, frames, attention_units)
    return layers.Dense(count, use_bias=False, name="attention_dense2")(hidden)


def _time_weights(outputs, mask, attention_units, attention_activation, masked=True):
    """One attention over frames, the layer ``attention_weights``: (batch, frames)."""
    scores = _scores(outputs, 1, attention_units, attention_activation)  # (batch, frames, 1)
    return MaskedTimeSoftmax(masked=masked, name="attention_weights")(scores, mask)


@head("attention", "attention+functionals")  # the functionals join in build_attention_lstm
def _attention(outputs, values, mask, heads=1, attention_units=50, attention_activation="tanh", masked=True):
    weights = _time_weights(outputs, mask, attention_units, attention_activation, masked)
    return AttentionPooling(name="attention_representation")(values, weights)  # (batch, V)


@head("attentive-stats")
def _attentive_stats(outputs, values, mask, heads=1, attention_units=50, attention_activation="tanh", masked=True):
    weights = _time_weights(outputs, mask, attention_units, attention_activation, masked)
    return AttentiveStatsPooling(name="attention_representation")(values, weights)  # (batch, 2 * V)


@head("multihead")
def _multihead(outputs, values, mask, heads=1, attention_units=50, attention_activation="tanh", masked=True):
    scores = _scores(outputs, heads, attention_units, attention_activation)  # (batch, frames, heads)
    head_weights = MaskedHeadSoftmax(name="attention_heads")(scores, mask)  # (batch, frames, heads)
    # build_analysis_model adds their mean over heads as "attention_weights".
    return MultiHeadPooling(name="attention_representation")(values, head_weights)  # (batch, heads * V)


@head("attention+mean")
def _attention_mean(outputs, values, mask, heads=1, attention_units=50, attention_activation="tanh", masked=True):
    weights = _time_weights(outputs, mask, attention_units, attention_activation, masked)
    return AttentionMeanPooling(name="attention_representation")(values, weights, mask)  # (batch, 2 * V)


@head("attention+stats")
def _attention_stats(outputs, values, mask, heads=1, attention_units=50, attention_activation="tanh", masked=True):
    weights = _time_weights(outputs, mask, attention_units, attention_activation, masked)
    return AttentionMeanPooling(stats=True, name="attention_representation")(values, weights, mask)  # (batch, 3 * V)


@head("region-attention")
def _region_attention(outputs, values, mask, heads=1, attention_units=50, attention_activation="tanh", masked=True,
                      frames=None):
    # What each frame's neighbourhood alone says (it cannot carry a cue past its end), averaged over regions.
    local = layers.Conv1D(outputs.shape[-1], LOCAL_VALUE_WIDTH, padding="same", activation=attention_activation,
                          name="local_values")(MaskedFrames(name="masked_frames")(frames, mask))  # (batch, frames, units)
    region = MaskedMovingAverage(REGION_WIDTH, name="region_values")(local, mask)  # (batch, frames, units)
    scored = layers.Concatenate(name="region_and_outputs")([region, outputs])  # the LSTM outputs help score
    weights = _time_weights(scored, mask, attention_units, attention_activation, masked)
    return AttentionPooling(name="attention_representation")(region, weights)  # (batch, units)


@head("class-attention")
def _class_attention(outputs, values, mask, heads=1, attention_units=50, attention_activation="tanh", masked=True,
                     classes=2):
    scores = _scores(outputs, classes, attention_units, attention_activation)  # (batch, frames, classes)
    class_weights = MaskedHeadSoftmax(name="class_attention")(scores, mask)  # (batch, frames, classes)
    # ClasswiseOutput reads class k's logit from block k; build_analysis_model picks the predicted class's weights.
    return MultiHeadPooling(name="attention_representation")(values, class_weights)  # (batch, classes * V)


def _evidence_head(outputs, mask, frames, classes, attention_activation, guided):
    """The head of ``evidence-attention``, with ``guided`` that of ``guided-evidence-attention``."""
    local = layers.Conv1D(outputs.shape[-1], LOCAL_VALUE_WIDTH, padding="same", activation=attention_activation,
                          name="local_values")(MaskedFrames(name="masked_frames")(frames, mask))  # (batch, frames, units)
    region = MaskedMovingAverage(EVIDENCE_REGION_WIDTH, name="region_values")(local, mask)
    context = layers.Concatenate(name="region_and_outputs")([region, outputs])  # (batch, frames, 2 * units)
    evidence = layers.Dense(classes, name="class_evidence")(context)  # (batch, frames, classes)
    scores = ClassSharpness(name="class_sharpness")(evidence)
    if guided:  # a classifier of each region alone, trained by the frame loss only, steers the attention too
        frame_evidence = layers.Dense(classes, name=FRAME_EVIDENCE)(region)  # (batch, frames, classes)
        scores = layers.Add(name="guided_scores")([scores, FrameGuide(name="frame_guide")(frame_evidence)])
    class_weights = MaskedHeadSoftmax(name="class_attention")(scores, mask)
    # Block k: the region, the LSTM output and every class's evidence, pooled with class k's attention.
    return MultiHeadPooling(name="attention_representation")(
        layers.Concatenate(name="pooled_values")([context, evidence]), class_weights)  # (batch, classes * (2 * units + classes))


@head("evidence-attention")
def _evidence_attention(outputs, values, mask, heads=1, attention_units=50, attention_activation="tanh", masked=True,
                        frames=None, classes=2):
    return _evidence_head(outputs, mask, frames, classes, attention_activation, guided=False)


@head("guided-evidence-attention")
def _guided_evidence_attention(outputs, values, mask, heads=1, attention_units=50, attention_activation="tanh",
                               masked=True, frames=None, classes=2):
    return _evidence_head(outputs, mask, frames, classes, attention_activation, guided=True)


@keras.saving.register_keras_serializable(package="serattn")
class ClassGain(layers.Layer):
    """(..., classes) values times a learned factor per class: ``exp`` of a weight, so above 0, and 1 at the
    start and wherever weight decay pulls it."""

    weight_name = "log_gain"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # elementwise: a Keras mask passes on (to a masked softmax, which drops it)

    def build(self, input_shape):
        self.log_factor = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name=self.weight_name)

    def call(self, values):
        return values * ops.exp(self.log_factor)


@keras.saving.register_keras_serializable(package="serattn")
class ClassSharpness(ClassGain):
    """(batch, frames, classes) scores times a learned factor per class: how sharply each class's attention
    picks its best stretch, from a mean (factor near 0) to a maximum."""

    weight_name = "log_sharpness"


FRAME_EVIDENCE = "frame_evidence"  # guided-evidence-attention's frame classifier (trained by serattn.training.frame_loss)
FRAME_GUIDE_SHARPNESS = 8.0  # its scores' starting factor in the attention (chosen on the demo corpora, ATTENTION_STUDY)
NO_WEIGHT_DECAY = ("log_guide_sharpness",)  # weights that AdamW leaves alone (serattn.training.trainer.compile_model)


@keras.saving.register_keras_serializable(package="serattn")
class FrameGuide(layers.Layer):
    """A frame classifier's (batch, frames, classes) scores as a part of each class's attention scores: times a
    learned factor per class, starting at ``initial_sharpness``, and without a gradient back into the
    classifier.

    The classifier learns from the frame loss alone (each frame named as its utterance's class,
    :mod:`serattn.training.frame_loss`), so the utterance's loss cannot teach it to look where no other
    class's cue is, which is how the attention of a class recognized by the absence of the others drifts
    off its own cue. Its factor is exempt from weight decay (:data:`NO_WEIGHT_DECAY`): the decay would pull
    it to 1 whatever the data say.
    """

    def __init__(self, initial_sharpness=FRAME_GUIDE_SHARPNESS, **kwargs):
        super().__init__(**kwargs)
        self.initial_sharpness = initial_sharpness
        self.supports_masking = True

    def build(self, input_shape):
        self.log_factor = self.add_weight(shape=(input_shape[-1],), name=NO_WEIGHT_DECAY[0],
                                          initializer=keras.initializers.Constant(np.log(self.initial_sharpness)))

    def call(self, scores):
        return ops.stop_gradient(scores) * ops.exp(self.log_factor)

    def get_config(self):
        return {**super().get_config(), "initial_sharpness": self.initial_sharpness}


@keras.saving.register_keras_serializable(package="serattn")
class EvidenceOutput(layers.Layer):
    """Class probabilities from ``evidence-attention``'s pooled vector, (batch, classes * (V + classes)) ->
    (batch, classes): class k's logit is the last ``classes`` entries of block k (every class's evidence
    pooled with class k's attention) at position k, its own evidence under its own attention. No weights."""

    def __init__(self, classes, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes

    def call(self, pooled):
        blocks = ops.reshape(pooled, (-1, self.classes, pooled.shape[-1] // self.classes))  # (batch, classes, V + classes)
        evidence = blocks[:, :, -self.classes:]  # (batch, attention of class k, evidence of class j)
        logits = ops.sum(evidence * ops.eye(self.classes, dtype=evidence.dtype), axis=-1)  # (batch, classes)
        return ops.softmax(logits, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.classes)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


@keras.saving.register_keras_serializable(package="serattn")
class ClasswiseOutput(layers.Layer):
    """Class probabilities from per-class pooled vectors: (batch, classes * V) -> (batch, classes).

    Class k's logit is a linear function of block k only (its own head's pooled vector), so
    each head of ``class-attention`` answers for one class."""

    def __init__(self, classes, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes

    def build(self, input_shape):
        size = input_shape[-1] // self.classes
        self.kernel = self.add_weight(shape=(self.classes, size), initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.classes,), initializer="zeros", name="bias")

    def call(self, pooled):
        blocks = ops.reshape(pooled, (-1, self.classes, pooled.shape[-1] // self.classes))  # (batch, classes, V)
        return ops.softmax(ops.sum(blocks * self.kernel, axis=-1) + self.bias, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.classes)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


@keras.saving.register_keras_serializable(package="serattn")
class PredictedClassWeights(layers.Layer):
    """The attention of the predicted class's head: (batch, frames, classes) weights and
    (batch, classes) probabilities -> (batch, frames)."""

    def call(self, class_weights, probabilities):
        hit = ops.cast(ops.equal(probabilities, ops.max(probabilities, axis=-1, keepdims=True)), class_weights.dtype)
        chosen = _first_hit(hit, axis=-1)  # the first class at the maximum, (batch, classes)
        return ops.sum(class_weights * ops.expand_dims(chosen, 1), axis=-1)


@head("mean", "mean+functionals")  # the basic LSTM's; the functionals join in build_basic_lstm
def _mean(outputs, values, mask, **unused):
    return MaskedPooling("mean", name="attention_representation")(values, mask)  # (batch, V)


@head("last")
def _last(outputs, values, mask, **unused):
    return MaskedPooling("last", name="attention_representation")(values, mask)  # (batch, V)


def attention_head(outputs, mask, pooling="attention", heads=1, attention_units=50,
                   attention_activation="tanh", values=None, masked=True, frames=None, classes=2):
    """Score LSTM outputs, then weigh and pool ``values`` with the attention variant ``pooling``.

    Args:
        outputs: (batch, frames, units) LSTM outputs, which the attention scores.
        mask: (batch, frames) bool, True on real frames.
        pooling: an attention LSTM's pooling of :data:`serattn.poolings.POOLINGS`.
        heads: scoring heads of ``multihead``.
        values: (batch, frames, V) frames to pool; ``outputs`` if None.
        masked: False lets the published ``attention`` see padding (``--no-mask``).
        frames: (batch, frames, D) input frames, which poolings with ``scores="frames"`` score.
        classes: heads of the poolings with ``per_class``.

    Returns:
        The ``attention_representation`` tensor, (batch, pooled size).
    """
    values = outputs if values is None else values

    check_pooling(pooling, heads)
    scored = {"frames": frames} if POOLINGS[pooling].scores == "frames" else {}
    if POOLINGS[pooling].per_class:
        scored["classes"] = classes
    return HEADS[pooling](outputs, values, mask, heads=heads, attention_units=attention_units,
                          attention_activation=attention_activation, masked=masked, **scored)


def check_pooling(pooling, heads=1):
    names = pooling_names(ATTENTION_LSTM)
    if pooling not in names:
        raise InputError(f"unknown pooling '{pooling}' for the attention LSTM; expected one of: "
                         f"{', '.join(names)}")
    if int(heads) != heads or heads < 1:
        raise InputError(f"--heads must be a positive integer, got {heads!r}")
    if heads > 1 and not POOLINGS[pooling].heads:
        raise InputError(f"--heads {heads} needs --pooling {multihead_names()}, got --pooling {pooling}")


def unmasked_lstm_view(model):
    """A model sharing every layer of ``model`` whose ``lstm1`` runs without its mask.

    For post-padded batches this gives the same outputs on valid frames, faster
    (see :func:`serattn.training.trainer_for`); the heads here all take the mask
    explicitly, so nothing else changes.
    """
    def call_without_lstm_mask(layer, *args, **kwargs):
        if layer.name == "lstm1":
            kwargs.pop("mask", None)
        return layer(*args, **kwargs)

    return keras.models.clone_model(model, clone_function=lambda layer: layer,
                                    call_function=call_without_lstm_mask)
