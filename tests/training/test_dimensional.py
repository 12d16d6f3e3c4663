"""Dimensional targets (issue 28 item 3): --target arousal,valence and multi-task emotion,arousal."""

import csv
import dataclasses
import json

import numpy as np
import pytest

import compare_runs
import ensemble
import export_model
import train_attention_lstm
from serattn.analysis import statistics as stats
from serattn.errors import InputError
from serattn.experiment import Experiment
from serattn.features.demo_corpus import DIMENSIONS, dimensions_of
from serattn.features.feature_set import save_feature_set
from serattn.targets import concordance, evaluate_value_rows, parse_loss_weights, selection_score, selection_weights
from serattn.testing import add_dimensions, make_feature_set
from tests.fake_runs import make_fake_run
from tests.scripts.test_safety import assert_refused

TINY = ["--units", "8", "--attention-units", "4", "--epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def dimensional_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dimensional") / "features.npz"
    save_feature_set(add_dimensions(make_feature_set(n=48, speakers=4, seed=3)), path)
    return path


def train(argv):
    assert train_attention_lstm.main([str(a) for a in argv]) == 0


def rows_of(run):
    with open(run / "predictions.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def dimensional_run(dimensional_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "av"
    train(["--data", dimensional_file, "--target", "arousal,valence", "--out", out, *TINY])
    return out


# --- the experiment: checked before data is read -------------------------------------------


def spec(**model):
    return {"data": {"data": "x.npz"}, "model": model}


def test_targets_are_typed_fields_of_the_experiment():
    experiment = Experiment.from_dict(spec(target="arousal,valence"))
    assert experiment.model.target == ("arousal", "valence")
    assert Experiment.from_dict(experiment.to_dict()).model.target == ("arousal", "valence")
    assert Experiment.from_dict(spec()).model.target == ("emotion",)


@pytest.mark.parametrize("model, training, message", [
    ({"target": "arousal,arousal"}, {}, "given twice"),
    ({"target": "arousal,"}, {}, "not a column name"),
    ({"target": "arousal"}, {"loss_weights": "valence=1"}, "'valence' is not a target"),
    ({"target": "arousal"}, {"loss_weights": "arousal=-1"}, "non-negative"),
    ({"target": "arousal"}, {"target_loss": "mae"}, "unknown target loss"),
    ({"target": "arousal"}, {"label_smoothing": 0.1}, "no emotion"),
])
def test_bad_targets_are_refused_before_data_is_read(model, training, message):
    with pytest.raises(InputError, match=message):
        Experiment.from_dict({**spec(**model), "training": training})


def test_selection_weighs_the_validation_metrics_like_the_loss():
    assert selection_weights(("emotion",)) == {"ua": 1.0}
    weights = selection_weights(("emotion", "arousal"), "arousal=3")
    assert weights == {"ua": 1.0, "ccc_arousal": 3.0}
    assert selection_score({"val_ua": 0.4, "val_ccc_arousal": 0.8}, weights) == pytest.approx(0.7)
    assert selection_score({"val_ua": 0.4}, weights) is None
    assert parse_loss_weights(None, ("arousal", "valence")) == {"arousal": 1.0, "valence": 1.0}


@pytest.mark.parametrize("column, values, message", [
    ("dominance", None, r"--target dominance: '.*features.npz' has no column 'dominance'"),
    ("arousal", "high", r"column 'arousal' of '.*features.npz' is not numeric \(e.g. 'high'\)"),
    ("arousal", "", r"column 'arousal' of '.*features.npz' has \d+ empty"),
])
def test_a_missing_or_bad_column_gives_one_line_naming_file_and_column(column, values, message, tmp_path, capsys):
    feature_set = add_dimensions(make_feature_set(n=48, speakers=4, seed=3))
    if values is not None:
        feature_set.columns["arousal"] = np.array([values] * len(feature_set))
    path = tmp_path / "features.npz"
    save_feature_set(feature_set, path)
    assert_refused(train_attention_lstm.main, ["--data", str(path), "--target", column, "--out",
                                               str(tmp_path / "run"), *TINY], message, tmp_path, capsys)


# --- loss, metrics and the model --------------------------------------------------------------


def test_ccc_loss_and_streaming_metric_match_lins_ccc():
    from serattn.models.targets import TargetLoss, ValueCCC

    rng = np.random.default_rng(0)
    true = rng.normal(size=(40, 2))
    predicted = 0.5 * true + rng.normal(0, 0.5, size=(40, 2)) + 0.3
    y_true = np.concatenate([np.zeros((40, 1)), true], axis=1).astype("float32")
    loss = TargetLoss(0, ["a", "b"], [0.0, 1.0, 2.0])
    expected = (1 - concordance(true[:, 0], predicted[:, 0])) + 2 * (1 - concordance(true[:, 1], predicted[:, 1]))
    assert float(loss(y_true, predicted.astype("float32"))) == pytest.approx(expected, rel=1e-4)
    metric = ValueCCC(0, 1)
    for part in (slice(0, 15), slice(15, 40)):  # over batches: the CCC of all of them, not a mean
        metric.update_state(y_true[part], predicted[part].astype("float32"))
    assert float(metric.result()) == pytest.approx(concordance(true[:, 1], predicted[:, 1]), abs=1e-5)


def test_every_pooling_gets_a_regression_head():
    from serattn.models.attention_lstm import build_attention_lstm, build_basic_lstm
    from serattn.poolings import POOLINGS

    frames = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    inputs = {"features": frames, "mask": np.ones((2, 5), bool)}
    for name, pooling in POOLINGS.items():
        build = build_basic_lstm if pooling.model == "basic-lstm" else build_attention_lstm
        heads = {"heads": 2} if pooling.model != "basic-lstm" and name == "multihead" else {}
        for classes, values in ((0, 2), (4, 1)):
            if pooling.per_class:  # one head per class: categorical targets only
                with pytest.raises(InputError, match="predicts classes only"):
                    build(3, classes, units=4, pooling=name, num_values=values)
                continue
            model = build(3, classes, units=4, pooling=name, num_values=values, **heads)
            output = np.asarray(model(inputs))
            assert output.shape == (2, classes + values), name
            if classes:
                assert np.allclose(output[:, :classes].sum(1), 1, atol=1e-5), name


# --- runs end to end ---------------------------------------------------------------------------


def test_a_dimensional_run_is_scored_from_its_predictions(dimensional_run, dimensional_file):
    metrics = json.loads((dimensional_run / "metrics.json").read_text())
    rows = rows_of(dimensional_run)
    assert list(rows[0]) == ["id", "speaker", "split", "true_arousal", "pred_arousal", "true_valence",
                             "pred_valence"]
    test = [r for r in rows if r["split"] == "test"]
    assert metrics["n_test"] == len(test) and "ua" not in metrics
    scores = evaluate_value_rows(test, ("arousal", "valence"))
    for dim in ("arousal", "valence"):
        assert set(metrics["dimensions"][dim]) == {"ccc", "pearson", "mse"}
        assert metrics["dimensions"][dim]["ccc"] == pytest.approx(scores["dimensions"][dim]["ccc"], abs=1e-5)
        assert metrics["dimensions"][dim]["mse"] == pytest.approx(scores["dimensions"][dim]["mse"], rel=1e-4)
    assert metrics["ccc"] == pytest.approx(np.mean([metrics["dimensions"][d]["ccc"] for d in ("arousal", "valence")]))
    data = dict(zip(*(np.load(dimensional_file)[key] for key in ("ids", "column_arousal"))))
    assert all(float(r["true_arousal"]) == pytest.approx(float(data[r["id"]])) for r in rows)
    history = (dimensional_run / "history.csv").read_text().splitlines()[0]
    assert "val_ccc_arousal" in history and "val_ccc_valence" in history and "val_ua" not in history
    config = json.loads((dimensional_run / "config.json").read_text())
    assert config["target"] == ["arousal", "valence"] and config["target_loss"] == "ccc"


def test_the_saved_model_loads_in_safe_mode_and_gives_the_values(dimensional_run):
    import keras

    model = keras.saving.load_model(dimensional_run / "model.keras", safe_mode=True)
    assert model.output.shape[-1] == 2 and type(model.get_layer("output")).__name__ == "TargetHead"


def test_validation_speakers_may_take_a_class_only_when_classes_are_not_predicted(tmp_path, capsys):
    """Holding out the only speaker of a class is refused where the model predicts classes, not for values alone."""
    features = add_dimensions(make_feature_set(n=48, speakers=4, seed=3))
    labels = np.where(features.speakers == "s00", "Z", features.labels)
    path = tmp_path / "features.npz"
    save_feature_set(dataclasses.replace(features, labels=labels), path)
    flags = ["--data", path, "--val-speakers", "s00", *TINY]
    train([*flags, "--target", "arousal", "--out", tmp_path / "arousal"])
    assert {row["speaker"] for row in rows_of(tmp_path / "arousal") if row["split"] == "val"} == {"s00"}
    assert_refused(train_attention_lstm.main, [str(a) for a in [*flags, "--target", "emotion,arousal",
                                                                 "--out", tmp_path / "both"]],
                   r"class\(es\) Z have no training utterances", tmp_path, capsys)


def test_a_multi_task_run_predicts_classes_and_values(dimensional_file, tmp_path):
    out = tmp_path / "mt"
    train(["--data", dimensional_file, "--target", "emotion,arousal", "--loss-weights", "arousal=0.5",
           "--target-loss", "mse", "--out", out, *TINY])
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"ua", "wa", "confusion", "ccc", "dimensions", "val_ua", "val_ccc"} <= set(metrics)
    rows = rows_of(out)
    assert {"true", "predicted", "p_A", "true_arousal", "pred_arousal"} <= set(rows[0])
    probabilities = np.array([[float(r[f"p_{c}"]) for c in "AENPR"] for r in rows])
    assert np.allclose(probabilities.sum(1), 1, atol=1e-4)
    header = (out / "history.csv").read_text().splitlines()[0]
    assert "val_ua" in header and "val_ccc_arousal" in header


def test_cross_validation_pools_the_dimensional_metrics(dimensional_file, tmp_path):
    out = tmp_path / "cv"
    train(["--data", dimensional_file, "--target", "valence", "--cv", "kfold-speakers", "2", "--val-speakers", "0", "--out", out,
           *TINY])
    metrics = json.loads((out / "metrics.json").read_text())
    rows = rows_of(out)
    assert len(rows) == 48 and metrics["n_test"] == 48
    assert metrics["dimensions"]["valence"]["ccc"] == pytest.approx(evaluate_value_rows(rows, ("valence",))["ccc"])
    folds = [json.loads((out / f"fold-{k:02d}" / "metrics.json").read_text())["ccc"] for k in range(2)]
    assert metrics["ccc_fold_mean"] == pytest.approx(np.mean(folds))
    assert [f["ccc"] for f in metrics["folds"]] == pytest.approx(folds)


# --- downstream -------------------------------------------------------------------------------


def test_compare_runs_tables_ccc_with_speaker_statistics(dimensional_run, tmp_path, capsys):
    out = tmp_path / "tables.md"
    assert compare_runs.main([str(dimensional_run), "--out", str(out)]) == 0
    text = out.read_text()
    assert "CCC arousal" in text and "CCC 95% CI" in text and "UA (%)" not in text


def test_compare_runs_refuses_to_mix_dimensional_and_categorical_runs(dimensional_run, tmp_path, capsys):
    categorical = make_fake_run(tmp_path)
    assert_refused(compare_runs.main, [str(dimensional_run), str(categorical)], "different targets", tmp_path,
                   capsys)


def test_an_ensemble_of_dimensional_runs_averages_their_values(dimensional_run, dimensional_file, tmp_path,
                                                                 capsys):
    other = tmp_path / "seed2"
    train(["--data", dimensional_file, "--target", "arousal,valence", "--seed", "2", "--out", other, *TINY])
    assert ensemble.main([str(dimensional_run), str(other), "--out", str(tmp_path / "ens")]) == 0
    members = [{r["id"]: r for r in rows_of(run) if r["split"] == "test"} for run in (dimensional_run, other)]
    rows = [r for r in rows_of(tmp_path / "ens") if r["split"] == "test"]
    for row in rows:
        mean = np.mean([float(m[row["id"]]["pred_arousal"]) for m in members])
        assert float(row["pred_arousal"]) == pytest.approx(mean, abs=2e-6)
    metrics = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert metrics["ccc"] == pytest.approx(evaluate_value_rows(rows, ("arousal", "valence"))["ccc"], abs=1e-5)
    assert len(metrics["member_test_ccc"]) == 2
    assert compare_runs.main([str(dimensional_run), str(tmp_path / "ens")]) == 0  # an ensemble reads as a run
    assert "CCC arousal" in capsys.readouterr().out
    assert_refused(ensemble.main, [str(dimensional_run), str(make_fake_run(tmp_path)), "--out", str(tmp_path / "e2")],
                   "cannot combine dimensional runs", tmp_path, capsys)


def test_the_onnx_export_gives_the_values_within_parity(dimensional_run, dimensional_file, tmp_path):
    from serattn.deploy.export import load_exported
    from serattn.deploy.recognizer import Recognizer
    from serattn.features.feature_set import load_feature_set

    out = tmp_path / "onnx"
    assert export_model.main([str(dimensional_run), "--format", "onnx", "--out", str(out), "--check",
                              str(dimensional_file)]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["dimensions"] == ["arousal", "valence"] and "probabilities" not in card["outputs"]
    assert card["parity"]["ok"] and card["parity"]["max_abs_diff_values"] <= card["parity"]["tolerance"]
    data = load_feature_set(dimensional_file)
    frames = data.sequences()[0]
    _, attention, values = load_exported(out)(frames)
    expected = Recognizer.from_run(dimensional_run, audio=False).predict_frames([frames])
    assert values == pytest.approx(expected.values[0], abs=1e-4) and len(attention) == len(frames)


def test_a_recognizer_gives_the_values_of_a_dimensional_run(dimensional_run, dimensional_file):
    from serattn.deploy.recognizer import Recognizer
    from serattn.features.feature_set import load_feature_set

    recognizer = Recognizer.from_run(dimensional_run, audio=False)
    test = load_feature_set(dimensional_file)
    test = test.subset(test.split == "test")
    predictions = recognizer.predict_frames(test.sequences(), test.ids, test.speakers)
    assert predictions.dimensions == ("arousal", "valence") and predictions.values.shape == (len(test), 2)
    saved = {r["id"]: r for r in rows_of(dimensional_run)}
    for utterance, values in zip(predictions.ids, predictions.values):
        assert values == pytest.approx([float(saved[utterance]["pred_arousal"]), float(saved[utterance]["pred_valence"])],
                                       abs=1e-5)
    recognizer.check_windowed()  # windows of a dimensional run give values (tests/training/test_dimensional_downstream.py)


def test_speaker_bootstrap_and_paired_test_of_ccc():
    rng = np.random.default_rng(1)
    true = rng.normal(size=(60, 1))
    speakers = np.repeat([f"s{k}" for k in range(6)], 10)
    good = stats.speaker_value_sums(true, true + rng.normal(0, 0.3, size=true.shape), speakers, ("a",))
    bad = stats.speaker_value_sums(true, rng.normal(size=true.shape), speakers, ("a",))
    boot = stats.bootstrap_ccc(good, resamples=200)
    estimate, low, high = boot["ccc"]["a"]
    assert low <= estimate <= high and estimate > 0.8
    same = stats.paired_ccc_test(good, good)
    assert same["ccc_difference"][0] == 0 and same["p_value"] == 1.0
    test = stats.paired_ccc_test(bad, good)
    assert test["ccc_difference"][0] > 0.5 and test["p_value"] <= 2 / 64 and test["exact"]


# --- the demo corpus's dimensions ------------------------------------------------------------


def test_demo_dimensions_follow_the_cue_class_and_strength():
    assert dimensions_of("A", 1.0) == DIMENSIONS["A"]
    assert dimensions_of("N", 0.5) == (-0.3, 0.0)
    arousal = {label: dimensions_of(label, 1.0)[0] for label in DIMENSIONS}
    assert arousal["A"] > arousal["E"] > arousal["P"] > 0 > arousal["R"] > arousal["N"]


def test_search_maximizes_the_pooled_inner_ccc_of_a_dimensional_target(dimensional_file, tmp_path, capsys):
    import search

    space = tmp_path / "space.yaml"
    space.write_text("trainer: attention-lstm\nparams:\n  learning-rate: {low: 0.001, high: 0.01, log: true}\n")
    argv = ["--space", str(space), "--trials", "1", "--inner-cv", "kfold-speakers", "2", "--data",
            str(dimensional_file), "--val-speakers", "0", "--target", "arousal", "--out", str(tmp_path / "s"), *TINY]
    assert search.main(argv) == 0
    with open(tmp_path / "s" / "search" / "trials.csv", newline="") as handle:
        (trial,) = list(csv.DictReader(handle))
    pooled = json.loads((tmp_path / "s" / "search" / "trial-0000" / "metrics.json").read_text())
    assert float(trial["ccc"]) == pytest.approx(pooled["ccc"]) and "ccc_fold_01" in trial
    record = json.loads((tmp_path / "s" / "search.json").read_text())
    assert record["objective"] == "ccc" and record["best_ccc"] == pytest.approx(pooled["ccc"])
    for extra, message in ((["--objective", "ua"], "needs classes"), (["--objective", "ccc", "--target", "emotion"],
                                                                        "needs a dimensional --target")):
        assert_refused(search.main, argv[:-len(TINY) - 2] + ["--out", str(tmp_path / "s2"), *TINY, *extra], message,
                       tmp_path / "s", capsys)


def test_report_draws_true_against_predicted_with_speaker_intervals(dimensional_run, tmp_path, capsys):
    import report
    from serattn.report.dimensional import test_values
    from serattn.runs.reading import open_run

    out = tmp_path / "page.html"
    assert report.main([str(dimensional_run), "--out", str(out), "--resamples", "200"]) == 0
    html = out.read_text()
    _, speakers, true, predicted = test_values(open_run(dimensional_run))
    boot = stats.bootstrap_ccc(stats.speaker_value_sums(true, predicted, speakers, ("arousal", "valence")), 200)
    estimate, low, high = boot["ccc"]["arousal"]
    assert f"arousal</td><td>{estimate:.3f}</td><td>[{low:.3f}, {high:.3f}]" in html
    assert html.count("data:image/png;base64,") == 1 and "Pearson r" in html
    assert_refused(report.main, [str(dimensional_run), str(make_fake_run(tmp_path)), "--out", str(tmp_path / "p2.html")],
                   "on their own", tmp_path, capsys)
