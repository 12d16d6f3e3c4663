"""Folds and seeds in parallel: local worker processes (--jobs) and a Dask cluster (--dask-scheduler)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import train_attention_lstm
import train_static
from serattn.features.feature_set import save_feature_set
from serattn.runs.folder import METRICS_FILE, PREDICTIONS_FILE
from serattn.testing import make_feature_set

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--units", "8", "--attention-units", "4", "--epochs", "2", "--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def frames_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("parallel") / "frames.npz"
    save_feature_set(make_feature_set(n=90, speakers=6, signal=3.0, seed=4), path)
    return path


def train_cli(*flags):
    """The real command line, so the script's own train_one_run is shipped to the workers."""
    result = subprocess.run([sys.executable, "train_attention_lstm.py", *map(str, flags)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def same_results(first, second, drop=()):
    for name in (METRICS_FILE, PREDICTIONS_FILE):
        a, b = (Path(folder, name).read_text() for folder in (first, second))
        if name == METRICS_FILE and drop:
            a, b = ({k: v for k, v in json.loads(text).items() if k not in drop} for text in (a, b))
        assert a == b, f"{name} of '{first}' and '{second}' differ"


@pytest.fixture(scope="module")
def one_process(frames_file, tmp_path_factory):
    """Seeds 1 and 2 of two folds, here in the test's process: the numbers that --jobs 2 and a Dask cluster
    must repeat. Its folders ``one-seed1`` and ``one-seed2`` are only read."""
    folder = tmp_path_factory.mktemp("one-process")
    assert train_attention_lstm.main([str(a) for a in ("--data", frames_file, "--cv", "kfold-speakers", "2", "--seeds",
                                                       "1,2", *TINY, "--out", folder / "one")]) == 0
    return folder


def test_two_local_jobs_give_the_numbers_of_one(frames_file, one_process, tmp_path):
    flags = ["--data", frames_file, "--cv", "kfold-speakers", "2", "--seeds", "1,2", *TINY]
    log = train_cli(*flags, "--jobs", "2", "--out", tmp_path / "two")
    for seed in (1, 2):
        same_results(one_process / f"one-seed{seed}", tmp_path / f"two-seed{seed}")
        for fold in ("fold-00", "fold-01"):
            same_results(one_process / f"one-seed{seed}" / fold, tmp_path / f"two-seed{seed}" / fold)
    finished = [line for line in log.splitlines() if ": finished (" in line]
    assert len(finished) == 4 and "finished (4 of 4 runs)" in finished[-1]


def test_static_folds_in_two_processes_match_one(tmp_path):
    path = tmp_path / "functionals.npz"
    save_feature_set(make_feature_set(n=90, dim=8, classes=("A", "N", "P"), speakers=6, min_length=1,
                                      max_length=1, signal=3.0, seed=3), path)
    flags = ["--data", str(path), "--cv", "loso", "--grid", "C=0.1,1", "--quiet"]
    assert train_static.main([*flags, "--out", str(tmp_path / "one")]) == 0
    assert train_static.main([*flags, "--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    same_results(tmp_path / "one", tmp_path / "two", drop=("seconds",))


def test_a_dask_cluster_runs_the_folds(frames_file, one_process, tmp_path):
    """One seed on the cluster: the numbers of the same seed in one process (a seed's run of --seeds is
    the run of --seed alone)."""
    distributed = pytest.importorskip("distributed")
    flags = ["--data", frames_file, "--cv", "kfold-speakers", "2", "--seed", "1", *TINY]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster:
        train_cli(*flags, "--dask-scheduler", cluster.scheduler_address, "--out", tmp_path / "cluster")
    same_results(one_process / "one-seed1", tmp_path / "cluster")
    for fold in ("fold-00", "fold-01"):
        same_results(one_process / "one-seed1" / fold, tmp_path / "cluster" / fold)


def test_parallel_flags_refuse_what_they_cannot_do(frames_file, tmp_path):
    result = subprocess.run([sys.executable, "train_attention_lstm.py", "--data", str(frames_file), "--jobs", "2",
                             "--strategy", "mirrored", "--out", str(tmp_path / "run")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--jobs and --dask-scheduler run whole folds" in result.stderr
    assert not (tmp_path / "run").exists()
