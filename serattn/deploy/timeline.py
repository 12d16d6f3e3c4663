"""Emotion over time: sliding windows over a recording's frames, or over a live PCM stream.

A long recording is extracted once (openSMILE over the whole file) and its frames are
cut into windows of ``window`` seconds every ``hop`` seconds; each window gets the
run's class probabilities and attention, as an utterance of that length would. A
window holds the frames that extracting its audio alone would give (``(samples - 400)
// 160 + 1`` frames of 25 ms every 10 ms). Away from its first and last 3 frames the
two agree exactly except openSMILE's F0 and its delta, whose pitch tracker carries state
from the audio before the window (tests/deploy/test_export.py measures both).

A live stream (16 kHz mono signed 16-bit little-endian PCM) has no whole file to
extract: each window's audio is extracted when its last sample arrives.
"""

import dataclasses

import numpy as np

from serattn.define import FRAME_RATE, SAMPLE_RATE
from serattn.errors import InputError

FRAME_LENGTH_S = 0.025  # openSMILE IS09 frame: 25 ms every 10 ms
BYTES_PER_SAMPLE = 2  # s16le
MIN_HOP_S = 0.01  # one frame
MAX_WINDOW_S = 600.0  # a stream holds a window in memory (600 s: 38 MB); emotion windows are seconds long


def check_window_hop(window_s, hop_s):
    """Raise InputError unless ``--window`` and ``--hop`` are finite seconds in range.

    Returns:
        A warning (str) when the hop is longer than the window, so the audio between
        windows is never classified; else None.
    """
    if not FRAME_LENGTH_S <= window_s <= MAX_WINDOW_S:  # False for NaN as well
        raise InputError(f"--window must be from {FRAME_LENGTH_S:g} to {MAX_WINDOW_S:g} seconds, got {window_s:g}")
    if not MIN_HOP_S <= hop_s <= MAX_WINDOW_S:
        raise InputError(f"--hop must be from {MIN_HOP_S:g} to {MAX_WINDOW_S:g} seconds, got {hop_s:g}")
    if hop_s > window_s:
        return (f"--hop {hop_s:g} s is longer than --window {window_s:g} s: {hop_s - window_s:g} s of audio after "
                f"each window is never classified (a hop of at most the window covers everything)")
    return None


def frames_in(window_s, frame_rate=FRAME_RATE):
    """Frames openSMILE gives for ``window_s`` seconds of audio (at least 1)."""
    samples = int(round(window_s * SAMPLE_RATE))
    hop = SAMPLE_RATE // int(frame_rate)
    return max(1, (samples - int(FRAME_LENGTH_S * SAMPLE_RATE)) // hop + 1)


def window_starts(n_frames, window_frames, hop_frames):
    """First frame of every window that fits in ``n_frames``; one window if none fits."""
    if n_frames <= window_frames:
        return np.array([0])
    return np.arange(0, n_frames - window_frames + 1, hop_frames)


class WindowPredictor:
    """The run's model on windows of equal length, traced once (no padding, so no mask work).

    Uses :func:`serattn.deploy.export.inference_model`, the graph the exports are made
    of: Keras inference without dropout and with the LSTM unmasked.
    """

    def __init__(self, model, normalization, dim):
        import tensorflow as tf

        from serattn.deploy.export import inference_model

        self.normalization = normalization
        twin = inference_model(model)
        signature = [tf.TensorSpec((None, None, dim), tf.float32)]

        def predict(features):
            mask = tf.ones(tf.shape(features)[:2], tf.bool)
            probabilities, attention, _ = twin({"features": features, "mask": mask}, training=False)
            return probabilities, attention

        self._predict = tf.function(predict, input_signature=signature)

    def normalize(self, frames):
        """Raw (T, D) frames normalized as in training; per speaker: the recording is its own speaker."""
        if self.normalization.method == "global":
            return (frames - self.normalization.mean) / self.normalization.std
        if self.normalization.method == "speaker":
            from serattn.features.normalization import _mean_std

            mean, std = _mean_std(frames)
            return (frames - mean) / std
        return frames

    def __call__(self, windows):
        """``(probabilities (W, C), attention (W, T))`` of normalized windows (W, T, D)."""
        probabilities, attention = self._predict(np.asarray(windows, np.float32))
        return np.asarray(probabilities), np.asarray(attention)


@dataclasses.dataclass
class Timeline:
    """Per-window results of one recording."""

    start_s: np.ndarray  # (W,)
    end_s: np.ndarray  # (W,)
    probabilities: np.ndarray  # (W, C), smoothed if asked; (W, 0) for a purely dimensional run
    attention: np.ndarray  # (W, T) weights over each window's frames
    classes: tuple
    frame_rate: float = FRAME_RATE
    dimensions: tuple = ()  # numeric targets of a dimensional or multi-task run (arousal, valence...)
    values: np.ndarray | None = None  # (W, K) predicted values, smoothed if asked

    @property
    def predicted(self):
        """Each window's class; None for a purely dimensional run."""
        return np.asarray(self.classes)[self.probabilities.argmax(1)] if self.classes else None

    @property
    def attention_peak_s(self):
        """Centre of each window's most attended frame, in seconds from the recording's start."""
        return self.start_s + (self.attention.argmax(1) + 0.5 * FRAME_LENGTH_S * self.frame_rate) / self.frame_rate

    def rows(self):
        """CSV header and rows: start_s, end_s, p_<class>..., predicted, pred_<dimension>..., attention_peak_s
        (the class columns only when the run predicts classes, the value columns only when it predicts values)."""
        header = ["start_s", "end_s", *(f"p_{c}" for c in self.classes), *(["predicted"] if self.classes else []),
                  *(f"pred_{d}" for d in self.dimensions), "attention_peak_s"]
        labels = self.predicted if self.classes else [None] * len(self.start_s)
        values = self.values if self.dimensions else np.zeros((len(self.start_s), 0))
        rows = [[f"{s:.2f}", f"{e:.2f}", *(f"{p:.4f}" for p in probs), *([label] if self.classes else []),
                 *(f"{v:.4f}" for v in vals), f"{peak:.3f}"]
                for s, e, probs, label, vals, peak in zip(self.start_s, self.end_s, self.probabilities, labels, values,
                                                          self.attention_peak_s)]
        return header, rows

    def frame_attention(self, n_frames):
        """Attention relative to uniform (1 = uniform) per frame of the recording, averaged over the
        windows covering it; NaN where no window does. Shape (n_frames,)."""
        total, count = np.zeros(n_frames), np.zeros(n_frames)
        length = self.attention.shape[1]
        for start, weights in zip(np.round(self.start_s * self.frame_rate).astype(int), self.attention):
            stop = min(start + length, n_frames)
            total[start:stop] += weights[:stop - start] * length
            count[start:stop] += 1
        with np.errstate(invalid="ignore"):
            return total / count


def timeline_of_frames(predictor, frames, classes, window_s, hop_s, smooth=1, frame_rate=FRAME_RATE,
                       batch_size=64, dimensions=()):
    """Windows of a recording's raw frames (T, D), each classified (and its values predicted).

    Args:
        predictor: a :class:`WindowPredictor`.
        frames: the whole recording's raw frames, extracted once.
        window_s, hop_s: window length and step in seconds.
        smooth: median filter over this many windows (odd; 1 = none), applied to each
            class's probability, then renormalized, and to each value.
        classes: the run's classes; () for a purely dimensional run.
        dimensions: the run's numeric targets, whose values follow the class probabilities in the
            model's output (serattn.models.targets).

    Returns:
        A :class:`Timeline`.
    """
    normalized = predictor.normalize(np.asarray(frames, np.float32)).astype(np.float32)
    length = min(frames_in(window_s, frame_rate), len(frames))
    hop = max(1, int(round(hop_s * frame_rate)))
    starts = window_starts(len(frames), length, hop)
    probabilities, attention = [], []
    for first in range(0, len(starts), batch_size):
        batch = np.stack([normalized[s:s + length] for s in starts[first:first + batch_size]])
        p, a = predictor(batch)
        probabilities.append(p)
        attention.append(a)
    output = np.concatenate(probabilities)
    probabilities = smooth_probabilities(output[:, :len(classes)], smooth) if classes else output[:, :0]
    values = smooth_values(output[:, len(classes):], smooth) if dimensions else None
    start_s = starts / frame_rate
    duration = min(window_s, (len(frames) - 1) / frame_rate + FRAME_LENGTH_S)
    return Timeline(start_s, start_s + duration, probabilities, np.concatenate(attention), tuple(classes),
                    frame_rate, tuple(dimensions), values)


def smooth_probabilities(probabilities, size):
    """Median over ``size`` neighbouring windows per class (edges repeat), rows renormalized."""
    if size <= 1:
        return probabilities
    from scipy.ndimage import median_filter

    smoothed = median_filter(probabilities, size=(size, 1), mode="nearest")
    return smoothed / np.maximum(smoothed.sum(axis=1, keepdims=True), 1e-12)


def smooth_values(values, size):
    """Median over ``size`` neighbouring windows per dimension (edges repeat)."""
    if size <= 1:
        return values
    from scipy.ndimage import median_filter

    return median_filter(values, size=(size, 1), mode="nearest")


class StreamWindows:
    """Cuts s16le PCM bytes, as they arrive, into windows of ``window_s`` every ``hop_s``.

    ``push(data)`` returns the windows completed by ``data``: ``(start_s, samples)`` with
    float32 samples scaled as soundfile reads 16-bit audio (x / 32768).
    """

    def __init__(self, window_s, hop_s, sample_rate=SAMPLE_RATE):
        self.window = int(round(window_s * sample_rate))
        self.hop = int(round(hop_s * sample_rate))
        self.sample_rate = sample_rate
        self.buffer = np.zeros(0, np.float32)
        self.buffer_start = 0  # sample index of buffer[0]
        self.next_start = 0  # sample index of the next window's first sample
        self.leftover = b""

    def push(self, data):
        data = self.leftover + data
        whole = len(data) // BYTES_PER_SAMPLE * BYTES_PER_SAMPLE
        self.leftover = data[whole:]
        samples = np.frombuffer(data[:whole], "<i2").astype(np.float32) / 32768.0
        self.buffer = np.concatenate([self.buffer, samples])
        windows = []
        while self.next_start + self.window <= self.buffer_start + len(self.buffer):
            offset = self.next_start - self.buffer_start
            windows.append((self.next_start / self.sample_rate, self.buffer[offset:offset + self.window]))
            self.next_start += self.hop
        drop = min(max(0, self.next_start - self.buffer_start), len(self.buffer))  # samples no later window needs
        self.buffer, self.buffer_start = self.buffer[drop:], self.buffer_start + drop
        return windows
