"""Shared fixtures: small fabricated feature sets (no audio, no real corpora)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from serattn.features.feature_set import save_feature_set
from serattn.features.store import convert
from serattn.testing import make_feature_set


@pytest.fixture
def feature_set():
    """60 ragged utterances, 8 features, 5 classes, 6 speakers, train/test split."""
    return make_feature_set()


@pytest.fixture(scope="session")
def feature_file(tmp_path_factory):
    """A saved feature set large enough to learn from in a few epochs."""
    path = tmp_path_factory.mktemp("features") / "features.npz"
    save_feature_set(make_feature_set(n=150, speakers=9, signal=3.0, seed=1), path)
    return path


@pytest.fixture(scope="session")
def store_of(tmp_path_factory):
    """``store_of(NPZ)``: the sharded store (shards of 7 utterances) of a saved .npz, converted once per session,
    for tests that run a script on both and expect the same files out."""
    stores = {}

    def of(npz):
        if npz not in stores:
            stores[npz] = tmp_path_factory.mktemp("stores") / (os.path.basename(npz)[:-len(".npz")] + ".store")
            convert(npz, stores[npz], shard_size=7)
        return stores[npz]
    return of
