"""Sharded feature stores: conversion, lazy reading, streaming statistics, extraction on a Dask cluster,
resuming, and runs that give the same results from a store as from its .npz."""

import json
import os
import shutil

import numpy as np
import pytest

import extract_features
import train_attention_lstm
import train_static
from serattn.analysis.corpus import duplicate_groups
from serattn.errors import InputError
from serattn.features.demo_corpus import make_demo_corpus
from serattn.features.feature_set import load_feature_set, save_feature_set
from serattn.features.normalization import Normalization, _mean_std, streaming_mean_std
from serattn.features.store import INDEX_FILE, convert, partial_path
from serattn.testing import add_copies, make_feature_set

TINY = ["--units", "8", "--attention-units", "4", "--epochs", "2", "--batch-size", "16", "--quiet"]
ARRAYS = ("lengths", "ids", "labels", "speakers", "split", "source_ids", "feature_names")


def assert_same_sets(a, b):
    for name in ARRAYS:
        assert (getattr(a, name) is None) == (getattr(b, name) is None), name
        if getattr(a, name) is not None:
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.columns.keys() == b.columns.keys() and all(np.array_equal(a.columns[k], b.columns[k]) for k in a.columns)
    assert np.array_equal(np.asarray(a.features), np.asarray(b.features))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same feature set (augmented copies, a manifest column) as .npz and as a store of 7-utterance shards."""
    folder = tmp_path_factory.mktemp("store")
    feature_set = add_copies(make_feature_set(n=40, speakers=4, seed=3))
    feature_set.columns["session"] = np.array([f"s{i % 3}" for i in range(len(feature_set))])
    save_feature_set(feature_set, folder / "f.npz")
    convert(folder / "f.npz", folder / "f.store", shard_size=7)
    return folder / "f.npz", folder / "f.store"


def test_a_store_holds_the_npz_array_for_array_and_converts_back(pair, tmp_path):
    npz, store = pair
    from_store = load_feature_set(store)
    assert from_store.is_lazy and len(list(store.glob("shard-*.npy"))) == 18  # 120 utterances / 7
    assert_same_sets(load_feature_set(npz), from_store)
    assert extract_features.main(["--convert", str(store), "--out", str(tmp_path / "back.npz"), "--quiet"]) == 0
    assert_same_sets(load_feature_set(npz), load_feature_set(tmp_path / "back.npz"))
    assert load_feature_set(tmp_path / "back.npz").meta == load_feature_set(npz).meta


def test_subsets_normalization_and_pickles_of_a_store_stay_lazy_and_equal(pair):
    import pickle

    npz, store = load_feature_set(pair[0]), load_feature_set(pair[1])
    pick = np.array([5, 90, 3, 44])
    assert store.subset(pick).is_lazy
    assert_same_sets(npz.subset(pick), store.subset(pick))
    for method in ("global", "speaker"):
        fit_npz, fit_store = npz.subset(npz.speakers != "s01"), store.subset(store.speakers != "s01")
        in_memory = Normalization.fit(fit_npz, method).apply(npz)
        streamed = Normalization.fit(fit_store, method).apply(store)
        assert streamed.is_lazy
        np.testing.assert_allclose(np.asarray(streamed.features), in_memory.features, atol=1e-6)
    again = pickle.loads(pickle.dumps(streamed))
    np.testing.assert_array_equal(again.sequence(7), streamed.sequence(7))
    twice = npz.subset(np.r_[0:len(npz), 3])  # one utterance twice: found by report.py --data either way
    in_store = store.subset(np.r_[0:len(store), 3])
    found = [duplicate_groups(fs.ids, fs.labels, fs.speakers, fs.lengths, fs.features) for fs in (twice, in_store)]
    assert found[0] == found[1] and len(found[0]) == 1 and found[0][0]["ids"] == [npz.ids[3]] * 2


def test_streaming_statistics_equal_the_in_memory_ones(tmp_path):
    from serattn.models.pooling import speaker_functional_statistics

    feature_set = make_feature_set(n=30, speakers=3, seed=5)
    feature_set = feature_set.with_features(feature_set.features * 40 + 300)  # offsets where one pass could drift
    save_feature_set(feature_set, tmp_path / "f.npz")
    convert(tmp_path / "f.npz", tmp_path / "f.store", shard_size=4)
    store = load_feature_set(tmp_path / "f.store")
    for mine, theirs in zip(streaming_mean_std(store), _mean_std(feature_set.features)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6)
    speakers = store.speakers == "s02"
    for mine, theirs in zip(streaming_mean_std(store, np.flatnonzero(speakers)), _mean_std(feature_set.subset(speakers).features)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6)
    np.testing.assert_allclose(speaker_functional_statistics(store.sequences(), store.speakers),
                               speaker_functional_statistics(feature_set.sequences(), feature_set.speakers), atol=1e-6)


def test_folds_and_validation_speakers_come_from_the_metadata_alone(pair, tmp_path):
    from serattn.training.protocols import hold_out_validation, load_train_test, speaker_folds

    shutil.copytree(pair[1], tmp_path / "s.store")
    train, _, _, classes = load_train_test(str(tmp_path / "s.store"), cv=True)
    for shard in (tmp_path / "s.store").glob("shard-*.npy"):
        shard.unlink()  # from here on, reading any frame fails
    for fit_index, test_index in speaker_folds(train.speakers, "loso"):
        fit, val = hold_out_validation(train.subset(fit_index), classes, "1", 0, "run")
        test = train.subset(test_index).originals()
        assert len(set(val.speakers)) == 1 and not set(fit.speakers) & (set(test.speakers) | set(val.speakers))
    with pytest.raises(InputError, match="cannot read shard"):
        fit.sequence(0)


def test_unfinished_or_damaged_stores_are_refused_in_one_line(pair, tmp_path):
    shutil.copytree(pair[1], tmp_path / "x.store")
    (tmp_path / "x.store" / INDEX_FILE).rename(tmp_path / "index.npz")
    with pytest.raises(InputError, match="is a folder but not a feature store: it has no index.npz"):
        load_feature_set(tmp_path / "x.store")
    (tmp_path / "index.npz").rename(tmp_path / "x.store" / INDEX_FILE)
    shard = tmp_path / "x.store" / "shard-00003.npy"
    shard.write_bytes(shard.read_bytes()[:-400])
    with pytest.raises(InputError, match="shard-00003.npy' has .* rows, fewer than the index"):
        load_feature_set(tmp_path / "x.store")
    shard.unlink()
    with pytest.raises(InputError, match="lacks its shard 'shard-00003.npy'"):
        load_feature_set(tmp_path / "x.store")


# --- extraction ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wav_manifest(tmp_path_factory):
    """A tiny wav corpus: 15 utterances of 3 speakers, at most 0.5 s each."""
    return make_demo_corpus(tmp_path_factory.mktemp("wavs"), 15, 3, seed=2, min_duration_s=0.3, max_duration_s=0.5)


@pytest.fixture(scope="module")
def one_process(wav_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "one.npz"
    extract_features.main(["--manifest", str(wav_manifest), "--out", str(out), "--jobs", "1", "--no-cache",
                           "--augment", "speed=1.1", "--quiet"])
    return load_feature_set(out)


def test_dask_workers_write_shards_identical_to_one_process(wav_manifest, one_process, tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "cluster.store"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster:
        extract_features.main(["--manifest", str(wav_manifest), "--out", str(out), "--shard-size", "6", "--no-cache",
                               "--augment", "speed=1.1", "--dask-scheduler", cluster.scheduler_address, "--quiet"])
    assert not partial_path(out).exists() and len(list(out.glob("shard-*.npy"))) == 5  # 30 files / 6
    assert_same_sets(one_process, load_feature_set(out))


def test_a_killed_extraction_resumes_at_the_first_missing_shard(wav_manifest, one_process, tmp_path):
    out = tmp_path / "local.store"
    argv = ["--manifest", str(wav_manifest), "--out", str(out), "--shard-size", "4", "--jobs", "2", "--no-cache",
            "--augment", "speed=1.1", "--quiet"]
    extract_features.main(argv)
    assert_same_sets(one_process, load_feature_set(out))
    # As a kill leaves it: no index, the folder still .partial, the last shards not written.
    out.rename(partial_path(out))
    (partial_path(out) / INDEX_FILE).unlink()
    for name in ("shard-00003.npy", "shard-00003.json", "shard-00004.json"):
        (partial_path(out) / name).unlink()
    kept = {p.name: os.stat(p).st_mtime_ns for p in partial_path(out).glob("shard-0000[012].*")}
    with pytest.raises(InputError, match="is a folder but not a feature store.*run it again to resume"):
        load_feature_set(partial_path(out))
    extract_features.main(argv)
    assert {name: os.stat(out / name).st_mtime_ns for name in kept} == kept  # not extracted again
    assert_same_sets(one_process, load_feature_set(out))
    with pytest.raises(InputError, match="already exists"):
        extract_features.main(argv)


# --- runs on a store -------------------------------------------------------------------------


def outputs(run):
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("seconds", None)  # wall time
    return metrics, (run / "predictions.csv").read_text()


@pytest.mark.parametrize("flags", [["--norm", "speaker", "--pooling", "attention+functionals", "--functionals-norm", "speaker"],
                                   ["--cv", "kfold-speakers", "2"]])
def test_training_on_a_store_gives_the_numbers_of_its_npz(pair, tmp_path, flags):
    npz, store = pair
    for name, data in (("npz", npz), ("store", store)):
        assert train_attention_lstm.main(["--data", str(data), *flags, "--out", str(tmp_path / name), *TINY]) == 0
    assert outputs(tmp_path / "npz") == outputs(tmp_path / "store")


def test_static_models_read_a_store(pair, tmp_path, monkeypatch):
    from serattn.training import static

    monkeypatch.setattr(static, "POOL_CHUNK", 7)  # a store's utterances pooled a few at a time
    npz, store = pair
    for name, data in (("npz", npz), ("store", store)):
        assert train_static.main(["--data", str(data), "--pool", "mean", "--cv", "loso", "--model", "logreg",
                                  "--out", str(tmp_path / name), "--quiet"]) == 0
    assert outputs(tmp_path / "npz") == outputs(tmp_path / "store")
