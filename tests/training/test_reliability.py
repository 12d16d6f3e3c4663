"""Interrupted runs resume to the same result; the same command repeats exactly."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--units", "12", "--attention-units", "6", "--epochs", "8", "--patience", "3",
         "--batch-size", "8", "--quiet", "--seed", "5"]


def train(*args, **kwargs):
    return subprocess.Popen([sys.executable, str(ROOT / "train_attention_lstm.py"), *args, *FLAGS],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def finish(process):
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    return stdout


@pytest.fixture(scope="module")
def reference_runs(feature_file, tmp_path_factory):
    """The same command run twice, uninterrupted, in separate processes."""
    folder = tmp_path_factory.mktemp("repeat")
    runs = [train("--data", str(feature_file), "--out", str(folder / f"run{i}")) for i in (1, 2)]
    for process in runs:
        finish(process)
    return folder / "run1", folder / "run2"


def test_same_command_gives_identical_results(reference_runs):
    first, second = reference_runs
    for name in ("metrics.json", "predictions.csv", "history.csv", "normalization.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_killed_run_resumes_to_the_uninterrupted_result(reference_runs, feature_file, tmp_path):
    out = tmp_path / "killed"
    process = train("--data", str(feature_file), "--out", str(out))
    latest = out / "checkpoint" / "latest"
    deadline = time.time() + 240
    while not (latest.is_file() and latest.read_text() >= "epoch-0003"):
        assert process.poll() is None, "training ended before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (out / "INCOMPLETE").exists() and not (out / "metrics.json").exists()

    resumed = train("--resume", str(out))
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert "resumed after epoch" in stderr
    reference = reference_runs[0]
    assert json.loads((out / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    assert (out / "predictions.csv").read_bytes() == (reference / "predictions.csv").read_bytes()
    assert (out / "history.csv").read_text() == (reference / "history.csv").read_text()
    assert not (out / "INCOMPLETE").exists() and not (out / "checkpoint").exists()


def test_finished_run_is_not_resumed_and_config_reruns(reference_runs, tmp_path):
    finished = reference_runs[0]
    result = subprocess.run([sys.executable, str(ROOT / "train_attention_lstm.py"), "--resume", str(finished)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "nothing to resume" in result.stderr

    rerun = tmp_path / "rerun"
    result = subprocess.run([sys.executable, str(ROOT / "train_attention_lstm.py"), "--config",
                             str(finished / "config.json"), "--out", str(rerun), "--quiet"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (rerun / "metrics.json").read_bytes() == (finished / "metrics.json").read_bytes()
    config = json.loads((rerun / "config.json").read_text())
    assert config["seed"] == 5 and config["units"] == 12
