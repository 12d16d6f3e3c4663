"""search.py at scale (issue 24): new points from every worker and rerun, workers that end with their
parent, a study folder confined to --out, and one line for each bad input.

The rows of ``CASES`` follow tests/scripts/test_safety.py: search.py runs in-process through
``run_main`` and must end with one error line, exit status 2, and every file as it was.
The workers are real processes: two commands on one SQLite study, and a ``--jobs 2``
parent killed with SIGKILL.
"""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import search
from serattn.features.feature_set import save_feature_set
from serattn.testing import make_feature_set
from tests.scripts.test_safety import assert_refused
from tests.search.test_search import learning_rate_search

ROOT = Path(__file__).resolve().parents[2]
STATIC = ["--model", "logreg", "--val-speakers", "0", "--quiet", "--inner-cv", "kfold-speakers", "3"]
TINY_LSTM = ["--units", "4", "--attention-units", "2", "--epochs", "2", "--batch-size", "16", "--val-speakers", "0",
             "--quiet", "--inner-cv", "kfold-speakers", "2"]
C_ONLY = "trainer: static\nparams:\n  grid.C: {low: 0.0001, high: 10.0, log: true}\n"


def functionals_file(tmp):
    """8 speakers, 3 classes, one row per utterance, no split."""
    path = tmp / "functionals.npz"
    save_feature_set(make_feature_set(n=96, dim=6, classes=("A", "B", "C"), speakers=8, min_length=1, max_length=1,
                                      signal=2.0, seed=3, split=False), path)
    return str(path)


def space_file(tmp, text):
    path = tmp / "space.yaml"
    path.write_text(text)
    return str(path)


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def deep_out(tmp):
    """An --out two folders down, so that '../../x' from it is still inside the test's folder."""
    (tmp / "a" / "b").mkdir(parents=True)
    return str(tmp / "a" / "b" / "out")


# (case, argv builder (tmp -> list), fragment of the error line)
CASES = [
    ("a parameter name that is a number",
     lambda t: ["--space", space_file(t, "trainer: static\nparams: {1: {low: 1, high: 3}}\n"),
                "--data", functionals_file(t), *STATIC, "--out", str(t / "out")],
     "space file '.*space.yaml': parameter names are trainer flags, got 1 \\(a number\\)"),
    ("a grid parameter of another static model",
     lambda t: ["--space", space_file(t, "trainer: static\nparams: {grid.gamma: {low: 0.01, high: 1, log: true}}\n"),
                "--data", functionals_file(t), *STATIC, "--trials", "2", "--out", str(t / "out")],
     "space file '.*space.yaml': 'grid.gamma' is not a grid parameter of --model logreg; expected one of: grid.C"),
    ("--storage journal: a folder",
     lambda t: ["--space", space_file(t, C_ONLY), "--data", functionals_file(t), *STATIC,
                "--storage", f"journal:{t}", "--out", str(t / "out")],
     "--storage journal:.*: '.*' is a folder; give the journal file's path"),
    ("--study that leaves --out",
     lambda t: ["--space", space_file(t, C_ONLY), "--data", functionals_file(t), *STATIC, "--trials", "2",
                "--study", "../../x", "--out", deep_out(t)],
     "--study '../../x': expected a name, not a path"),
    ("--study that is an absolute path",
     lambda t: ["--space", space_file(t, C_ONLY), "--data", functionals_file(t), *STATIC, "--trials", "2",
                "--study", str(t / "elsewhere"), "--out", str(t / "out")],
     "--study '.*elsewhere': expected a name, not a path"),
]


@pytest.mark.parametrize("case, make_argv, message", CASES, ids=[c[0] for c in CASES])
def test_refused_with_one_line_and_nothing_changed(case, make_argv, message, tmp_path, capsys):
    assert_refused(search.main, make_argv(tmp_path), message, tmp_path, capsys)


def command(*args):
    return [sys.executable, str(ROOT / "search.py"), *map(str, args)]


def test_two_workers_on_one_sqlite_study_and_a_rerun_draw_new_points(tmp_path):
    """Two commands on one --storage (each its own --out, as on two machines): no trial repeats another's
    values; a rerun that continues the study draws new ones; search.json records the sampler seeds."""
    data, space = functionals_file(tmp_path), space_file(tmp_path, C_ONLY)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    args = ["--space", space, "--data", data, *STATIC, "--storage", storage, "--study", "shared"]
    workers = [subprocess.Popen(command(*args, "--trials", "8", "--out", tmp_path / f"worker{k}"), cwd=ROOT,
                                stderr=subprocess.PIPE, text=True) for k in range(2)]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stderr.read()
    import optuna

    first = optuna.load_study(study_name="shared", storage=storage).trials
    assert len(first) >= 8 and len({t.params["grid.C"] for t in first}) == len(first)
    assert search.main([*args, "--trials", str(len(first) + 3), "--out", str(tmp_path / "worker0")]) == 0
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert len(trials) == len(first) + 3 and len({t.params["grid.C"] for t in trials}) == len(trials)
    # reproducible: each trial's sampler seed follows from --seed and its number, and is recorded
    record = json.loads((tmp_path / "worker0" / "search.json").read_text())
    seeds = {int(n): s for n, s in record["sampler_seeds"].items()}
    assert set(seeds) == {t.number for t in trials} and len(set(seeds.values())) == len(trials)
    rows = read_rows(tmp_path / "worker0" / "shared" / "trials.csv")
    assert {int(r["trial"]): int(r["sampler_seed"]) for r in rows} == seeds
    assert record["sampler"]["seed"] == 1  # the trainer's default --seed


def test_a_single_worker_search_is_reproducible(tmp_path):
    data, space = functionals_file(tmp_path), space_file(tmp_path, C_ONLY)
    values = []
    for name in ("one", "two"):
        assert search.main(["--space", space, "--data", data, *STATIC, "--trials", "3", "--out",
                            str(tmp_path / name)]) == 0
        values.append([r["grid.C"] for r in read_rows(tmp_path / name / "search" / "trials.csv")])
    assert values[0] == values[1] and len(set(values[0])) == 3


def descendants(pid):
    """Live (not zombie) processes whose parent chain leads to ``pid``, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit():
            fields = stat.rsplit(")", 1)[1].split()
            parents[int(entry.name)] = (int(fields[1]), fields[0])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, (parent, state) in parents.items() if parent in frontier and state != "Z"}
        found |= frontier
    return found


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_when_ready(parent, ready, timeout=180):
    """SIGKILL ``parent`` once ``ready()``; assert its (2 or more) worker processes end within 5 s.

    Returns:
        The pids of the workers it had.
    """
    workers = set()
    try:
        deadline = time.time() + timeout
        while not ready():
            assert parent.poll() is None and time.time() < deadline
            time.sleep(0.2)
        workers = descendants(parent.pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert len(workers) >= 2
    deadline = time.time() + 5
    while any(alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if alive(pid)]
    return workers


def training(folder):
    """Trial folders whose first fold has started and that are not finished."""
    return [path for path in folder.glob("trial-*") if (path / "fold-00" / "config.json").is_file()
            and not (path / "metrics.json").is_file()]


def test_workers_end_with_a_killed_parent_and_their_trials_are_retried_once(tmp_path):
    """SIGKILL a --jobs 2 parent while both workers train: the workers are gone within seconds; the rerun
    retries each killed trial once with its values, and then draws a new point (not a third copy)."""
    data, space, out = learning_rate_search(tmp_path)
    args = ["--space", space, "--data", data, *TINY_LSTM, "--trials", "3", "--heartbeat", "1", "--out", out]
    parent = subprocess.Popen(command(*args, "--jobs", "2"), cwd=ROOT, stderr=subprocess.DEVNULL)
    workers = kill_when_ready(parent, lambda: len(training(out / "search")) >= 2)  # both workers in a trial
    import optuna

    finished = len(optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}").get_trials(
        states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)))
    time.sleep(2.5)  # the killed trials' heartbeats go stale (twice --heartbeat)
    args[args.index("--trials") + 1] = finished + 3  # the two retries, then a new point
    assert search.main([*map(str, args), "--jobs", "1"]) == 0
    rows = read_rows(out / "search" / "trials.csv")
    killed = [r for r in rows if r["state"] == "fail"]
    assert len(killed) == 2
    retries = []
    for row in killed:
        copies = [r for r in rows if r["retry_of"] == row["trial"]]
        assert len(copies) == 1 and copies[0]["learning_rate"] == row["learning_rate"]
        retries += copies
    rates = [r["learning_rate"] for r in rows if r["state"] != "fail"]
    assert len(rates) == len(set(rates)) == finished + 3
    assert int(rows[-1]["trial"]) > max(int(r["trial"]) for r in retries) and not rows[-1]["retry_of"]
    assert not any(alive(pid) for pid in workers)
