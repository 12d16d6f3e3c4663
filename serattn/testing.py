"""Fabricated feature sets for tests and quick checks (no audio, no openSMILE)."""

import numpy as np

from serattn.features.feature_set import FeatureSet


def make_feature_set(n=60, dim=8, classes=("A", "E", "N", "P", "R"), speakers=6,
                     min_length=20, max_length=80, signal=2.0, seed=0, split=True):
    """Random ragged sequences whose class shows as a mean shift in one stretch.

    Each utterance is Gaussian noise except a stretch of about a quarter of its
    frames, at a random position, where a class-specific direction is added with
    strength ``signal``: learnable, and only where attention should look.

    Returns:
        A :class:`FeatureSet` with ids ``u0000``..., speakers ``s00``..., and, if
        ``split``, the first two thirds of the speakers as train, the rest test.
    """
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(len(classes), dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    labels = np.array([classes[i % len(classes)] for i in range(n)])
    rng.shuffle(labels)
    speaker_ids = np.array([f"s{i % speakers:02d}" for i in range(n)])
    sequences = []
    for label in labels:
        length = int(rng.integers(min_length, max_length + 1))
        frames = rng.normal(size=(length, dim)).astype(np.float32)
        cue = max(1, length // 4)
        start = int(rng.integers(0, length - cue + 1))
        frames[start:start + cue] += signal * directions[classes.index(label)]
        sequences.append(frames)
    split_values = None
    if split:
        train_speakers = {f"s{i:02d}" for i in range(int(np.ceil(speakers * 2 / 3)))}
        split_values = np.where(np.isin(speaker_ids, list(train_speakers)), "train", "test")
    return FeatureSet.from_sequences(
        sequences, ids=[f"u{i:04d}" for i in range(n)], labels=labels, speakers=speaker_ids,
        feature_names=[f"f{j}" for j in range(dim)], split=split_values,
        meta={"feature_set": "synthetic", "level": "lld", "frame_rate": 100})


def add_copies(feature_set, factors=(0.9, 1.1)):
    """``feature_set`` followed by one fabricated augmented copy of every utterance per factor.

    A copy of utterance ``ID`` is ``ID#speedF``: its frames are the source's
    stretched in time to ``round(L / F)`` frames (linear interpolation), and it has
    its source's label, speaker and split, as ``extract_features.py --augment``
    writes them.
    """
    copies, ids, sources = [], [], []
    for factor in factors:
        for i, frames in enumerate(feature_set.sequences()):
            length = max(1, round(len(frames) / factor))
            position = np.linspace(0, len(frames) - 1, length)
            copies.append(np.stack([np.interp(position, np.arange(len(frames)), column) for column in frames.T],
                                   axis=1))
            ids.append(f"{feature_set.ids[i]}#speed{factor:g}")
            sources.append(feature_set.ids[i])
    repeat = len(factors)
    return FeatureSet.from_sequences(
        feature_set.sequences() + copies, ids=np.r_[feature_set.ids, ids],
        labels=np.tile(feature_set.labels, repeat + 1), speakers=np.tile(feature_set.speakers, repeat + 1),
        feature_names=feature_set.feature_names,
        split=None if feature_set.split is None else np.tile(feature_set.split, repeat + 1),
        meta={**feature_set.meta, "augment": {"speed": list(factors)}},
        source_ids=np.r_[feature_set.ids, sources],
        columns={name: np.tile(values, repeat + 1) for name, values in feature_set.columns.items()})


def add_dimensions(feature_set, seed=0, noise=0.1):
    """``feature_set`` with numeric ``arousal`` and ``valence`` columns that follow its classes.

    Each class gets a fixed point in [-1, 1]^2, each utterance that point plus Gaussian
    noise of ``noise`` (std), written as text the way manifest columns are.
    """
    import dataclasses

    rng = np.random.default_rng(seed)
    classes = sorted(set(feature_set.labels))
    points = {c: rng.uniform(-1, 1, size=2) for c in classes}
    values = np.array([points[c] for c in feature_set.labels]) + rng.normal(0, noise, size=(len(feature_set), 2))
    columns = {**feature_set.columns, "arousal": np.array([f"{v:.4f}" for v in values[:, 0]]),
               "valence": np.array([f"{v:.4f}" for v in values[:, 1]])}
    return dataclasses.replace(feature_set, columns=columns)
