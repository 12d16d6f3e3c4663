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
