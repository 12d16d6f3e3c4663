"""Dimensional targets downstream (issue 28 leftovers): multi-task and weighted ensembles, value timelines,
per-test-set scores in compare/report, nested search on CCC."""

import csv
import json

import numpy as np
import pytest

import ensemble
import train_attention_lstm
from serattn.features.feature_set import save_feature_set
from serattn.targets import concordance, evaluate_value_rows
from serattn.testing import add_dimensions, make_feature_set
from tests.scripts.test_safety import assert_refused

TINY = ["--units", "8", "--attention-units", "4", "--epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def value_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("values") / "features.npz"
    save_feature_set(add_dimensions(make_feature_set(n=48, speakers=4, seed=5)), path)
    return path


def train(argv):
    assert train_attention_lstm.main([str(a) for a in argv]) == 0


def rows_of(run, split=None):
    with open(run / "predictions.csv", newline="") as handle:
        return [r for r in csv.DictReader(handle) if split is None or r["split"] == split]


@pytest.fixture(scope="module")
def multi_task_runs(value_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("mt")
    runs = [root / f"lr{k}" for k in range(2)]
    for rate, out in zip(("0.001", "0.01"), runs):
        train(["--data", value_file, "--target", "emotion,arousal", "--learning-rate", rate, "--out", out, *TINY])
    return runs


@pytest.fixture(scope="module")
def value_runs(value_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("av")
    runs = [root / f"lr{k}" for k in range(3)]  # one seed: the same validation speakers, which weighted needs
    for rate, out in zip(("0.001", "0.003", "0.01"), runs):
        train(["--data", value_file, "--target", "arousal,valence", "--learning-rate", rate, "--out", out, *TINY])
    return runs


# --- ensembles ---------------------------------------------------------------------------------


def test_a_multi_task_ensemble_averages_probabilities_and_values(multi_task_runs, tmp_path):
    out = tmp_path / "ens"
    assert ensemble.main([*map(str, multi_task_runs), "--out", str(out)]) == 0
    members = [{r["id"]: r for r in rows_of(run, "test")} for run in multi_task_runs]
    rows = rows_of(out, "test")
    classes = json.loads((out / "config.json").read_text())["classes"]
    for row in rows:
        for column in ["pred_arousal", *(f"p_{c}" for c in classes)]:
            assert float(row[column]) == pytest.approx(np.mean([float(m[row["id"]][column]) for m in members]), abs=2e-6)
        assert row["predicted"] == max(classes, key=lambda c: float(row[f"p_{c}"]))
        assert row["true"] == members[0][row["id"]]["true"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["target"] == ["emotion", "arousal"] and {"ua", "confusion", "ccc", "val_ua", "val_ccc"} <= set(metrics)
    recall = [np.mean([r["predicted"] == c for r in rows if r["true"] == c]) for c in classes
              if any(r["true"] == c for r in rows)]
    assert metrics["ua"] == pytest.approx(np.mean(recall))
    assert metrics["ccc"] == pytest.approx(evaluate_value_rows(rows, ("arousal",))["ccc"], abs=1e-5)
    weighted = tmp_path / "w"  # weights chosen on validation UA and CCC together, as the runs chose epochs
    assert ensemble.main([*map(str, multi_task_runs), "--method", "weighted", "--step", "0.5", "--out", str(weighted)]) == 0
    metrics = json.loads((weighted / "metrics.json").read_text())
    val = [{r["id"]: r for r in rows_of(run, "val")} for run in multi_task_runs]
    ids = list(val[0])

    def val_score(w):  # (UA + CCC arousal) / 2 of the mixture on the validation rows
        p = sum(wk * np.array([[float(m[i][f"p_{c}"]) for c in classes] for i in ids]) for wk, m in zip(w, val))
        v = sum(wk * np.array([float(m[i]["pred_arousal"]) for i in ids]) for wk, m in zip(w, val))
        true = np.array([val[0][i]["true"] for i in ids])
        predicted = np.array(classes)[p.argmax(axis=1)]
        ua = np.mean([np.mean(predicted[true == c] == c) for c in classes if np.any(true == c)])
        return (ua + concordance([float(val[0][i]["true_arousal"]) for i in ids], v)) / 2

    best = max(val_score(w) for w in ((0, 1), (0.5, 0.5), (1, 0)))
    assert val_score(metrics["weights"]) == pytest.approx(best, abs=1e-9)
    assert (metrics["val_ua"] + metrics["val_ccc"]) / 2 == pytest.approx(best, abs=1e-5)


def test_weighted_dimensional_ensemble_chooses_the_weights_of_best_validation_ccc(value_runs, tmp_path, capsys):
    out = tmp_path / "w"
    assert ensemble.main([*map(str, value_runs), "--method", "weighted", "--step", "0.25", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    weights = np.array(metrics["weights"])
    assert weights.sum() == pytest.approx(1) and np.all(np.isclose(weights * 4, np.round(weights * 4)))
    members = [{r["id"]: r for r in rows_of(run, "val")} for run in value_runs]
    ids = list(members[0])
    true = np.array([[float(members[0][i][f"true_{d}"]) for d in ("arousal", "valence")] for i in ids])
    predicted = np.array([[[float(m[i][f"pred_{d}"]) for d in ("arousal", "valence")] for i in ids] for m in members])

    def val_ccc(w):
        mixed = np.einsum("m,mnd->nd", w, predicted)
        return np.mean([concordance(true[:, k], mixed[:, k]) for k in range(2)])

    grid = [np.array([a, b, 4 - a - b]) / 4 for a in range(5) for b in range(5 - a)]
    best = max(val_ccc(w) for w in grid)
    assert val_ccc(weights) == pytest.approx(best, abs=1e-9)
    assert metrics["val_ccc"] == pytest.approx(best, abs=1e-5)
    test = rows_of(out, "test")
    test_members = [{r["id"]: r for r in rows_of(run, "test")} for run in value_runs]
    for row in test[:5]:
        expected = sum(w * float(m[row["id"]]["pred_valence"]) for w, m in zip(weights, test_members))
        assert float(row["pred_valence"]) == pytest.approx(expected, abs=2e-6)
    mean = tmp_path / "m"
    assert ensemble.main([*map(str, value_runs), "--out", str(mean)]) == 0
    assert json.loads((mean / "metrics.json").read_text())["weights"] == pytest.approx([1 / 3] * 3, abs=1e-6)


def test_a_multi_task_and_a_dimensional_run_are_not_combined(multi_task_runs, value_runs, tmp_path, capsys):
    assert_refused(ensemble.main, [str(multi_task_runs[0]), str(value_runs[0]), "--out", str(tmp_path / "x")],
                   "different dimensions", tmp_path, capsys)


# --- timelines and streams -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_multi_task(tmp_path_factory, demo_corpus):
    """A tiny demo corpus (IS09 features from its audio, the session's) and a 1-epoch emotion,arousal,valence run."""
    run = tmp_path_factory.mktemp("demo") / "run"
    train(["--data", demo_corpus["features"], "--target", "emotion,arousal,valence", "--out", run, "--units", "8",
           "--attention-units", "4", "--epochs", "1", "--quiet"])
    return {"run": run, "wavs": demo_corpus["wavs"][:4]}


def test_timelines_and_streams_give_each_windows_values(demo_multi_task, tmp_path):
    import soundfile as sf

    import predict
    from serattn.deploy.recognizer import Recognizer
    from serattn.deploy.timeline import frames_in
    from serattn.features import extraction
    from serattn.runs.reading import open_run

    signal = np.concatenate([extraction.load_audio(p)[0] for p in demo_multi_task["wavs"]])[:3 * 16000]
    wav = tmp_path / "long.wav"
    sf.write(wav, signal, 16000)
    assert predict.main([str(demo_multi_task["run"]), str(wav), "--window", "1.0", "--hop", "0.5", "--out",
                         str(tmp_path / "t")]) == 0
    with open(next((tmp_path / "t").glob("*.csv")), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[-4:] == ["predicted", "pred_arousal", "pred_valence", "attention_peak_s"]
    assert any((tmp_path / "t").glob("*.png"))

    # Each window's values are the model's on that window's frames alone (normalized as in training).
    run = open_run(demo_multi_task["run"])
    recognizer = Recognizer.from_run(run)
    model, normalization = run.load_keras_model(), run.normalization()
    frames = recognizer.extract(signal)
    length = frames_in(1.0)
    for row in rows:
        start = int(round(float(row["start_s"]) * 100))
        window = ((frames[start:start + length] - normalization.mean) / normalization.std)[None].astype(np.float32)
        output = np.asarray(model({"features": window, "mask": np.ones(window.shape[:2], bool)}, training=False))[0]
        assert [float(row["pred_arousal"]), float(row["pred_valence"])] == pytest.approx(output[5:], abs=2e-4)
        assert row["predicted"] == run.classes[int(output[:5].argmax())]

    # A stream gives the same values, window by window, as its line's DIMENSION=value fields.
    pcm = (np.clip(signal, -1, 1 - 2 ** -15) * 32768).astype("<i2").tobytes()
    windows = list(recognizer.stream([pcm[:7000], pcm[7000:]], 1.0, 0.5))
    assert [len(w) for w in windows] == [4] * len(windows) and set(windows[0][3]) == {"arousal", "valence"}
    source = tmp_path / "pcm"
    source.write_bytes(pcm)
    out = tmp_path / "lines.txt"
    with open(source, "rb") as reader, open(out, "w") as sink:
        args = predict.parse_args([str(demo_multi_task["run"]), "--stream", "-", "--window", "1.0", "--hop", "0.5"])
        assert predict.predict_stream(recognizer, args, reader.fileno(), sink) == 0
    fields = out.read_text().splitlines()[0].split("\t")
    assert fields[4] == f"arousal={windows[0][3]['arousal']:.3f}" and fields[5].startswith("valence=")


# --- per-test-set scores and label-map drops in compare_runs.py and report.py ---------------------


def test_compare_and_report_show_each_test_set_and_the_label_map_drops(tmp_path, capsys):
    import dataclasses

    import compare_runs
    import report
    import train_static

    data = make_feature_set(n=60, classes=("A", "B", "C", "D"), speakers=6, min_length=5, max_length=12, signal=3.0,
                            seed=2)
    partitions = {"s00": "Train", "s01": "Train", "s02": "Train", "s03": "Development", "s04": "Test1", "s05": "Test2"}
    speakers = sorted(set(data.speakers))
    data = dataclasses.replace(data, split=None, columns={
        "partition": np.array([partitions[f"s{speakers.index(s):02d}"] for s in data.speakers])})
    save_feature_set(data, tmp_path / "f.npz")
    (tmp_path / "map.yaml").write_text("labels: {A: a, B: b, C: c, D: null}\n")
    out = tmp_path / "run"
    assert train_static.main(["--data", str(tmp_path / "f.npz"), "--split-by", "partition", "--label-map",
                              str(tmp_path / "map.yaml"), "--grid", "C=1", "--pool", "mean", "--out", str(out),
                              "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    dropped = metrics["label_map_dropped"]["data"]["total"]
    assert dropped == int(np.sum(data.labels == "D")) > 0
    capsys.readouterr()
    assert compare_runs.main([str(out), "--csv"]) == 0
    printed = capsys.readouterr().out
    for name in ("Test1", "Test2"):
        scores = metrics["test_sets"][name]
        assert f"all runs,{name},1,{100 * scores['ua']:.1f},{100 * scores['wa']:.1f},{scores['n']}" in printed
    assert f"run,data,{dropped},D {dropped},-" in printed
    page = tmp_path / "page.html"
    assert report.main([str(out), "--out", str(page), "--gallery", "0", "--resamples", "100"]) == 0
    html = page.read_text()
    scores = metrics["test_sets"]["Test2"]
    assert f"<td>Test2</td><td>{100 * scores['ua']:.1f}</td><td>{100 * scores['wa']:.1f}</td><td>{scores['n']}</td>" in html
    assert f"<td>data</td><td>{dropped}</td><td class=\"text\">D {dropped}</td>" in html


# --- nested search on CCC ----------------------------------------------------------------------------


def test_a_nested_search_of_a_dimensional_target_maximizes_and_reports_ccc(tmp_path):
    import search

    value_file = tmp_path / "features.npz"  # 20 utterances a speaker: one speaker alone trains every class
    save_feature_set(add_dimensions(make_feature_set(n=80, speakers=4, seed=5)), value_file)

    space = tmp_path / "space.yaml"
    space.write_text("trainer: attention-lstm\nparams:\n  learning-rate: {low: 0.001, high: 0.01, log: true}\n")
    out = tmp_path / "s"
    assert search.main(["--space", str(space), "--trials", "1", "--nested", "--cv", "kfold-speakers", "2",
                        "--inner-cv", "kfold-speakers", "2", "--data", str(value_file), "--val-speakers", "0",
                        "--target", "arousal", "--out", str(out), *TINY[:-3], "--epochs", "1", "--quiet"]) == 0
    record = json.loads((out / "search.json").read_text())
    pooled = json.loads((out / "nested" / "metrics.json").read_text())
    assert record["objective"] == "ccc" and "outer_ua" not in record
    assert record["outer_ccc"] == pytest.approx(pooled["ccc"]) and record["outer_dimensions"]["arousal"] == pooled["ccc"]
    with open(out / "nested" / "predictions.csv", newline="") as handle:
        assert pooled["ccc"] == pytest.approx(evaluate_value_rows(list(csv.DictReader(handle)), ("arousal",))["ccc"])
    for fold in record["nested"]:
        k = fold["outer_fold"]
        assert fold["test_ccc"] == json.loads((out / "nested" / f"fold-{k:02d}" / "metrics.json").read_text())["ccc"]
        with open(out / f"{record['study']}-outer-{k:02d}" / "trials.csv", newline="") as handle:
            (trial,) = list(csv.DictReader(handle))  # the inner loop maximized the pooled inner CCC
        assert fold["search_ccc"] == pytest.approx(float(trial["ccc"])) and "ccc_fold_01" in trial
