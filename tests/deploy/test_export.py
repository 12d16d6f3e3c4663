"""Exported models (SavedModel, TFLite, ONNX) against Keras, and timelines of long and live audio."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import export_model
import extract_features
import make_demo_corpus
import predict
import train_attention_lstm
from serattn.deploy import export
from serattn.deploy.timeline import StreamWindows, WindowPredictor, frames_in, timeline_of_frames
from serattn.errors import InputError
from serattn.features import extraction
from serattn.features.feature_set import load_feature_set
from serattn.runs.folder import CONFIG_FILE, KERAS_MODEL_FILE, MODEL_SHA256_KEY, NORMALIZATION_FILE
from serattn.runs.reading import open_run

ROOT = Path(__file__).resolve().parents[2]
LONG_FRAMES = 3000  # 30 s


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A tiny demo corpus, its IS09 features and a 1-epoch run (recurrent dropout 0.5), and a long wav."""
    root = tmp_path_factory.mktemp("export")
    corpus, features, run = root / "demo", root / "demo" / "features.npz", root / "run"
    make_demo_corpus.main(["--out", str(corpus), "--utterances", "40", "--speakers", "4", "--max-duration", "1.5"])
    extract_features.main(["--manifest", str(corpus / "manifest.csv"), "--out", str(features), "--jobs", "1",
                           "--quiet"])
    assert train_attention_lstm.main(["--data", str(features), "--out", str(run), "--units", "8",
                                      "--attention-units", "4", "--epochs", "1", "--quiet"]) == 0
    signal = np.concatenate([sf.read(path, dtype="float32")[0] for path in sorted((corpus / "wav").glob("*.wav"))])
    long_wav = root / "long.wav"
    sf.write(long_wav, signal[:12 * 16000], 16000, subtype="PCM_16")  # 12 s
    return {"root": root, "features": features, "run": run, "long_wav": long_wav}


def run_utterances(demo):
    """The run's test utterances (raw frames), plus a single frame and a 30-s one."""
    data = load_feature_set(demo["features"])
    test = [i for i in range(len(data)) if data.split[i] == "test"]
    ids = [str(data.ids[i]) for i in test]
    utterances = [data.sequences()[i] for i in test]
    ids += ["one-frame", "long-30s"]  # 30 s: the test utterances one after the other, repeated
    utterances += [utterances[0][:1], np.resize(np.concatenate(utterances), (LONG_FRAMES, data.dim))]
    return ids, utterances


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_export_matches_keras_on_the_run_test_utterances(demo, fmt, tmp_path):
    run = open_run(demo["run"])
    out = tmp_path / fmt
    assert export_model.main([str(demo["run"]), "--format", fmt, "--out", str(out), "--check",
                              str(demo["features"])]) == 0
    exported = export.load_exported(out)
    ids, utterances = run_utterances(demo)
    card = json.loads((out / export.MODEL_CARD).read_text())
    assert card["parity"]["utterances"] == len(export.PROBE_LENGTHS) + len(ids) - 2  # probes + test utterances
    report = export.parity_report(run.load_keras_model(), run.normalization(), exported, fmt, ids, utterances)
    assert report["ok"], report
    assert report["max_abs_diff_probabilities"] <= 1e-5 and report["max_abs_diff_attention"] <= 1e-5
    assert {1, LONG_FRAMES} <= set(report["lengths"]) and len(report["lengths"]) >= 4
    probabilities, attention = exported(utterances[-1])
    assert probabilities.shape == (5,) and attention.shape == (LONG_FRAMES,)
    assert attention.sum() == pytest.approx(1, abs=1e-5)

    assert card["classes"] == list(run.classes) and card["features"]["names"] == run.config["feature_names"]
    assert card["features"]["frame_rate"] == 100 and card["normalization"]["folded_in"] is True
    assert card["training_data"]["data"]["sha256"] == run.config["data_files"]["data"]["sha256"]
    assert card["metrics"]["ua"] == run.metrics()["ua"] and card["parity"]["ok"]
    assert list(card["inputs"]) == ["frames"] and card["export_versions"]["tensorflow"]


def test_a_run_trained_with_the_fused_lstm_kernel_exports_with_parity(demo, tmp_path):
    """The fused kernel trains the stock LSTM's weights: the run's model exports as any other."""
    run = tmp_path / "fused"
    assert train_attention_lstm.main(["--data", str(demo["features"]), "--out", str(run), "--units", "8",
                                      "--attention-units", "4", "--epochs", "1", "--recurrent-dropout", "0",
                                      "--lstm-kernel", "fused", "--quiet"]) == 0
    assert json.loads((run / CONFIG_FILE).read_text())["lstm_kernel_used"] == "fused"
    for fmt in export.FORMATS:
        assert export_model.main([str(run), "--format", fmt, "--out", str(tmp_path / fmt), "--check",
                                  str(demo["features"])]) == 0
        card = json.loads((tmp_path / fmt / export.MODEL_CARD).read_text())
        assert card["parity"]["ok"] and card["parity"]["max_abs_diff_probabilities"] <= 1e-5


def variant_run(demo, tmp_path, norm="global", **model_args):
    """A copy of the demo run whose model is an untrained variant built with ``model_args``
    (``model="basic-lstm"``: the basic LSTM)."""
    import keras

    from serattn.models.attention_lstm import build_attention_lstm, build_basic_lstm

    run = tmp_path / "variant"
    shutil.copytree(demo["run"], run)
    keras.utils.set_random_seed(3)
    if model_args.get("model") == "basic-lstm":
        model = build_basic_lstm(32, 5, units=8, pooling=model_args["pooling"])
    else:
        model = build_attention_lstm(32, 5, units=8, attention_units=4, **model_args)
    model.save(run / KERAS_MODEL_FILE)
    config = json.loads((run / CONFIG_FILE).read_text())
    config.pop(MODEL_SHA256_KEY)
    config.update({k: v for k, v in model_args.items()
                   if k in ("model", "pooling", "heads", "pool_inputs", "functionals_norm")},
                  norm=norm)
    (run / CONFIG_FILE).write_text(json.dumps(config))
    if norm != "global":
        (run / NORMALIZATION_FILE).write_text(json.dumps({"method": norm}))
    return run


VARIANTS = {
    "multihead": dict(pooling="multihead", heads=3),
    "attentive-stats": dict(pooling="attentive-stats", pooled_dropout=0.3),
    "attention+mean": dict(pooling="attention+mean", recurrent_dropout=0.0),
    "attention+stats-pool-inputs-augment": dict(pooling="attention+stats", pool_inputs=True,
                                                augment=dict(time_mask=5, feature_mask=3, noise_std=0.2)),
    "attention+functionals": dict(pooling="attention+functionals", recurrent_dropout=0.0),
    "class-attention": dict(pooling="class-attention"),  # the predicted class's head, without argmax
    "evidence-attention": dict(pooling="evidence-attention", recurrent_dropout=0.0),  # its learned sharpness
    "guided-evidence-attention": dict(pooling="guided-evidence-attention", recurrent_dropout=0.0),  # a stop-gradient
    "basic-lstm-mean+functionals": dict(model="basic-lstm", pooling="mean+functionals"),
    "basic-lstm-last": dict(model="basic-lstm", pooling="last"),  # uniform attention over the frames
    "basic-lstm-mean": dict(model="basic-lstm", pooling="mean"),
}


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pooling_variant_exports_with_parity(demo, tmp_path, variant, fmt):
    run = open_run(variant_run(demo, tmp_path, **VARIANTS[variant]))
    card = export.export_run(run, fmt, tmp_path / "out")  # checks the probes (1 to 3000 frames) itself
    assert card["parity"]["ok"] and card["model"]["pooling"] == VARIANTS[variant]["pooling"]
    ids, utterances = run_utterances(demo)
    report = export.parity_report(run.load_keras_model(), run.normalization(), export.load_exported(tmp_path / "out"),
                                  fmt, ids[-3:], utterances[-3:])
    assert report["ok"], {k: report[k] for k in report if k.startswith(("max", "worst"))}


def test_per_speaker_runs_take_the_speaker_statistics_as_inputs(demo, tmp_path):
    run = open_run(variant_run(demo, tmp_path, norm="speaker"))
    card = export.export_run(run, "onnx", tmp_path / "out")
    assert list(card["inputs"]) == ["frames", "speaker_mean", "speaker_std"]
    assert card["normalization"]["folded_in"] is False and "ddof 0" in card["normalization"]["how"]
    exported = export.load_exported(tmp_path / "out")
    frames = np.random.default_rng(0).normal(size=(50, 32)).astype(np.float32)
    with pytest.raises(InputError, match="give speaker_mean and speaker_std"):
        exported(frames)
    stats = (frames.mean(0), frames.std(0))
    report = export.parity_report(run.load_keras_model(), run.normalization(), exported, "onnx", ["u"], [frames],
                                  stats)
    assert report["ok"], report


def test_a_parity_failure_names_the_format_and_the_worst_utterance():
    reference = [(np.array([0.5, 0.5]), np.ones(3) / 3), (np.array([0.2, 0.8]), np.ones(4) / 4)]
    exported = [reference[0], (np.array([0.2001, 0.7999]), np.ones(4) / 4)]
    report = export.compare(exported, reference, ["short", "u0042"], [3, 4], "onnx")
    assert not report["ok"] and report["worst_probabilities"] == {"id": "u0042", "frames": 4}
    with pytest.raises(export.ParityError, match=r"onnx export .*probabilities differ by 0.0001 on utterance "
                                                 r"'u0042' \(4 frames\)"):
        export.check_parity(report)


def test_speaker_functionals_runs_predict_and_export_with_the_speakers_statistics(demo, tmp_path):
    run = variant_run(demo, tmp_path, norm="speaker", pooling="attention+functionals", functionals_norm="speaker")
    wavs = sorted(str(p) for p in (demo["root"] / "demo" / "wav").glob("*.wav"))[:6]
    assert predict.main([str(run), *wavs, "--csv", str(tmp_path / "p.csv")]) == 0
    rows = list(__import__("csv").DictReader(open(tmp_path / "p.csv")))
    probabilities = np.array([[float(row[f"p_{c}"]) for c in "AENPR"] for row in rows])
    # the files are one speaker: frames and functionals normalized with their joint statistics
    from serattn.features.feature_set import FeatureSet
    from serattn.features.normalization import Normalization
    from serattn.training.trainer import predict_with_attention, utterance_inputs

    frames = [extraction.extract_signal(extraction.load_audio(w)[0]) for w in wavs]
    names = json.loads((run / CONFIG_FILE).read_text())["feature_names"]
    files = Normalization("speaker").apply(FeatureSet.from_sequences(
        frames, ids=wavs, labels=["?"] * 6, speakers=["new"] * 6, feature_names=names))
    expected = predict_with_attention(open_run(run).load_keras_model(), files.sequences(),
                                      utterance_inputs=utterance_inputs(files, "speaker"))["probabilities"]
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    with pytest.raises(InputError, match="--functionals-norm speaker.*predict.py --window/--stream does not have"):
        predict.main([str(run), str(demo["long_wav"]), "--window", "2.0", "--out", str(tmp_path / "t")])
    assert not (tmp_path / "t").exists()

    # The export takes the speaker's functional statistics as a fourth input, and matches Keras with them.
    card = export.export_run(open_run(run), "onnx", tmp_path / "x")
    assert list(card["inputs"]) == ["frames", "speaker_mean", "speaker_std", "speaker_functionals"]
    assert card["inputs"]["speaker_functionals"]["shape"] == [2, 9 * 32] and card["parity"]["ok"]
    exported = export.load_exported(tmp_path / "x")
    mean, std = np.concatenate(frames).mean(0), np.concatenate(frames).std(0)
    statistics = utterance_inputs(files, "speaker")["speaker_functionals"][0]
    with pytest.raises(InputError, match="give speaker_functionals"):
        exported(frames[0], mean, std)
    for k in range(len(wavs)):
        np.testing.assert_allclose(exported(frames[k], mean, std, statistics)[0], expected[k], atol=1e-4)


def test_export_refuses_what_it_must_not_write(demo, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="already exists; choose another --out, or pass --overwrite"):
        export_model.main([str(demo["run"]), "--format", "onnx", "--out", str(tmp_path / "mine")])
    with pytest.raises(InputError, match="is not an export folder"):
        export_model.main([str(demo["run"]), "--format", "onnx", "--out", str(tmp_path / "mine"), "--overwrite"])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    unmasked = tmp_path / "unmasked"
    shutil.copytree(demo["run"], unmasked)
    config = json.loads((unmasked / CONFIG_FILE).read_text())
    (unmasked / CONFIG_FILE).write_text(json.dumps({**config, "mask": False, "max_length_used": 400}))
    with pytest.raises(InputError, match="--no-mask"):
        export_model.main([str(unmasked), "--format", "tflite", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))


# --- long recordings ---------------------------------------------------------------------


def test_windowed_frames_equal_per_window_extraction_away_from_the_edges(demo):
    signal, _ = extraction.load_audio(demo["long_wav"])
    whole = extraction.extract_signal(signal)
    names = extraction.feature_names()
    scale = whole.std(axis=0) + 1e-6
    pitch = np.array(["F0" in name for name in names])  # openSMILE's pitch tracker carries state across windows
    length, edge = frames_in(2.0), 3
    pitch_agree = []
    for start_s in (0.0, 3.5, 7.0, 10.0):
        start = int(round(start_s * 100))
        alone = extraction.extract_signal(signal[start * 160:start * 160 + 32000])
        assert len(alone) == length
        difference = np.abs(alone - whole[start:start + length]) / scale  # in standard deviations
        assert difference[edge:-edge, ~pitch].max() < 1e-4, start_s
        pitch_agree.append(np.mean(difference[edge:-edge, pitch].max(axis=1) < 1e-4))
    assert np.mean(pitch_agree) > 0.8  # measured: 0.96-1.0 on the demo audio, 0.97 on emodb_2s speech

    # And the windows' class probabilities stay close to those of windows extracted alone.
    run = open_run(demo["run"])
    predictor = WindowPredictor(run.load_keras_model(), run.normalization(), 32)
    timeline = timeline_of_frames(predictor, whole, run.classes, 2.0, 0.5)
    assert len(timeline.start_s) == (len(whole) - length) // 50 + 1
    for k in (0, 7, len(timeline.start_s) - 1):
        start = int(round(timeline.start_s[k] * 100))
        alone = extraction.extract_signal(signal[start * 160:start * 160 + 32000])
        probabilities, _ = predictor(predictor.normalize(alone)[None])
        assert np.abs(probabilities[0] - timeline.probabilities[k]).max() < 0.005  # measured: at most 4e-4


def test_predict_window_writes_a_timeline_csv_and_plot(demo, tmp_path, capsys):
    out = tmp_path / "timelines"
    args = [str(demo["run"]), str(demo["long_wav"]), "--window", "2.0", "--hop", "0.5", "--smooth", "3",
            "--out", str(out)]
    assert predict.main(args) == 0
    rows = list(__import__("csv").DictReader(open(out / "long_timeline.csv")))
    starts = np.array([float(r["start_s"]) for r in rows])
    assert len(rows) == (1198 - 198) // 50 + 1  # 12 s: 1198 frames
    assert np.allclose(np.diff(starts), 0.5) and float(rows[0]["end_s"]) == 2.0
    for row in rows:
        p = np.array([float(row[f"p_{c}"]) for c in "AENPR"])
        assert p.sum() == pytest.approx(1, abs=1e-3) and row["predicted"] == "AENPR"[p.argmax()]
        assert float(row["start_s"]) <= float(row["attention_peak_s"]) <= float(row["end_s"])
    assert (out / "long_timeline.png").stat().st_size > 10_000
    with pytest.raises(InputError, match="already exists"):
        predict.main(args)
    with pytest.raises(InputError, match="--smooth must be an odd number"):
        predict.main(args[:-2] + ["--smooth", "2"])


def test_smoothing_is_a_median_over_windows():
    from serattn.deploy.timeline import smooth_probabilities

    probabilities = np.array([[0.9, 0.1]] * 3 + [[0.1, 0.9]] + [[0.9, 0.1]] * 2 + [[0.2, 0.8]] * 3)
    smoothed = smooth_probabilities(probabilities, 3)
    assert smoothed[3].argmax() == 0  # a one-window flip is voted down
    assert (smoothed.argmax(1)[-3:] == 1).all()  # a three-window change stays
    assert np.allclose(smoothed.sum(1), 1) and smooth_probabilities(probabilities, 1) is probabilities


def test_stream_windows_cut_bytes_at_any_boundary():
    samples = (np.arange(16000 * 3) % 200 - 100).astype("<i2")
    windows = StreamWindows(1.0, 0.25)
    data, got = samples.tobytes(), []
    for cut in range(0, len(data), 777):  # odd chunk sizes split samples in two
        got += windows.push(data[cut:cut + 777])
    assert [start for start, _ in got] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    for start, window in got:
        first = int(start * 16000)
        assert np.array_equal(window, samples[first:first + 16000] / 32768.0)


def test_stream_from_a_pipe_reports_every_window_in_order_in_real_time(demo):
    pcm = (sf.read(demo["long_wav"], dtype="int16")[0][:4 * 16000]).astype("<i2").tobytes()  # 4 s
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    process = subprocess.Popen([sys.executable, str(ROOT / "predict.py"), str(demo["run"]), "--stream", "-"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    try:
        assert process.stderr.readline().startswith(b"reading 16 kHz")  # warmed up
        sent = {}  # sample count -> time it was written

        def feed():
            chunk = 1600 * 2  # 100 ms
            for offset in range(0, len(pcm), chunk):
                process.stdin.write(pcm[offset:offset + chunk])
                process.stdin.flush()
                sent[(offset + chunk) // 2] = time.monotonic()
                time.sleep(0.1)
            process.stdin.close()

        writer = threading.Thread(target=feed)
        writer.start()
        lines = []
        for line in process.stdout:
            lines.append((time.monotonic(), line.decode().split("\t")))
        writer.join()
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert [float(fields[0]) for _, fields in lines] == [0.0, 0.5, 1.0, 1.5, 2.0]
    for arrived, (start, end, label, probability) in lines:
        assert label in "AENPR" and 0 < float(probability.strip()) <= 1
        window_sent = sent[int(float(end) * 16000)]
        assert 0 < arrived - window_sent < 1.5  # printed once the window is complete, not at the end
