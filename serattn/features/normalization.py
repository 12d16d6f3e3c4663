"""Z-normalization of frames or functionals: one object for the LSTM, static models and predict.py.

``global`` scales with the mean and std of the training speakers; ``speaker``
scales each speaker with its own statistics (CMVN per speaker, as the published
system did; for test speakers that uses their unlabelled audio); ``none`` leaves
the features as they are. ``normalization.json`` records the method and, for
``global``, the statistics: only what :meth:`Normalization.apply` uses.

Statistics come from original utterances only: augmented copies (speed-perturbed
audio, see ``extract_features.py --augment``) are scaled with their speaker's (or the
training speakers') statistics but do not shift them, so a run with copies
normalizes every original frame exactly as the same run without them.
"""

import dataclasses
from collections.abc import Callable, Iterator
from typing import TypeVar

import numpy as np
from sklearn.preprocessing import FunctionTransformer

from serattn.config import NORMALIZATIONS
from serattn.errors import InputError

T = TypeVar("T")

STD_MIN = 1e-8  # a std below this is a constant feature: divided by 1, not by zero


@dataclasses.dataclass
class Normalization:
    """Z-normalization of frames: one mean/std for all (global) or per speaker.

    ``global`` statistics come from the training speakers only. ``speaker``
    normalizes each speaker with its own statistics (CMVN per speaker, as the
    published system did); for test speakers that uses their unlabelled audio.
    """

    method: str
    mean: np.ndarray | None = None  # (D,)
    std: np.ndarray | None = None  # (D,)

    @classmethod
    def fit(cls, feature_set, method="global"):
        """Statistics of ``feature_set`` where the method needs them (global only)."""
        if method not in NORMALIZATIONS:
            raise InputError(f"unknown normalization '{method}'; expected one of: {', '.join(NORMALIZATIONS)}")
        if method != "global":
            return cls(method)  # none needs nothing; speaker statistics come from each set applied to
        originals = feature_set.originals()
        if originals.is_lazy:  # a store: one pass over the utterances, read one at a time
            return cls(method, *streaming_mean_std(originals))
        mean, std = _mean_std(originals.features)
        return cls(method, mean, std)

    @property
    def per_speaker(self):
        """True when every speaker is scaled by its own statistics (test speakers' audio included)."""
        return self.method == "speaker"

    def apply(self, feature_set):
        if self.method == "none":
            return feature_set
        if feature_set.is_lazy:  # a store: scales travel with the pointers, applied as utterances are read
            return self._apply_lazily(feature_set)
        if self.method == "global":
            features = feature_set.features - self.mean
            features /= self.std  # in place: one copy of the frames, not two
            return feature_set.with_features(features)
        features = np.empty_like(feature_set.features)
        offsets = feature_set.offsets
        statistics = speaker_statistics(feature_set.speakers, feature_set.is_copy,
                                        lambda sources: _mean_std(feature_set.features[_frame_rows(offsets, sources)]))
        for utterances, (mean, std) in statistics:
            rows = _frame_rows(offsets, utterances)
            frames = feature_set.features[rows]
            frames -= mean
            frames /= std
            features[rows] = frames
        return feature_set.with_features(features)

    def _apply_lazily(self, feature_set):
        if self.method == "global":
            scaled = feature_set.features.scaled(self.mean[None], self.std[None], np.zeros(len(feature_set), np.int64))
            return dataclasses.replace(feature_set, features=scaled)
        statistics = list(speaker_statistics(feature_set.speakers, feature_set.is_copy,
                                             lambda sources: streaming_mean_std(feature_set, sources)))
        if not statistics:  # no utterances (an empty validation set): nothing to scale, as in memory
            return feature_set
        scale = np.zeros(len(feature_set), np.int64)
        for k, (utterances, _) in enumerate(statistics):
            scale[utterances] = k
        means, stds = (np.stack([values[j] for _, values in statistics]) for j in (0, 1))
        return dataclasses.replace(feature_set, features=feature_set.features.scaled(means, stds, scale))

    def row_transformer(self):
        """The global scaling as a scikit-learn step for a saved static pipeline, so that
        ``model.joblib`` takes raw functionals; ``"passthrough"`` for ``speaker`` and
        ``none`` (per-speaker scaling needs each row's speaker, which a row lacks)."""
        if self.method != "global":
            return "passthrough"
        return FunctionTransformer(z_normalize, kw_args={"mean": self.mean, "std": self.std})

    def to_dict(self):
        if self.mean is None:
            return {"method": self.method}
        return {"method": self.method, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, values):
        mean = values.get("mean")
        return cls(values["method"],
                   None if mean is None else np.asarray(mean, np.float32),
                   None if mean is None else np.asarray(values["std"], np.float32))


def speaker_statistics(speakers: np.ndarray, is_copy: np.ndarray | None,
                       statistics_of: Callable[[np.ndarray], T]) -> Iterator[tuple[np.ndarray, T]]:
    """Each speaker's utterances with the statistics they are scaled by: one rule for
    frames (``--norm speaker``) and functionals (``--functionals-norm speaker``).

    A speaker's statistics come from its original utterances only, so that augmented
    copies (``is_copy``) are scaled like their originals; a speaker with only copies
    uses them all.

    Args:
        speakers: (N,) speaker of each utterance.
        is_copy: (N,) bool, True for augmented copies, or None (all originals).
        statistics_of: indices of the source utterances -> their statistics (e.g.
            mean and std of their frames).

    Yields:
        ``(utterances, statistics)`` per speaker in sorted order; ``utterances`` are
        the speaker's indices, ascending.
    """
    speakers = np.asarray(speakers)
    original = np.ones(len(speakers), bool) if is_copy is None else ~np.asarray(is_copy, bool)
    for speaker in np.unique(speakers):
        utterances = np.flatnonzero(speakers == speaker)
        sources = utterances[original[utterances]]
        yield utterances, statistics_of(sources if len(sources) else utterances)


def _frame_rows(offsets, utterances):
    """Rows of ``features`` holding the frames of ``utterances`` (indices), in order."""
    return np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in utterances])


def _mean_std(frames, chunk=1 << 16):
    """Mean and std per feature, accumulated in float64 over row chunks.

    Two passes over chunks instead of one float64 copy of all frames: a
    FAU-size training set would otherwise need four times its own size again.
    """
    total = np.zeros(frames.shape[1])
    for start in range(0, len(frames), chunk):
        total += frames[start:start + chunk].sum(axis=0, dtype=np.float64)
    mean = total / max(len(frames), 1)
    squares = np.zeros(frames.shape[1])
    for start in range(0, len(frames), chunk):
        squares += np.square(frames[start:start + chunk] - mean).sum(axis=0)
    std = np.sqrt(squares / max(len(frames), 1))
    std[std < STD_MIN] = 1.0  # a constant feature stays constant instead of dividing by zero
    return mean.astype(np.float32), std.astype(np.float32)


def streaming_mean_std(feature_set, utterances=None):
    """Mean and std per feature of the frames of ``utterances`` (default all), in one pass.

    Each utterance's float64 sum and sum of squared deviations from its own mean are
    merged into the running totals (Chan, Golub and LeVeque's pairwise update), so a
    store is read once, one utterance at a time; the result equals :func:`_mean_std`
    of the same frames in memory within float32 rounding.
    """
    from serattn.features.store import frame_chunks

    count, mean, squares = 0, None, None
    for frames in frame_chunks(feature_set, utterances):
        frames = frames.astype(np.float64)
        n = len(frames)
        chunk_mean = frames.mean(axis=0)
        chunk_squares = np.square(frames - chunk_mean).sum(axis=0)
        if count == 0:
            count, mean, squares = n, chunk_mean, chunk_squares
            continue
        delta = chunk_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        squares = squares + chunk_squares + np.square(delta) * (count * n / total)
        count = total
    if count == 0:
        mean = squares = np.zeros(feature_set.dim)
    std = np.sqrt(squares / max(count, 1))
    std[std < STD_MIN] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def z_normalize(features, mean, std):
    """(N, D) features minus ``mean``, over ``std``."""
    return (features - mean) / std
