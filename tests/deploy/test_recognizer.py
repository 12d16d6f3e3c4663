"""serattn.deploy.recognizer: one object from a run folder to classes, attention and representations."""

import json
import shutil

import numpy as np
import pytest

import predict
from serattn.deploy.recognizer import Recognizer
from serattn.deploy.timeline import StreamWindows, WindowPredictor, timeline_of_frames
from serattn.errors import InputError
from serattn.features import extraction
from serattn.runs.folder import CONFIG_FILE
from serattn.runs.reading import open_run


@pytest.fixture(scope="module")
def demo(demo_corpus, demo_run):
    """A tiny demo corpus and a 1-epoch run on its IS09 features (the session's, see tests/conftest.py)."""
    return {"run": demo_run, "wavs": demo_corpus["wavs"][:5]}


def test_files_get_the_classes_attention_and_representations_predict_prints(demo, tmp_path):
    recognizer = Recognizer.from_run(demo["run"])
    predictions = recognizer.predict_files(demo["wavs"])
    assert predictions.ids == [str(p) for p in demo["wavs"]]
    assert predictions.probabilities.shape == (5, len(recognizer.classes))
    np.testing.assert_allclose(predictions.probabilities.sum(1), 1, atol=1e-5)
    assert list(predictions.labels) == [recognizer.classes[k] for k in predictions.probabilities.argmax(1)]
    frames = [recognizer.extract(extraction.load_audio(p)[0]) for p in demo["wavs"]]
    assert [len(a) for a in predictions.attention] == [len(f) for f in frames]
    assert predictions.representations.shape[0] == 5 and np.all(np.isfinite(predictions.representations))
    assert predict.main([str(demo["run"]), *map(str, demo["wavs"]), "--csv", str(tmp_path / "p.csv")]) == 0
    rows = [line.split(",") for line in (tmp_path / "p.csv").read_text().splitlines()[1:]]
    assert [row[1] for row in rows] == list(predictions.labels)
    np.testing.assert_allclose([[float(v) for v in row[2:]] for row in rows], predictions.probabilities, atol=6e-5)


def test_the_frame_rate_comes_from_the_run(demo, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo["run"], run)
    config = json.loads((run / CONFIG_FILE).read_text())
    assert Recognizer.from_run(run).frame_rate == config["feature_meta"]["frame_rate"] == 100
    config["feature_meta"]["frame_rate"] = 50
    (run / CONFIG_FILE).write_text(json.dumps(config))
    assert Recognizer.from_run(open_run(run), audio=False).frame_rate == 50


def test_windows_and_streams_match_the_window_predictor(demo):
    recognizer = Recognizer.from_run(demo["run"])
    signal = np.concatenate([extraction.load_audio(p)[0] for p in demo["wavs"]])[:4 * 16000]
    frames = recognizer.extract(signal)
    run = open_run(demo["run"])
    predictor = WindowPredictor(run.load_keras_model(), run.normalization(), len(recognizer.feature_names))
    expected = timeline_of_frames(predictor, frames, run.classes, 1.0, 0.5)
    got = recognizer.timeline(frames, 1.0, 0.5)
    np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=1e-6)
    np.testing.assert_array_equal(got.start_s, expected.start_s)

    pcm = (np.clip(signal, -1, 1 - 2 ** -15) * 32768).astype("<i2").tobytes()
    lines = list(recognizer.stream([pcm[:5000], pcm[5000:]], 1.0, 0.5))
    windows = StreamWindows(1.0, 0.5).push(pcm)
    assert [start for start, _, _ in lines] == [start for start, _ in windows]
    for (_, label, probability), (_, samples) in zip(lines, windows):
        p, _ = predictor(predictor.normalize(extraction.extract_signal(samples))[None])
        assert label == run.classes[int(p[0].argmax())] and abs(probability - p[0].max()) < 1e-5
    with pytest.raises(InputError, match="ended with 0.50 s of audio, less than one --window of 1 s"):
        list(recognizer.stream([pcm[:16000]], 1.0, 0.5))
