import csv
import json

import joblib
import numpy as np
import pytest

import attention_visualize
import compare_runs
import train_static
import tsne_plot
from serattn.training import protocols
from serattn.training import static
from serattn.features.feature_set import save_feature_set
from serattn.errors import InputError
from serattn.testing import make_feature_set
from serattn.config import describe_grids
from serattn.static_models import STATIC_MODELS, StaticModel, register
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC, LinearSVC

CLASSES = ("A", "B", "C")
FAST = ["--grid", "C=0.01,1", "--quiet"]


def make_functionals(n=90, dim=8, speakers=6, seed=3):
    """Functionals-like features: one row per utterance (all lengths 1), 3 classes."""
    return make_feature_set(n=n, dim=dim, classes=CLASSES, speakers=speakers, min_length=1, max_length=1,
                            signal=3.0, seed=seed)


@pytest.fixture(scope="module")
def functionals_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("functionals") / "functionals.npz"
    save_feature_set(make_functionals(), path)
    return path


@pytest.fixture(scope="module")
def svm_run(functionals_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("static") / "linear-svm"
    assert train_static.main(["--data", str(functionals_file), "--out", str(out), *FAST]) == 0
    return out


@pytest.fixture(scope="module")
def cv_run(functionals_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("static") / "loso"
    assert train_static.main(["--data", str(functionals_file), "--cv", "loso", "--out", str(out), *FAST]) == 0
    return out


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def check_metrics_match_predictions(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = [r for r in read_rows(run_dir / "predictions.csv") if r["split"] == "test"]
    true = np.array([r["true"] for r in rows])
    predicted = np.array([r["predicted"] for r in rows])
    recalls = [np.mean(predicted[true == c] == c) for c in metrics["classes"] if np.any(true == c)]
    assert metrics["ua"] == pytest.approx(np.mean(recalls))
    assert metrics["wa"] == pytest.approx(np.mean(true == predicted))
    assert np.sum(metrics["confusion"]) == len(rows) == metrics["n_test"]
    probabilities = np.array([[float(r[f"p_{c}"]) for c in metrics["classes"]] for r in rows])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(metrics["classes"])[probabilities.argmax(axis=1)], predicted)
    return metrics


def test_run_folder_holds_every_output(svm_run):
    assert sorted(p.name for p in svm_run.iterdir()) == [
        "config.json", "metrics.json", "model.joblib", "normalization.json", "predictions.csv"]
    config = json.loads((svm_run / "config.json").read_text())
    assert config["model"] == "linear-svm" and config["seed"] == 1 and config["run_format"] == 1
    assert config["classes"] == list(CLASSES) and config["grid"] == {"C": [0.01, 1.0]}
    assert len(config["data_files"]["data"]["sha256"]) == 64 and "git_commit" in config
    assert config["versions"]["scikit-learn"] and config["feature_meta"]["feature_set"] == "synthetic"
    metrics = check_metrics_match_predictions(svm_run)
    assert metrics["best_params"]["C"] in (0.01, 1.0) and metrics["ua"] > 0.6  # chance is 1/3
    assert "sigmoid" in metrics["calibration"] and metrics["best_epoch"] is None


def test_val_rows_come_from_held_out_speakers(svm_run):
    config = json.loads((svm_run / "config.json").read_text())
    rows = read_rows(svm_run / "predictions.csv")
    speakers = {split: {r["speaker"] for r in rows if r["split"] == split} for split in ("train", "val", "test")}
    assert speakers["val"] == set(config["val_speakers_used"]) and speakers["val"]
    assert not speakers["val"] & speakers["train"] and not speakers["test"] & (speakers["train"] | speakers["val"])
    val = [r for r in rows if r["split"] == "val"]
    true, predicted = np.array([r["true"] for r in val]), np.array([r["predicted"] for r in val])
    metrics = json.loads((svm_run / "metrics.json").read_text())
    assert metrics["val_ua"] == pytest.approx(np.mean([np.mean(predicted[true == c] == c) for c in set(true)]))


def test_saved_model_predicts_the_saved_probabilities(svm_run, functionals_file):
    model = joblib.load(svm_run / "model.joblib")
    data = make_functionals()
    rows = {r["id"]: r for r in read_rows(svm_run / "predictions.csv") if r["split"] == "test"}
    index = [list(data.ids).index(i) for i in rows]
    probabilities = static.predict_probabilities(model, data.features[index], list(CLASSES))
    saved = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows.values()])
    np.testing.assert_allclose(probabilities, saved, atol=1e-6)


@pytest.mark.parametrize("model, grid", [("rbf-svm", "C=1"), ("logreg", "C=0.1,1"), ("mlp", "alpha=0.01")])
def test_every_model_writes_probabilities(model, grid, functionals_file, tmp_path):
    out = tmp_path / model
    assert train_static.main(["--data", str(functionals_file), "--model", model, "--grid", grid, "--out", str(out),
                              "--max-iter", "300", "--quiet"]) == 0
    metrics = check_metrics_match_predictions(out)
    assert metrics["ua"] > 0.6
    assert json.loads((out / "config.json").read_text())["model"] == model


def test_a_registered_model_is_one_entry(functionals_file, tmp_path, monkeypatch):
    """A model the registry gains is trained, chosen by its grid, calibrated as registered and saved."""
    entry = StaticModel("random-forest", "sklearn.ensemble.RandomForestClassifier", {"max_depth": [2, 4]},
                        options={"n_estimators": 20}, iterations=None)
    monkeypatch.setitem(STATIC_MODELS, entry.name, entry)
    assert "random-forest: max_depth=2,4" in describe_grids()
    out = tmp_path / "forest"
    assert train_static.main(["--data", str(functionals_file), "--model", "random-forest", "--out", str(out),
                              "--quiet"]) == 0
    metrics = check_metrics_match_predictions(out)
    assert metrics["best_params"]["max_depth"] in (2, 4) and metrics["ua"] > 0.6
    assert metrics["calibration"] == "the model's own predict_proba"
    forest = joblib.load(out / "model.joblib").named_steps["classify"]
    assert type(forest).__name__ == "RandomForestClassifier" and forest.n_estimators == 20 and forest.random_state == 1
    with pytest.raises(InputError, match="'C' is not tunable for random-forest; expected one of: max_depth"):
        static.parse_grid("C=1", "random-forest")
    with pytest.raises(ValueError, match="registered twice"):
        register(entry)


def test_registry_builds_each_model_as_before():
    """The registry's entries give the estimators (and arguments) the models always had."""
    choices = next(a.choices for a in train_static.build_parser()._actions if a.dest == "model")
    assert tuple(choices) == ("linear-svm", "rbf-svm", "logreg", "mlp")
    built = {name: static.build_classifier(name, seed=7, max_iter=50, hidden=(16, 8)) for name in choices}
    assert built["linear-svm"].get_params() == LinearSVC(dual="auto", max_iter=50, random_state=7).get_params()
    assert built["rbf-svm"].get_params() == SVC(kernel="rbf", max_iter=-1, random_state=7).get_params()
    assert built["logreg"].get_params() == LogisticRegression(max_iter=50, random_state=7).get_params()
    assert built["mlp"].get_params() == MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=50, random_state=7).get_params()
    assert [STATIC_MODELS[name].calibration for name in choices] == ["sigmoid", "sigmoid", None, None]
    assert STATIC_MODELS["mlp"].max_iter == 300 and STATIC_MODELS["mlp"].tunable == ("alpha", "learning_rate_init")


def test_cv_folds_are_speaker_disjoint_and_pooled(cv_run, functionals_file):
    config = json.loads((cv_run / "config.json").read_text())
    assert config["cv"] == ["loso", None] and config["folds"] == [f"fold-{k:02d}" for k in range(6)]
    assert not (cv_run / "INCOMPLETE").exists()
    test_speakers = []
    for fold in config["folds"]:
        rows = read_rows(cv_run / fold / "predictions.csv")
        held_out = {r["speaker"] for r in rows if r["split"] == "test"}
        assert len(held_out) == 1 and not held_out & {r["speaker"] for r in rows if r["split"] != "test"}
        test_speakers += held_out
        check_metrics_match_predictions(cv_run / fold)
    assert sorted(test_speakers) == [f"s{k:02d}" for k in range(6)]
    pooled = read_rows(cv_run / "predictions.csv")
    assert sorted(r["id"] for r in pooled) == sorted(make_functionals().ids) and "fold" in pooled[0]
    metrics = check_metrics_match_predictions(cv_run)
    assert len(metrics["folds"]) == 6 and 0 < metrics["ua_fold_mean"] <= 1 and metrics["ua_fold_std"] >= 0
    fold_seconds = [json.loads((cv_run / fold / "metrics.json").read_text())["seconds"] for fold in config["folds"]]
    assert metrics["seconds"] == pytest.approx(sum(fold_seconds), abs=1e-3) and metrics["seconds"] > 0


def test_compare_runs_tables_static_runs(svm_run, cv_run, capsys):
    assert compare_runs.main([str(svm_run), str(cv_run), "--by", "model,cv"]) == 0
    table = capsys.readouterr().out
    assert "linear-svm" in table and "loso" in table


@pytest.mark.parametrize("script", [attention_visualize, tsne_plot])
def test_attention_scripts_refuse_static_runs_with_a_message(script, svm_run):
    with pytest.raises(InputError, match="is a linear-svm run: it has no attention weights"):
        script.main([str(svm_run)])


def test_seeds_make_sibling_runs(functionals_file, tmp_path):
    out = tmp_path / "mlp"
    assert train_static.main(["--data", str(functionals_file), "--model", "mlp", "--grid", "alpha=0.01",
                              "--max-iter", "100", "--seeds", "1,2", "--out", str(out), "--quiet"]) == 0
    configs = [json.loads((tmp_path / f"mlp-seed{s}" / "config.json").read_text()) for s in (1, 2)]
    assert [c["seed"] for c in configs] == [1, 2]
    assert configs[0]["val_speakers_used"] != configs[1]["val_speakers_used"]  # seeded choice


def test_inner_speaker_folds_choose_without_validation_speakers(functionals_file, tmp_path):
    out = tmp_path / "no-val"
    assert train_static.main(["--data", str(functionals_file), "--val-speakers", "0", "--inner-folds", "2",
                              "--out", str(out), *FAST]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selection"] == "mean UA over 2 inner speaker folds" and metrics["val_ua"] is None
    assert {r["split"] for r in read_rows(out / "predictions.csv")} == {"train", "test"}
    assert len(metrics["grid_scores"]) == 2


def test_frame_level_features_need_pool_mean(tmp_path):
    path = tmp_path / "lld.npz"
    save_feature_set(make_feature_set(n=60, classes=CLASSES, max_length=30), path)
    with pytest.raises(InputError, match=r"frame-level features .*--level functionals.*--pool mean"):
        train_static.main(["--data", str(path), "--out", str(tmp_path / "refused"), *FAST])
    assert not (tmp_path / "refused").exists()
    assert train_static.main(["--data", str(path), "--pool", "mean", "--out", str(tmp_path / "pooled"), *FAST]) == 0
    config = json.loads((tmp_path / "pooled" / "config.json").read_text())
    assert len(config["feature_names"]) == 16 and config["feature_names"][8] == "f0_std"
    assert config["feature_meta"]["level"] == "functionals"


def test_pool_mean_gives_mean_and_std_over_frames():
    frames = make_feature_set(n=5, dim=3, min_length=2, max_length=9)
    pooled = static.utterance_features(frames, "mean")
    assert np.all(pooled.lengths == 1) and pooled.dim == 6
    for i, sequence in enumerate(frames.sequences()):
        np.testing.assert_allclose(pooled.features[i], np.concatenate([sequence.mean(0), sequence.std(0)]),
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="already has one row per utterance"):
        static.utterance_features(pooled, "mean")


def test_validation_speakers_are_those_the_attention_lstm_holds_out(svm_run):
    # The same choice (protocols.split_validation_speakers, same seed) as train_attention_lstm.py,
    # so that static and LSTM runs share their val rows and ensemble.py can tune on them.
    train = make_functionals()
    train = train.subset(train.split == "train")
    expected = protocols.split_validation_speakers(train.speakers, "0.2", 1)
    config = json.loads((svm_run / "config.json").read_text())
    assert config["val_speakers_used"] == sorted(set(train.speakers[expected]))


def test_grid_flag():
    assert static.parse_grid(None, "mlp") == {"alpha": [1e-3, 1e-2, 1e-1, 1.0, 10.0]}
    assert static.parse_grid("C=1,10;gamma=scale,0.01", "rbf-svm") == {"C": [1.0, 10.0], "gamma": ["scale", 0.01]}
    with pytest.raises(InputError, match="'gamma' is not tunable for linear-svm; expected one of: C"):
        static.parse_grid("gamma=1", "linear-svm")
    with pytest.raises(InputError, match="expected NAME=V1,V2"):
        static.parse_grid("C", "linear-svm")


def test_input_errors(functionals_file, tmp_path):
    unsplit = tmp_path / "unsplit.npz"
    save_feature_set(make_feature_set(n=30, classes=CLASSES, min_length=1, max_length=1, split=False), unsplit)
    with pytest.raises(InputError, match="has no 'split' array; give --train and --test, or use --cv"):
        train_static.main(["--data", str(unsplit), "--out", str(tmp_path / "x"), *FAST])
    with pytest.raises(InputError, match="needs at least 7 speakers; the data has 6"):
        train_static.main(["--data", str(functionals_file), "--cv", "kfold-speakers", "7",
                           "--out", str(tmp_path / "y"), *FAST])
    assert not (tmp_path / "y").exists()
    with pytest.raises((SystemExit, InputError)):  # argparse usage error
        train_static.main(["--data", str(functionals_file), "--model", "forest"])
