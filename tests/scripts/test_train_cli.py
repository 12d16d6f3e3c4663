import csv
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import train_attention_lstm
from serattn.features.feature_set import load_feature_set
from serattn.features.normalization import Normalization
from serattn.errors import InputError
from serattn.training.trainer import predict_with_attention

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--units", "16", "--attention-units", "8", "--epochs", "12", "--patience", "12",
        "--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(feature_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert train_attention_lstm.main(["--data", str(feature_file), "--out", str(out), *TINY]) == 0
    return out


def test_run_folder_holds_every_output(run_dir):
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "attention.npz", "config.json", "history.csv", "metrics.json", "model.keras",
        "normalization.json", "predictions.csv"]  # and no INCOMPLETE marker
    config = json.loads((run_dir / "config.json").read_text())
    assert config["activation"] == "tanh" and config["units"] == 16 and config["seed"] == 1
    assert config["classes"] == ["A", "E", "N", "P", "R"]
    assert len(config["data_files"]["data"]["sha256"]) == 64
    assert config["versions"]["tensorflow"] and "git_commit" in config
    history = list(csv.DictReader(open(run_dir / "history.csv")))
    assert len(history) == 12 and "val_ua" in history[0]


def test_metrics_match_the_saved_predictions(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) >= {"ua", "wa", "classes", "per_class_recall", "confusion", "best_epoch"}
    rows = [r for r in csv.DictReader(open(run_dir / "predictions.csv")) if r["split"] == "test"]
    true = np.array([r["true"] for r in rows])
    predicted = np.array([r["predicted"] for r in rows])
    recalls = [np.mean(predicted[true == c] == c) for c in metrics["classes"]]
    assert metrics["ua"] == pytest.approx(np.mean(recalls))
    assert metrics["wa"] == pytest.approx(np.mean(true == predicted))
    assert np.sum(metrics["confusion"]) == len(rows) == metrics["n_test"]
    probabilities = np.array([[float(r[f"p_{c}"]) for c in metrics["classes"]] for r in rows])
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-4)


def test_training_beats_chance(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["ua"] > 0.5  # chance is 0.2 for 5 classes


def test_saved_model_reloads_and_predicts_the_same(run_dir, feature_file):
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    normalization = Normalization.from_dict(json.loads((run_dir / "normalization.json").read_text()))
    test = normalization.apply(load_feature_set(feature_file))
    test = test.subset(test.split == "test")
    probabilities = predict_with_attention(model, test.sequences())["probabilities"]
    rows = {r["id"]: r for r in csv.DictReader(open(run_dir / "predictions.csv"))}
    saved = np.array([[float(rows[i][f"p_{c}"]) for c in "AENPR"] for i in test.ids])
    np.testing.assert_allclose(probabilities, saved, atol=1e-5)


def test_attention_file_is_ragged_and_consistent(run_dir):
    with np.load(run_dir / "attention.npz") as npz:
        lengths, weights, z = npz["lengths"], npz["weights"], npz["z"]
        assert weights.shape == (lengths.sum(),) and z.shape == (len(lengths), 16)
        sums = np.add.reduceat(weights, np.r_[0, np.cumsum(lengths)[:-1]])
        np.testing.assert_allclose(sums, 1.0, atol=1e-5)
        assert set(npz["split"]) == {"train", "val", "test"}
        assert np.all(npz["padding_mass"] == 0)


def test_existing_output_folder_is_refused(run_dir, feature_file):
    before = (run_dir / "metrics.json").read_bytes()
    with pytest.raises(InputError, match="already exists.*--overwrite"):
        train_attention_lstm.main(["--data", str(feature_file), "--out", str(run_dir), *TINY])
    assert (run_dir / "metrics.json").read_bytes() == before


def test_published_padding_mode_runs(feature_file, tmp_path):
    out = tmp_path / "published"
    train_attention_lstm.main(["--data", str(feature_file), "--out", str(out), "--no-mask",
                               "--max-length", "100", *TINY[:-5], "--epochs", "2", "--quiet"])
    config = json.loads((out / "config.json").read_text())
    assert config["padding"] == "pre" and config["max_length_used"] == 100 and config["pad_to_max"]
    with np.load(out / "attention.npz") as npz:
        assert npz["padding_mass"].max() > 0  # attention leaks into the padding, as published


def test_bad_input_gives_one_line_and_exit_2(tmp_path):
    out = tmp_path / "never"
    result = subprocess.run(
        [sys.executable, str(ROOT / "train_attention_lstm.py"), "--data", str(tmp_path / "nope.npz"),
         "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == \
        f"train_attention_lstm.py: error: feature file '{tmp_path / 'nope.npz'}' does not exist"
    assert "Traceback" not in result.stderr and not out.exists()


def test_unseen_test_labels_are_refused(tmp_path):
    from serattn.features.feature_set import save_feature_set
    from serattn.testing import make_feature_set
    feature_set = make_feature_set(n=40)
    feature_set.labels[feature_set.split == "test"] = "X"
    save_feature_set(feature_set, tmp_path / "fs.npz")
    with pytest.raises(InputError, match=r"test labels X in .* never occur"):
        train_attention_lstm.main(["--data", str(tmp_path / "fs.npz"), "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
