import json
import shutil

import numpy as np
import pytest

import train_attention_lstm
from serattn.errors import InputError
from serattn.config import parse_cv
from serattn.training.protocols import speaker_folds

TINY = ["--units", "8", "--attention-units", "4", "--epochs", "3", "--batch-size", "16", "--quiet"]


def test_folds_keep_test_speakers_out_of_training():
    speakers = np.repeat(["a", "b", "c", "d"], 3)
    loso = speaker_folds(speakers, "loso")
    assert len(loso) == 4
    for train, test in loso:
        assert len(set(speakers[test])) == 1 and not set(speakers[test]) & set(speakers[train])
    kfold = speaker_folds(speakers, "kfold-speakers", 2)
    assert sorted(np.concatenate([test for _, test in kfold]).tolist()) == list(range(12))
    with pytest.raises(InputError, match="needs at least 5 speakers; the data has 4"):
        speaker_folds(speakers, "kfold-speakers", 5)


def test_parse_cv():
    assert parse_cv(["loso"]) == ("loso", None)
    assert parse_cv(["kfold-speakers", "5"]) == ("kfold-speakers", 5)
    assert parse_cv(["loso", None]) == ("loso", None)  # as saved in config.json
    with pytest.raises(InputError, match="expected 'loso' or 'kfold-speakers K'"):
        parse_cv(["kfold-speakers"])


@pytest.fixture(scope="module")
def cv_run(feature_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "cv"
    train_attention_lstm.main(["--data", str(feature_file), "--cv", "kfold-speakers", "3", "--out", str(out), *TINY])
    return out


def test_cross_validation_pools_every_fold(cv_run, feature_file):
    metrics = json.loads((cv_run / "metrics.json").read_text())
    folds = metrics["folds"]
    assert len(folds) == 3 and metrics["n_test"] == 150 == sum(f["n"] for f in folds)
    tested = [s for f in folds for s in f["test_speakers"]]
    assert len(tested) == len(set(tested)) == 9  # every speaker tested exactly once
    assert metrics["ua_fold_mean"] == pytest.approx(np.mean([f["ua"] for f in folds]))
    assert np.sum(metrics["confusion"]) == 150
    for k in range(3):
        config = json.loads((cv_run / f"fold-{k:02d}" / "config.json").read_text())
        assert not set(config["test_speakers"]) & set(config["val_speakers_used"])
    with np.load(cv_run / "attention.npz") as npz:
        assert len(npz["ids"]) == 150 and set(npz["split"]) == {"test"}


def test_cross_validation_resumes_fold_by_fold(cv_run, tmp_path):
    copy = tmp_path / "cv"
    shutil.copytree(cv_run, copy)
    shutil.rmtree(copy / "fold-02")
    (copy / "metrics.json").unlink()
    (copy / "INCOMPLETE").write_text("")
    kept = (copy / "fold-00" / "model.keras").stat().st_mtime_ns
    train_attention_lstm.main(["--resume", str(copy)])
    assert (copy / "fold-00" / "model.keras").stat().st_mtime_ns == kept  # finished folds are not retrained
    assert json.loads((copy / "metrics.json").read_text()) == json.loads((cv_run / "metrics.json").read_text())


def test_seeds_write_sibling_runs_and_basic_lstm_trains(feature_file, tmp_path):
    out = tmp_path / "basic"
    train_attention_lstm.main(["--data", str(feature_file), "--model", "basic-lstm", "--pooling", "last",
                               "--seeds", "1,2", "--out", str(out), *TINY])
    first, second = (json.loads((tmp_path / f"basic-seed{k}" / "config.json").read_text()) for k in (1, 2))
    assert (first["seed"], second["seed"]) == (1, 2) and first["model"] == "basic-lstm"
    assert (tmp_path / "basic-seed1" / "metrics.json").read_text() != (tmp_path / "basic-seed2" / "metrics.json").read_text()
    with np.load(tmp_path / "basic-seed1" / "attention.npz") as npz:  # uniform weights stand in for attention
        first_utterance = npz["weights"][:npz["lengths"][0]]
        np.testing.assert_allclose(first_utterance, 1 / npz["lengths"][0], rtol=1e-5)
