"""--epochs auto (inner speaker folds of the training speakers choose the epochs) and --seed-ensemble."""

import csv
import json

import numpy as np
import pytest

import train_attention_lstm
from serattn.features.feature_set import save_feature_set
from serattn.testing import add_dimensions, make_feature_set
from serattn.targets import selection_weights
from serattn.training.epochs import choose_epochs, inner_folds, mean_curve, read_validation_scores
from tests.scripts.test_safety import assert_refused

TINY = ["--units", "8", "--attention-units", "4", "--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("features") / "features.npz"
    save_feature_set(make_feature_set(n=60, speakers=6, seed=3), path)
    return path


def test_the_mean_curve_uses_the_epochs_every_fold_reached_and_picks_its_first_best():
    curves = [[0.2, 0.5, 0.6, 0.4], [0.3, 0.6, 0.5], [0.1, 0.4, 0.6, 0.9, 0.9]]
    np.testing.assert_allclose(mean_curve(curves), [0.2, 0.5, 0.5666667], rtol=1e-6)
    assert choose_epochs(curves) == 3  # epoch 4 of two folds does not count: the second stopped at 3
    assert choose_epochs([[0.5, 0.7, 0.7], [0.5, 0.7, 0.7]]) == 2


def test_inner_folds_split_the_training_speakers_only_and_disjointly():
    data = make_feature_set(n=60, speakers=6, seed=3)
    train = data.subset(data.split == "train")
    folds = inner_folds(train, seed=1)
    speakers = [s for fold in folds for s in fold]
    assert len(folds) == 3 and sorted(speakers) == sorted(set(train.speakers)) and len(set(speakers)) == len(speakers)
    assert folds == inner_folds(train, seed=1)


def test_epochs_auto_chooses_by_inner_folds_then_trains_every_training_speaker(small_file, tmp_path):
    out = tmp_path / "auto"
    assert train_attention_lstm.main(["--data", str(small_file), "--epochs", "auto", "--patience", "2",
                                      "--out", str(out), *TINY]) == 0
    record = json.loads((out / "epochs_auto.json").read_text())
    chosen = record["epochs"]
    assert chosen == int(np.argmax(record["mean_val_ua"])) + 1
    assert len(record["val_ua"]) == 3 and all(len(curve) >= len(record["mean_val_ua"]) for curve in record["val_ua"])
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == "auto" and config["val_speakers"] == "0" and config["val_speakers_used"] == []
    inner = sorted(s for fold in record["inner_folds"] for s in fold)
    assert inner == ["s00", "s01", "s02", "s03"] and not set(inner) & set(config["test_speakers"])
    history = list(csv.DictReader(open(out / "history.csv")))
    assert len(history) == chosen  # the final model trains exactly the chosen epochs on all of them
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_auto"] == chosen and metrics["best_epoch"] == chosen


def test_epochs_auto_refuses_validation_speakers(small_file, tmp_path, capsys):
    assert_refused(train_attention_lstm.main, ["--data", str(small_file), "--epochs", "auto", "--val-speakers", "2",
                                               "--out", str(tmp_path / "r"), *TINY],
                   r"--epochs auto .* drop --val-speakers 2", tmp_path, capsys)
    assert_refused(train_attention_lstm.main, ["--data", str(small_file), "--epochs", "sometimes",
                                               "--out", str(tmp_path / "r"), *TINY],
                   r"--epochs.*'sometimes'", tmp_path, capsys)


def test_seed_ensemble_averages_the_seeds_probabilities(small_file, tmp_path):
    out = tmp_path / "run"
    assert train_attention_lstm.main(["--data", str(small_file), "--epochs", "2", "--seeds", "1,2",
                                      "--seed-ensemble", "--out", str(out), *TINY]) == 0
    ensemble = tmp_path / "run-ensemble"
    config = json.loads((ensemble / "config.json").read_text())
    assert config["method"] == "mean" and config["member_seeds"] == [1, 2]

    def test_probabilities(folder):
        rows = [r for r in csv.DictReader(open(folder / "predictions.csv")) if r["split"] == "test"]
        return {r["id"]: np.array([float(r[f"p_{c}"]) for c in "AENPR"]) for r in rows}

    seeds = [test_probabilities(tmp_path / f"run-seed{s}") for s in (1, 2)]
    combined = test_probabilities(ensemble)
    assert set(combined) == set(seeds[0])
    for utterance, probabilities in combined.items():
        np.testing.assert_allclose(probabilities, (seeds[0][utterance] + seeds[1][utterance]) / 2, atol=2e-6)


def test_seed_ensemble_needs_several_seeds(small_file, tmp_path, capsys):
    assert_refused(train_attention_lstm.main, ["--data", str(small_file), "--seed-ensemble",
                                               "--out", str(tmp_path / "r"), *TINY],
                   r"--seed-ensemble .* --seeds", tmp_path, capsys)


def test_inner_curves_score_epochs_as_the_run_selects_them(tmp_path):
    """UA for a categorical run, the (weighted) validation CCCs of numeric targets, UA with them in multi-task."""
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,val_ua,val_ccc_arousal,val_ccc_valence\n0,1.0,0.5,0.2,0.4\n1,0.9,0.6,0.5,0.1\n")
    assert read_validation_scores(history, selection_weights(("emotion",))) == [0.5, 0.6]
    assert read_validation_scores(history, selection_weights(("arousal", "valence"))) == pytest.approx([0.3, 0.3])
    assert read_validation_scores(history, selection_weights(("emotion", "arousal"), "emotion=1,arousal=3")) == \
        pytest.approx([(0.5 + 3 * 0.2) / 4, (0.6 + 3 * 0.5) / 4])


def test_epochs_auto_of_a_dimensional_run_chooses_on_validation_ccc(tmp_path, monkeypatch):
    monkeypatch.setattr("serattn.training.epochs.AUTO_MAX_EPOCHS", 8)  # the CCC of random data may climb for long
    path = tmp_path / "dimensional.npz"
    save_feature_set(add_dimensions(make_feature_set(n=48, speakers=6, seed=3)), path)
    out = tmp_path / "auto"
    assert train_attention_lstm.main(["--data", str(path), "--target", "arousal", "--epochs", "auto", "--patience", "1",
                                      "--out", str(out), *TINY]) == 0
    record = json.loads((out / "epochs_auto.json").read_text())
    assert record["selection"] == {"ccc_arousal": 1.0} and "val_ua" not in record
    assert record["epochs"] == int(np.argmax(record["mean_val_score"])) + 1 and record["max_epochs"] == 8
    assert json.loads((out / "metrics.json").read_text())["epochs_auto"] == record["epochs"]
