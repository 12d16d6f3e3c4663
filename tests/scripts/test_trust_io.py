"""Trust at scale, audio side: what extraction and predict.py read, and what they refuse to.

Rows of ``CASES`` run a script in-process through ``run_main`` (as in tests/scripts/test_safety.py)
and check one error line, exit status 2, and that nothing in the folder changed. Tests
that could hang or exhaust memory on a broken build (FIFOs, ``/dev/zero``) run in a
subprocess with a timeout and a memory limit, or under an alarm.
"""

import contextlib
import csv
import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import train_static
from serattn.errors import run_main
from tests.fabricate import write_manifest, write_wav
from tests.scripts.test_safety import MODEL, SCRIPTS, assert_refused, features, is09_run, snapshot, tiny_model_file  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


# --- what the rows start from --------------------------------------------------------------


def run(tmp):
    """A finished IS09 run folder with the tiny real model (see tests/scripts/test_safety.py)."""
    return is09_run(tmp, MODEL["file"])


def wav(tmp, name="a.wav", duration_s=0.3, **kwargs):
    return str(write_wav(tmp / name, duration_s, **kwargs))


def loud_wav(tmp, name="loud.wav"):
    """A float wav holding int16-scale samples (x * 32768): peaks far above 1."""
    signal_, rate = sf.read(write_wav(tmp / name, 0.3), dtype="float32")
    sf.write(tmp / name, signal_ * 32768, rate, subtype="FLOAT")
    return str(tmp / name)


def rows_manifest(tmp, paths, labels=None, folder="corpus"):
    """``tmp/folder/m.csv`` listing ``paths`` (label A unless given, speaker s1)."""
    labels = labels or ["A"] * len(paths)
    rows = [{"path": path, "label": label, "speaker": "s1"} for path, label in zip(paths, labels)]
    return str(write_manifest(tmp / folder / "m.csv", rows, columns=("path", "label", "speaker")))


def outside(tmp, style):
    """A manifest whose second row names a wav beside the corpus folder, not in it."""
    write_wav(tmp / "corpus" / "a.wav", 0.3)
    write_wav(tmp / "secret.wav", 0.3, seed=3, f0=200)
    return rows_manifest(tmp, ["a.wav", "../secret.wav" if style == "relative" else str(tmp / "secret.wav")])


def flac_copy(tmp):
    """wav/a.wav and wav/a.flac: the same samples in two encodings, with two labels."""
    write_wav(tmp / "corpus" / "a.wav", 0.3)
    samples, rate = sf.read(tmp / "corpus" / "a.wav", dtype="int16")
    sf.write(tmp / "corpus" / "a.flac", samples, rate, subtype="PCM_16")
    assert (tmp / "corpus" / "a.flac").read_bytes() != (tmp / "corpus" / "a.wav").read_bytes()
    return rows_manifest(tmp, ["a.wav", "a.flac"], labels=["A", "E"])


def fifo(tmp, name="pipe.wav"):
    os.mkfifo(tmp / name)
    return str(tmp / name)


def same_stems(tmp):
    return [wav(tmp, "x/u.wav"), wav(tmp, "y/u.wav", seed=2, f0=200)]


def static_run(tmp):
    out = tmp / "static"
    assert train_static.main(["--data", features(tmp), "--pool", "mean", "--grid", "C=1", "--quiet",
                              "--out", str(out)]) == 0
    return str(out)


def foreign_model(data):
    """A safe .keras file of another program: one Dense layer, no serattn inputs."""
    return MODEL["foreign"].read_bytes()


@pytest.fixture(scope="module")
def foreign_model_file(tmp_path_factory):
    import keras

    path = tmp_path_factory.mktemp("foreign") / "model.keras"
    inputs = keras.Input((32,), name="x")
    keras.Model(inputs, keras.layers.Dense(5, name="out")(inputs)).save(path)
    keras.backend.clear_session()
    return path


@contextlib.contextmanager
def deadline(seconds):
    """Raise TimeoutError in the block after ``seconds`` (SIGALRM interrupts a blocking open())."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: blocked on a FIFO?")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# (case, script, argv builder (tmp -> list), fragment of the error line)
CASES = [
    # 9. manifest paths are confined to the manifest's folder
    ("a row leads out with ../", "extract",
     lambda t: ["--manifest", outside(t, "relative"), "--out", str(t / "f.npz"), "--jobs", "1", "--no-cache"],
     "m.csv': 1 row\\(s\\) name audio outside '.*corpus' \\(first: '../secret.wav'\\); .* pass --allow-outside-root"),
    ("a row is an absolute path elsewhere", "extract",
     lambda t: ["--manifest", outside(t, "absolute"), "--out", str(t / "f.npz"), "--jobs", "1", "--no-cache"],
     "1 row\\(s\\) name audio outside '.*corpus' \\(first: '.*secret.wav'\\)"),
    # duplicates are found by their decoded samples, not their bytes
    ("a FLAC copy of a wav with another label", "extract",
     lambda t: ["--manifest", flac_copy(t), "--out", str(t / "f.npz"), "--jobs", "1", "--no-cache", "--quiet"],
     "'a.wav' \\(label A, speaker s1\\) and 'a.flac' \\(label E, speaker s1\\) are the same recording "
     "\\(identical audio content\\)"),
    # the manifest itself: say what it is
    ("--manifest names a folder", "extract", lambda t: ["--manifest", str(t), "--out", str(t / "f.npz")],
     "manifest '.*' is a folder, not a CSV file"),
    ("--manifest /dev/null", "extract", lambda t: ["--manifest", "/dev/null", "--out", str(t / "f.npz")],
     "manifest '/dev/null' is a character device, not a CSV file"),
    ("--manifest names a FIFO", "extract", lambda t: ["--manifest", fifo(t, "m.csv"), "--out", str(t / "f.npz")],
     "manifest '.*m.csv' is a FIFO \\(named pipe\\), not a CSV file"),
    ("--max-file-mb not positive", "extract",
     lambda t: ["--manifest", rows_manifest(t, ["a.wav"]), "--out", str(t / "f.npz"), "--max-file-mb", "0"],
     "--max-file-mb must be a positive number of megabytes, got 0"),
    # 3. predict.py replaces nothing silently
    ("--csv names an existing file", "predict",
     lambda t: [run(t), wav(t), "--csv", str((t / "p.csv").write_text("mine") and t / "p.csv")],
     "--csv '.*p.csv' already exists; choose another file, or pass --overwrite"),
    ("--csv names a folder", "predict", lambda t: [run(t), wav(t), "--csv", str(t)], "--csv '.*' is a folder"),
    ("two inputs of one stem plotted to one file", "predict",
     lambda t: [run(t), *same_stems(t), "--attention-plot", str(t / "plots")],
     "'.*x/u.wav' and '.*y/u.wav' would both be plotted to '.*plots/u_attention.png'"),
    ("an attention plot exists", "predict",
     lambda t: [run(t), wav(t), "--attention-plot",
                str((t / "plots").mkdir() or (t / "plots" / "a_attention.png").write_text("x") and t / "plots")],
     "'.*plots/a_attention.png' already exists; choose another --attention-plot folder, or pass --overwrite"),
    # 5. float audio outside [-1, 1] would wrap around in openSMILE's int16 cast
    ("float samples at int16 scale", "predict", lambda t: [run(t), loud_wav(t)],
     "'.*loud.wav' has samples outside \\[-1, 1\\] \\(peak \\d+; .*rescale the file to \\[-1, 1\\]$"),
    ("float samples at int16 scale, windowed", "predict",
     lambda t: [run(t), loud_wav(t), "--window", "0.2", "--hop", "0.1", "--out", str(t / "tl")],
     "'.*loud.wav' has samples outside \\[-1, 1\\]"),
    # tracebacks where one line is promised
    ("--window inf", "predict", lambda t: [run(t), wav(t), "--window", "inf"],
     "--window must be from 0.025 to 600 seconds, got inf"),
    ("--hop inf", "predict", lambda t: [run(t), wav(t), "--window", "1", "--hop", "inf"],
     "--hop must be from 0.01 to 600 seconds, got inf"),
    ("--stream with a window of 1e12 s", "predict", lambda t: [run(t), "--stream", "-", "--window", "1e12"],
     "--window must be from 0.025 to 600 seconds, got 1e\\+12"),
    ("a safe but foreign model.keras", "predict",
     lambda t: [is09_run(t, MODEL["file"], model_bytes=foreign_model, record_hash=False), wav(t)],
     "'.*model.keras' is not a serattn model of this run \\(input 'features', input 'mask', "
     "layer 'attention_representation'\\)"),
    ("a static --pool mean run", "predict", lambda t: [static_run(t), wav(t)],
     "run '.*static' is a static linear-svm run \\(train_static.py\\); predict.py classifies with the "
     "model.keras of train_attention_lstm.py runs"),
    # flags that would be ignored
    ("--hop without --window", "predict", lambda t: [run(t), wav(t), "--hop", "1"],
     "--hop would be ignored here: --hop, --smooth and --out shape the timelines of --window SECONDS; drop it"),
    ("--smooth and --out without --window", "predict", lambda t: [run(t), wav(t), "--smooth", "3", "--out", "x"],
     "--smooth, --out would be ignored here: .*; drop them"),
    ("--csv with --window", "predict",
     lambda t: [run(t), wav(t), "--window", "1", "--csv", str(t / "p.csv")],
     "--csv would be ignored here: --window writes a timeline CSV and plot per file to --out"),
    ("--out with --stream", "predict", lambda t: [run(t), "--stream", "-", "--out", str(t / "tl")],
     "--out would be ignored here: --stream prints one line per window to standard output"),
    # inputs that are no audio file: say what they are
    ("input /dev/null", "predict", lambda t: [run(t), "/dev/null"],
     "'/dev/null' is a character device, not an audio file"),
    ("input is a FIFO", "predict", lambda t: [run(t), fifo(t)], "'.*pipe.wav' is a FIFO \\(named pipe\\), not an"),
]


@pytest.mark.parametrize("case, script, make_argv, message", CASES, ids=[f"{c[1]}: {c[0]}" for c in CASES])
def test_refused_with_one_line_and_nothing_changed(case, script, make_argv, message, tmp_path, capsys,
                                                   tiny_model_file, foreign_model_file):
    MODEL["file"], MODEL["foreign"] = tiny_model_file, foreign_model_file
    # a FIFO opened by mistake must fail the row, not hang the suite
    assert_refused(SCRIPTS[script], make_argv(tmp_path), message, tmp_path, capsys, guard=lambda: deadline(120))


# --- extraction skips what is no regular file, or too large, and goes on --------------------------

SKIPPING = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # /dev/zero read whole must fail fast
sys.path.insert(0, {root!r})
import extract_features
from serattn.errors import run_main
run_main(extract_features.main, sys.argv[1:])
"""


def test_non_regular_and_large_files_are_skipped_with_reasons(tmp_path):
    corpus = tmp_path / "corpus"
    write_wav(corpus / "a.wav", 0.3)
    write_wav(corpus / "big.wav", 2.0, seed=2)  # 64 KB, over the 0.05 MB limit below
    os.mkfifo(corpus / "pipe.wav")
    (corpus / "zero.wav").symlink_to("/dev/zero")
    (corpus / "folder.wav").mkdir()
    manifest = rows_manifest(tmp_path, ["pipe.wav", "zero.wav", "folder.wav", "big.wav", "a.wav"])
    process = subprocess.run([sys.executable, "-c", SKIPPING.format(root=str(ROOT)), "--manifest", manifest,
                              "--out", str(tmp_path / "f.npz"), "--jobs", "1", "--no-cache", "--max-file-mb", "0.05"],
                             capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert process.returncode == 0, process.stderr[-2000:]
    assert "extracted 1 of 5 files (0 from cache, 4 skipped)" in process.stdout
    with open(tmp_path / "f.skipped.csv", newline="") as handle:
        reasons = {row["path"]: row["reason"] for row in csv.DictReader(handle)}
    assert reasons == {
        "pipe.wav": "not a regular file: a FIFO (named pipe)",
        "zero.wav": "not a regular file: a character device",
        "folder.wav": "not a regular file: a folder",
        "big.wav": "file too large: 0.1 MB, over the --max-file-mb limit of 0.05 MB",
    }


def test_float_audio_outside_full_scale_is_skipped_not_wrapped(tmp_path):
    write_wav(tmp_path / "corpus" / "a.wav", 0.3)
    loud_wav(tmp_path / "corpus")
    manifest = rows_manifest(tmp_path, ["a.wav", "loud.wav"], labels=["A", "E"])
    assert run_main_status(["--manifest", manifest, "--out", str(tmp_path / "f.npz"), "--jobs", "1", "--no-cache",
                            "--quiet"]) == 0
    with open(tmp_path / "f.skipped.csv", newline="") as handle:
        reasons = {row["path"]: row["reason"] for row in csv.DictReader(handle)}
    assert list(reasons) == ["loud.wav"]
    assert re.fullmatch(r"samples outside \[-1, 1\] \(peak \d+; .*\): rescale the file to \[-1, 1\]",
                        reasons["loud.wav"]), reasons


def test_full_scale_samples_never_wrap_in_the_int16_cast():
    """+1.0 is in range, but 1.0 * 32768 wraps to -32768 in opensmile-python's cast unless clipped."""
    from serattn.features.extraction import extract_signal

    at_peak = (0.5 * np.sin(2 * np.pi * 150 * np.arange(8000) / 16000)).astype(np.float32)
    at_peak[::40] = 1.0  # in range, yet 1.0 * 32768 is -32768 as int16
    assert np.array_equal(extract_signal(at_peak), extract_signal(np.clip(at_peak, -1, 32767 / 32768)))


def test_outside_root_is_read_on_request(tmp_path):
    manifest = outside(tmp_path, "relative")
    assert run_main_status(["--manifest", manifest, "--out", str(tmp_path / "f.npz"), "--jobs", "1", "--no-cache",
                            "--quiet", "--allow-outside-root"]) == 0
    with np.load(tmp_path / "f.npz") as arrays:
        assert list(arrays["ids"]) == ["a.wav", "../secret.wav"]


def run_main_status(argv):
    with pytest.raises(SystemExit) as exit_info:
        run_main(SCRIPTS["extract"], argv)
    return exit_info.value.code


def test_report_gallery_reads_no_audio_outside_the_corpus(tmp_path):
    from serattn.features.corpora import confined_path
    from serattn.report.gallery import _audio_path

    write_wav(tmp_path / "corpus" / "a.wav", 0.3)
    write_wav(tmp_path / "secret.wav", 0.3)
    assert _audio_path(tmp_path / "corpus", "a.wav") == tmp_path / "corpus" / "a.wav"
    assert _audio_path(tmp_path / "corpus", "../secret.wav") is None
    assert _audio_path(tmp_path / "corpus", str(tmp_path / "secret.wav")) is None
    assert confined_path(tmp_path / "corpus", "sub/../a.wav") == tmp_path / "corpus" / "a.wav"


# --- predict.py: warnings, streams, folders ------------------------------------------------------


def test_hop_longer_than_window_warns_of_the_gaps(tmp_path, tiny_model_file, capsys):
    MODEL["file"] = tiny_model_file
    argv = [run(tmp_path), wav(tmp_path, duration_s=2.0), "--window", "0.5", "--hop", "0.8",
            "--out", str(tmp_path / "tl")]
    assert predict_main(argv) == 0
    assert ("warning: --hop 0.8 s is longer than --window 0.5 s: 0.3 s of audio after each window is never "
            "classified") in capsys.readouterr().err
    assert (tmp_path / "tl" / "a_timeline.csv").is_file()


def predict_main(argv):
    return SCRIPTS["predict"](argv)


def stdin_of(monkeypatch, data):
    """Standard input that yields ``data``, then ends (a real pipe: predict.py reads its descriptor)."""
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(os.fdopen(read, "rb")))


@pytest.mark.parametrize("seconds, said", [(0, "no audio"), (0.5, "0.50 s of audio")])
def test_stream_shorter_than_a_window_says_so(seconds, said, tmp_path, tiny_model_file, monkeypatch, capsys):
    MODEL["file"] = tiny_model_file
    samples = (0.1 * np.sin(np.arange(int(seconds * 16000)) / 5) * 32767).astype("<i2")
    stdin_of(monkeypatch, samples.tobytes())
    with pytest.raises(SystemExit) as exit_info:
        run_main(SCRIPTS["predict"], [run(tmp_path), "--stream", "-"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == ""
    assert captured.err.splitlines()[-1].endswith(
        f"error: --stream: standard input ended with {said}, less than one --window of 2 s; "
        f"nothing was classified (give more audio or a shorter --window)"), captured.err


def test_a_fifo_in_an_input_folder_is_passed_over(tmp_path, tiny_model_file, capsys):
    MODEL["file"] = tiny_model_file
    run_dir = run(tmp_path)
    wav(tmp_path / "in")
    fifo(tmp_path / "in", "pipe.wav")
    with deadline(60):  # a build that opens the FIFO blocks: fail, never hang
        assert predict_main([run_dir, str(tmp_path / "in")]) == 0
    captured = capsys.readouterr()
    assert "a.wav" in captured.out and "pipe.wav" not in captured.out + captured.err  # never opened
