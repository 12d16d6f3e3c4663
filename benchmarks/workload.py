"""A synthetic FAU-Aibo-like training set: the shapes and class mix, random frames.

FAU Aibo (Interspeech 2009 challenge, training part): 9,959 chunks of 32 IS09
LLD + delta features at 100 frames/s, mean length ~1.8 s, a long tail and a longest
chunk of 24.53 s (2,453 frames); classes A 8.8%, E 21.0%, N 56.1%, P 6.8%, R 7.2%.
"""

import numpy as np

from serattn.features.feature_set import FeatureSet

FAU_TRAIN_SIZE = 9_959
FAU_DIM = 32
FAU_MAX_FRAMES = 2_453
FAU_MEAN_FRAMES = 180
FAU_CLASSES = ("A", "E", "N", "P", "R")
FAU_PROPORTIONS = (0.088, 0.210, 0.561, 0.068, 0.072)
LENGTH_SIGMA = 0.6  # lognormal spread: ~2% of chunks over 3x the mean


def fau_like_lengths(n=FAU_TRAIN_SIZE, seed=0):
    """(n,) int frame counts: lognormal with mean ~180, clipped to 20..2,453, longest = 2,453."""
    rng = np.random.default_rng(seed)
    mu = np.log(FAU_MEAN_FRAMES) - LENGTH_SIGMA ** 2 / 2  # so that the mean is FAU_MEAN_FRAMES
    lengths = np.clip(rng.lognormal(mu, LENGTH_SIGMA, size=n), 20, FAU_MAX_FRAMES).astype(np.int64)
    lengths[rng.integers(n)] = FAU_MAX_FRAMES  # the published padding length is the longest chunk
    return lengths


def fau_like_labels(n=FAU_TRAIN_SIZE, seed=0):
    """(n,) class names in the FAU Aibo training proportions, shuffled."""
    counts = np.floor(np.asarray(FAU_PROPORTIONS) * n).astype(int)
    counts[np.argmax(counts)] += n - counts.sum()
    labels = np.repeat(np.array(FAU_CLASSES), counts)
    np.random.default_rng(seed + 1).shuffle(labels)
    return labels


def make_fau_like_set(n=FAU_TRAIN_SIZE, dim=FAU_DIM, seed=0, speakers=26):
    """A ragged :class:`FeatureSet` of standard-normal frames with FAU-like shapes and labels."""
    lengths = fau_like_lengths(n, seed)
    rng = np.random.default_rng(seed + 2)
    features = rng.standard_normal((int(lengths.sum()), dim), dtype=np.float32)
    return FeatureSet(
        features=features, lengths=lengths, ids=np.array([f"chunk{i:05d}" for i in range(n)]),
        labels=fau_like_labels(n, seed), speakers=np.array([f"spk{i % speakers:02d}" for i in range(n)]),
        feature_names=np.array([f"f{j}" for j in range(dim)]), meta={"feature_set": "synthetic-fau"})
