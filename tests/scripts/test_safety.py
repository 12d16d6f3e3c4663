"""Nothing lost, nothing leaked: overwrites, locked run folders, duplicate audio, bad samples, model files.

Each row of ``CASES`` runs a real script (in-process through ``run_main``, as its
``__main__`` does) on a fresh folder and checks one error line, exit status 2, and
that every file there before is still there, unchanged, with nothing new beside it.
The lock is tested with real processes: a second writer while the first trains,
and ``--resume`` after the first was killed with SIGKILL.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import compare_runs
import ensemble
import extract_features
import make_demo_corpus
import predict
import train_attention_lstm
import train_static
from tests.fake_runs import make_fake_run
from serattn.errors import InputError, run_main
from serattn.features.extraction import feature_names
from serattn.features.feature_set import save_feature_set
from serattn.features.normalization import Normalization
from serattn.runs.folder import CONFIG_FILE, KERAS_MODEL_FILE, LOCK_FILE, RunFolder
from serattn.runs.reading import open_run
from serattn.testing import make_feature_set
from tests.fabricate import write_manifest, write_wav

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {
    "train": train_attention_lstm.main,
    "static": train_static.main,
    "ensemble": ensemble.main,
    "extract": extract_features.main,
    "demo": make_demo_corpus.main,
    "predict": predict.main,
    "compare": compare_runs.main,
}
TINY = ["--units", "4", "--attention-units", "2", "--epochs", "1", "--quiet"]
MODEL = {}  # "file": the tiny saved model of the fixture below, for the rows of CASES


# --- what the rows start from --------------------------------------------------------------


def features(tmp):
    save_feature_set(make_feature_set(n=30), tmp / "fs.npz")
    return str(tmp / "fs.npz")


def precious_folder(tmp):
    """A folder of the user's that no --overwrite may delete."""
    (tmp / "X" / "sub").mkdir(parents=True)
    (tmp / "X" / "precious.txt").write_text("x")
    return str(tmp / "X")


def manifest(tmp, rows, copy=False):
    """wav/a.wav (and a byte-identical wav/a_copy.wav) listed as ``rows`` of (path, label, speaker)."""
    write_wav(tmp / "wav" / "a.wav", 0.3)
    if copy:
        (tmp / "wav" / "a_copy.wav").write_bytes((tmp / "wav" / "a.wav").read_bytes())
    write_wav(tmp / "wav" / "b.wav", 0.3, seed=2, f0=210)
    path = write_manifest(tmp / "m.csv", [dict(zip(("path", "label", "speaker"), row)) for row in rows],
                          columns=("path", "label", "speaker"))
    return str(path)


def nan_wav(tmp, name="nan.wav"):
    write_wav(tmp / name, 0.3)
    signal_, rate = sf.read(tmp / name, dtype="float32")
    signal_[100:110] = np.nan
    sf.write(tmp / name, signal_, rate, subtype="FLOAT")
    return str(tmp / name)


def dc_wav(tmp, name="dc.wav"):
    sf.write(tmp / name, np.full(8000, 0.25, np.float32), 16000)
    return str(tmp / name)


def demo_corpus_with(tmp, extra):
    """A demo corpus manifest plus a file make_demo_corpus.py did not write."""
    (tmp / "demo" / "wav").mkdir(parents=True)
    (tmp / "demo" / "wav" / "spk01_0000.wav").write_bytes(b"ours")
    (tmp / "demo" / "manifest.csv").write_text("path,speaker,label,split,duration_s,cue_start_s,cue_end_s\n")
    (tmp / "demo" / extra).write_text("mine")
    return str(tmp / "demo")


def foreign_manifest(tmp):
    (tmp / "demo").mkdir()
    (tmp / "demo" / "manifest.csv").write_text("path,label,speaker\nmy.wav,A,s1\n")
    return str(tmp / "demo")


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    """A saved attention LSTM for 32 IS09 features and 5 classes (a few KB)."""
    import keras

    from serattn.models.attention_lstm import build_attention_lstm

    path = tmp_path_factory.mktemp("model") / KERAS_MODEL_FILE
    build_attention_lstm(32, 5, units=4, attention_units=2).save(path)
    keras.backend.clear_session()
    return path


def is09_run(tmp, model_file, model_bytes=None, record_hash=True):
    """A finished run that predict.py accepts: IS09 frames, no normalization, a real model file."""
    run = make_fake_run(tmp, config={"feature_meta": {"feature_set": "is09", "level": "lld", "frame_rate": 100},
                                     "feature_names": feature_names("is09", "lld")})
    folder = RunFolder(run)
    folder.write_normalization(Normalization("none"))
    (run / KERAS_MODEL_FILE).write_bytes(model_file.read_bytes())
    if record_hash:
        folder.record_model_hash(KERAS_MODEL_FILE)
    if model_bytes is not None:
        (run / KERAS_MODEL_FILE).write_bytes(model_bytes(model_file.read_bytes()))
    return str(run)


def rewrite_keras_config(data, change):
    """``data`` (a .keras zip) with ``change(config text)`` applied to its config.json."""
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    files["config.json"] = change(files["config.json"].decode()).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def with_lambda(text):
    """An Identity layer turned into a Lambda: what a model with arbitrary code looks like."""
    config = json.loads(text)
    layer = next(layer for layer in config["config"]["layers"] if layer["class_name"] != "InputLayer")
    layer["class_name"], layer["module"] = "Lambda", "keras.layers"
    layer["config"]["function"] = {"class_name": "__lambda__", "config": {"code": "print('pwned')"}}
    return json.dumps(config)


def runs_to_compare(tmp, second):
    a = make_fake_run(tmp, "a", seed=1)
    b = make_fake_run(tmp, "b", seed=2, **second)
    return [str(a), str(b)]


# (case, script, argv builder (tmp -> list), fragment of the error line)
CASES = [
    # 1. --overwrite replaces only run folders
    ("--overwrite of a folder that is no run", "train",
     lambda t: ["--data", features(t), "--out", precious_folder(t), "--overwrite", *TINY],
     "output folder '.*X' is not a serattn run folder \\(no config.json with 'run_format'\\); "
     "--overwrite replaces only run folders"),
    ("--overwrite of a folder that is no run", "static",
     lambda t: ["--data", features(t), "--pool", "mean", "--grid", "C=1", "--out", precious_folder(t),
                "--overwrite", "--quiet"], "is not a serattn run folder"),
    ("--overwrite of a folder that is no run", "ensemble",
     lambda t: [str(t / "a"), str(t / "b"), "--method", "mean", "--out", precious_folder(t), "--overwrite"],
     "is not a serattn run folder"),
    ("--overwrite of a file", "train",
     lambda t: ["--data", features(t), "--out", str((t / "f").write_text("x") and t / "f"), "--overwrite", *TINY],
     "--out '.*f' is a file, not a folder"),
    ("--overwrite of a foreign file in wav/", "demo", lambda t: ["--out", demo_corpus_with(t, "wav/mine.txt"),
                                                               "--overwrite", "--utterances", "15",
                                                               "--speakers", "3"],
     "'.*mine.txt' was not written by make_demo_corpus.py"),
    ("--overwrite of a manifest of another corpus", "demo",
     lambda t: ["--out", foreign_manifest(t), "--overwrite", "--utterances", "15", "--speakers", "3"],
     "manifest.csv' is not a demo-corpus manifest; not replacing it"),
    # 6. feature files are never replaced silently
    ("existing feature file", "extract",
     lambda t: ["--manifest", manifest(t, [("wav/a.wav", "A", "s1")]), "--out", features(t), "--jobs", "1"],
     "feature file '.*fs.npz' already exists; choose another --out, or pass --overwrite"),
    ("--overwrite of a file that is no feature set", "extract",
     lambda t: ["--manifest", manifest(t, [("wav/a.wav", "A", "s1")]),
                "--out", str((t / "notes.npz").write_text("x") and t / "notes.npz"), "--overwrite"],
     "'.*notes.npz' is not a feature-set file; --overwrite replaces only feature sets"),
    ("a skipped list of someone else's", "extract",
     lambda t: ["--manifest", manifest(t, [("wav/a.wav", "A", "s1")]),
                "--out", str((t / "f.skipped.csv").write_text("mine") and t / "f.npz")],
     "'.*f.skipped.csv' was not written by extract_features.py"),
    # 3. one recording, two labels or speakers
    ("one file under two paths and labels", "extract",
     lambda t: ["--manifest", manifest(t, [("wav/a.wav", "A", "s1"), ("./wav/a.wav", "E", "s2"),
                                           ("wav/../wav/a.wav", "N", "s3")]),
                "--out", str(t / "f.npz"), "--jobs", "1", "--no-cache"],
     "'wav/a.wav' \\(label A, speaker s1\\) and './wav/a.wav' \\(label E, speaker s2\\) are the same "
     "recording \\(same file\\)"),
    ("byte-identical files with two labels", "extract",
     lambda t: ["--manifest", manifest(t, [("wav/a.wav", "A", "s1"), ("wav/b.wav", "E", "s1"),
                                           ("wav/a_copy.wav", "E", "s1")], copy=True),
                "--out", str(t / "f.npz"), "--jobs", "1", "--no-cache", "--quiet"],
     "'wav/a.wav' \\(label A, speaker s1\\) and 'wav/a_copy.wav' \\(label E, speaker s1\\) are the same "
     "recording \\(identical audio content\\)"),
    # 4. non-finite samples
    ("NaN samples", "predict", lambda t: [is09_run(t, MODEL['file']), nan_wav(t)],
     "'.*nan.wav' has non-finite samples: 10 of 4800 are NaN or infinite; repair or remove the file"),
    # 5. averaging runs scored on different things
    ("runs with other classes", "compare",
     lambda t: [*runs_to_compare(t, {"classes": ("A", "E", "N", "P")}), "--by", "activation"],
     "cannot average '.*a' and '.*b': classes A,E,N,P,R vs A,E,N,P; group them apart"),
    ("runs on other test utterances", "compare",
     lambda t: [*runs_to_compare(t, {"counts": {"train": 30, "test": 10}}), "--by", "activation"],
     "cannot average '.*a' and '.*b': different test utterances \\(100 vs 50, \\d+ in common\\)"),
    # 7. corrupt or unsafe model files
    ("truncated model.keras", "predict",
     lambda t: [is09_run(t, MODEL['file'], model_bytes=lambda b: b[:len(b) // 2], record_hash=False),
                str(write_wav(t / "a.wav", 0.3))],
     "cannot load '.*model.keras': not a complete .keras model file .*truncated or damaged"),
    ("model with a Lambda layer", "predict",
     lambda t: [is09_run(t, MODEL['file'], model_bytes=lambda b: rewrite_keras_config(b, with_lambda),
                         record_hash=False), str(write_wav(t / "a.wav", 0.3))],
     "refusing to load '.*model.keras' \\(unsafe or unknown layer 'Lambda'\\)"),
    ("model with an unknown layer", "predict",
     lambda t: [is09_run(t, MODEL['file'], record_hash=False, model_bytes=lambda b: rewrite_keras_config(
         b, lambda text: text.replace('"AttentionPooling"', '"EvilLayer"').replace(
             '"class_name": "Dense"', '"class_name": "EvilLayer"'))), str(write_wav(t / "a.wav", 0.3))],
     "refusing to load '.*model.keras' \\(unsafe or unknown layer 'EvilLayer'\\)"),
    ("model file replaced after training", "predict",
     lambda t: [is09_run(t, MODEL['file'], model_bytes=lambda b: rewrite_keras_config(b, lambda text: text)),
                str(write_wav(t / "a.wav", 0.3))],
     "refusing to load '.*model.keras': it does not match the SHA-256 recorded in config.json"),
    # smaller items
    ("--data names a folder", "train", lambda t: ["--data", str(t), "--out", str(t / "run"), *TINY],
     "feature file '.*' is a folder but not a feature store: it has no index.npz; give an .npz"),
]


def assert_refused(main, argv, message, folder, capsys, guard=contextlib.nullcontext):
    """``main(argv)`` run as its script runs it: one error line matching ``message``, exit status 2, and
    every file under ``folder`` as it was, nothing new beside it. ``guard()`` wraps the call (a deadline)."""
    capsys.readouterr()  # what building the row printed
    before = snapshot(folder)
    with guard(), pytest.raises(SystemExit) as exit_info:
        run_main(main, argv)
    stderr = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2, stderr
    assert len(stderr) == 1 and "Traceback" not in stderr[0], stderr
    assert re.search(message, stderr[0]), stderr[0]
    after = snapshot(folder)
    assert after == before, (set(after) ^ set(before)) or "a file changed"


def snapshot(folder):
    return {path: path.read_bytes() if path.is_file() else None for path in folder.rglob("*")}


@pytest.mark.parametrize("case, script, make_argv, message", CASES, ids=[f"{c[1]}: {c[0]}" for c in CASES])
def test_refused_with_one_line_and_nothing_lost(case, script, make_argv, message, tmp_path, capsys,
                                                tiny_model_file):
    MODEL["file"] = tiny_model_file  # for the rows that need a real model file
    assert_refused(SCRIPTS[script], make_argv(tmp_path), message, tmp_path, capsys)


# --- what is accepted, and what it does ---------------------------------------------------------


def test_overwrite_replaces_a_run_folder_and_unlocks_it(tmp_path, feature_file):
    run = make_fake_run(tmp_path)
    (run / "figures").mkdir()
    assert train_attention_lstm.main(["--data", str(feature_file), "--out", str(run), "--overwrite", *TINY]) == 0
    assert open_run(run).config["units"] == 4 and not (run / "figures").exists()
    assert not (run / LOCK_FILE).exists()  # released once the run is complete


def test_duplicates_dropped_and_bad_samples_skipped_with_reasons(tmp_path, capsys):
    rows = [("wav/a.wav", "A", "s1"), ("./wav/a.wav", "A", "s1"), ("wav/a_copy.wav", "A", "s1"),
            ("wav/b.wav", "E", "s2"), ("nan.wav", "E", "s2"), ("dc.wav", "N", "s2")]
    path = manifest(tmp_path, rows, copy=True)
    nan_wav(tmp_path), dc_wav(tmp_path)
    out = tmp_path / "f.npz"
    assert extract_features.main(["--manifest", path, "--out", str(out), "--jobs", "1", "--no-cache"]) == 0
    summary = capsys.readouterr().out
    assert "extracted 2 of 6 files (0 from cache, 2 skipped), 2 duplicates dropped" in summary
    import csv
    with open(tmp_path / "f.skipped.csv", newline="") as handle:
        reasons = {row["path"]: row["reason"] for row in csv.DictReader(handle)}
    assert reasons == {
        "nan.wav": "non-finite samples: 10 of 4800 are NaN or infinite",
        "dc.wav": "constant signal (DC only): every sample is 0.25, no sound to describe",
        "./wav/a.wav": "duplicate of 'wav/a.wav' (same file)",
        "wav/a_copy.wav": "duplicate of 'wav/a.wav' (identical audio content)",
    }
    # --overwrite replaces the feature set it wrote
    assert extract_features.main(["--manifest", path, "--out", str(out), "--jobs", "1", "--no-cache",
                                  "--overwrite", "--quiet"]) == 0


def test_predict_skips_a_dc_only_file_and_reads_mp3_in_a_folder(tmp_path, tiny_model_file, capsys):
    run = is09_run(tmp_path, tiny_model_file)
    (tmp_path / "in").mkdir()
    dc_wav(tmp_path / "in")
    tone = 0.3 * np.sin(2 * np.pi * 180 * np.arange(8000) / 16000) * np.linspace(0.2, 1, 8000)
    sf.write(tmp_path / "in" / "tone.mp3", tone, 16000, format="MP3")
    assert predict.main([run, str(tmp_path / "in")]) == 0
    captured = capsys.readouterr()
    assert "dc.wav: skipped: constant signal (DC only)" in captured.err
    assert "tone.mp3" in captured.out


def test_compare_groups_other_test_sets_apart_on_request(tmp_path, capsys):
    argv = [*runs_to_compare(tmp_path, {"classes": ("A", "E", "N", "P")}), "--by", "activation",
            "--separate-test-sets"]
    assert compare_runs.main(argv) == 0
    table = capsys.readouterr().out
    assert re.search(r"^1 +tanh +1 ", table, re.M) and re.search(r"^2 +tanh +1 ", table, re.M)


def test_static_model_loads_only_with_its_recorded_sha256(tmp_path, feature_file):
    out = tmp_path / "static"
    assert train_static.main(["--data", str(feature_file), "--pool", "mean", "--grid", "C=1", "--quiet",
                              "--out", str(out)]) == 0
    assert hasattr(open_run(out).load_static_model(), "predict_proba")
    with open(out / "model.joblib", "ab") as handle:
        handle.write(b"\0")  # anything else than what training wrote
    with pytest.raises(InputError, match="refusing to load .*model.joblib.*does not match the SHA-256"):
        open_run(out).load_static_model()
    config = json.loads((out / CONFIG_FILE).read_text())
    del config["model_sha256"]
    (out / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(InputError, match="records no SHA-256 for it"):
        open_run(out).load_static_model()


# --- real processes: the lock, a killed run, TensorFlow's start-up lines ------------------------


def script(name, *args, **kwargs):
    return subprocess.Popen([sys.executable, str(ROOT / name), *map(str, args)], cwd=kwargs.pop("cwd"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_second_writer_is_refused_and_a_killed_run_resumes(tmp_path):
    data, run = features(tmp_path), tmp_path / "run"
    tiny = ["--units", "4", "--attention-units", "2", "--quiet"]
    first = script("train_attention_lstm.py", "--data", data, "--out", run, "--epochs", "1000", "--patience",
                   "1000", *tiny, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not (run / "checkpoint" / "latest").is_file():  # training, an epoch done
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.2)
        for second in (["--data", data, "--out", run, "--overwrite", "--epochs", "1", *tiny],
                       ["--resume", run, *tiny]):
            stdout, stderr = script("train_attention_lstm.py", *second, cwd=tmp_path).communicate(timeout=60)
            assert stderr.strip() == (f"train_attention_lstm.py: error: run folder '{run}' is being written by "
                                      f"another process (pid {first.pid}); wait for it to finish, or choose "
                                      f"another --out"), stderr
        assert first.poll() is None  # the first writer goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    assert (run / LOCK_FILE).read_text().strip() == str(first.pid)  # stale, but no lock is held

    # Resume one more epoch than the checkpoint holds: history.csv gets rows in one line ending.
    done = json.loads((run / "checkpoint" / (run / "checkpoint" / "latest").read_text().strip()
                       / "state.json").read_text())["epochs_done"]
    resumed = script("train_attention_lstm.py", "--resume", run, "--epochs", done + 1, *tiny, cwd=tmp_path)
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    history = (run / "history.csv").read_bytes()
    assert history.count(b"\r\n") == history.count(b"\n") == done + 2  # header + every epoch, CRLF only
    assert open_run(run).metrics()["n_test"] == 10 and not (run / LOCK_FILE).exists()


def test_no_tensorflow_start_up_lines_before_a_one_line_error(tmp_path):
    data = features(tmp_path)
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    process = script("train_attention_lstm.py", "--data", data, "--val-speakers", "1.5", "--out", tmp_path / "r",
                     *TINY, cwd=tmp_path, env=env)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert stderr.splitlines() == ["train_attention_lstm.py: error: --val-speakers: expected a fraction in "
                                   "(0, 1), a speaker count, or speaker ids, got '1.5'"], stderr
