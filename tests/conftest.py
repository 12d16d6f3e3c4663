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


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory):
    """A tiny demo corpus (24 utterances of 3 speakers, at most 1.5 s) and its IS09 features, made once per
    session: ``{"corpus", "features", "wavs"}``. Tests only read it."""
    import extract_features
    import make_demo_corpus

    corpus = tmp_path_factory.mktemp("demo-corpus") / "demo"
    features = corpus / "features.npz"
    make_demo_corpus.main(["--out", str(corpus), "--utterances", "24", "--speakers", "3", "--max-duration", "1.5"])
    extract_features.main(["--manifest", str(corpus / "manifest.csv"), "--out", str(features), "--jobs", "1",
                           "--quiet"])
    return {"corpus": corpus, "features": features, "wavs": sorted((corpus / "wav").glob("*.wav"))}


@pytest.fixture(scope="session")
def demo_run(demo_corpus, tmp_path_factory):
    """A 1-epoch attention LSTM (8 units, 4 attention units) on ``demo_corpus``'s features. Tests only read it
    (copy it to change it)."""
    import train_attention_lstm

    run = tmp_path_factory.mktemp("demo-run") / "run"
    assert train_attention_lstm.main(["--data", str(demo_corpus["features"]), "--out", str(run), "--units", "8",
                                      "--attention-units", "4", "--epochs", "1", "--quiet"]) == 0
    return run
