"""search.py: Optuna trials over speaker folds, storages, workers, resume, and no peeking at test speakers."""

import csv
import glob
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import compare_runs
import search
import train_attention_lstm
import train_static
from serattn.config import DataConfig
from serattn.errors import InputError, run_main
from serattn.features.feature_set import save_feature_set
from serattn.testing import make_feature_set
from serattn.training.protocols import cross_validation_sets

ROOT = Path(__file__).resolve().parents[2]
STATIC_SPACE = ROOT / "configs" / "search_static_logreg.yaml"
STATIC = ["--model", "logreg", "--val-speakers", "0", "--quiet", "--inner-cv", "kfold-speakers", "3"]
TINY_LSTM = ["--units", "4", "--attention-units", "2", "--epochs", "2", "--batch-size", "16", "--val-speakers", "0",
             "--quiet", "--inner-cv", "kfold-speakers", "2"]


def functionals(seed=3):
    """8 speakers, 3 classes, one row per utterance, no split."""
    return make_feature_set(n=96, dim=6, classes=("A", "B", "C"), speakers=8, min_length=1, max_length=1,
                            signal=2.0, seed=seed, split=False)


def learning_rate_search(tmp_path):
    """Frames of 4 speakers, a space of the attention LSTM's learning rate only, and the search's --out."""
    data = tmp_path / "frames.npz"
    save_feature_set(make_feature_set(n=48, speakers=4, split=False), data)
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"trainer": "attention-lstm",
                                 "params": {"learning-rate": {"low": 0.001, "high": 0.01, "log": True}}}))
    return data, space, tmp_path / "search"


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def functionals_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("search-data") / "functionals.npz"
    save_feature_set(functionals(), path)
    return path


@pytest.fixture(scope="module")
def static_search(functionals_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "logreg"
    assert search.main(["--space", str(STATIC_SPACE), "--data", str(functionals_file), *STATIC, "--trials", "5",
                        "--out", str(out)]) == 0
    return out


def test_every_trial_is_a_cross_validation_run_and_the_best_config_trains_as_is(static_search, functionals_file,
                                                                                  tmp_path):
    rows = read_rows(static_search / "search" / "trials.csv")
    assert [r["state"] for r in rows] == ["complete"] * 5
    record = json.loads((static_search / "search.json").read_text())
    assert record["status"] == "finished" and record["best_ua"] == max(float(r["ua"]) for r in rows)
    for row in rows:  # pooled UA over 3 inner speaker folds, each a normal run folder
        metrics = json.loads(Path(row["run"], "metrics.json").read_text())
        assert float(row["ua"]) == metrics["ua"] and len(metrics["folds"]) == 3
        assert [float(row[f"ua_fold_{k:02d}"]) for k in range(3)] == [f["ua"] for f in metrics["folds"]]
    assert compare_runs.main([r["run"] for r in rows] + ["--by", "norm", "--out", str(tmp_path / "table.md")]) == 0
    for name in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert (static_search / "search" / "figures" / f"{name}.png").stat().st_size > 1000
    # best/config.json trains as is; with the inner CV as --cv it repeats the best trial exactly
    best = static_search / "search" / "best" / "config.json"
    out = tmp_path / "again"
    assert train_static.main(["--config", str(best), "--cv", "kfold-speakers", "3", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["ua"] == record["best_ua"]


def test_a_rerun_continues_the_study_and_another_search_is_refused(static_search, functionals_file):
    args = ["--space", str(STATIC_SPACE), "--data", str(functionals_file), *STATIC, "--out", str(static_search)]
    assert search.main([*args, "--trials", "6"]) == 0
    rows = read_rows(static_search / "search" / "trials.csv")
    complete = {f"trial-{int(r['trial']):04d}" for r in rows if r["state"] == "complete"}
    assert len(rows) == 6 and {p.name for p in (static_search / "search").glob("trial-*")} == complete
    with pytest.raises(InputError, match="holds another search \\(trainer_flags differ\\)"):
        search.main([*args, "--trials", "6", "--norm", "speaker"])


def nested(data_file, out):
    return search.main(["--space", str(STATIC_SPACE), "--data", str(data_file), "--cv", "kfold-speakers", "2",
                        "--nested", *STATIC, "--trials", "3", "--out", str(out)])


def test_outer_test_speakers_never_reach_the_objective(tmp_path):
    """Two corpora that differ only in the test speakers of outer fold 0 (labels scrambled, features moved):
    if those speakers reached the objective, fold 0's trials would differ; they are identical."""
    plain = functionals()
    (train, test), _ = cross_validation_sets(plain, DataConfig(cv=("kfold-speakers", 2)), 1)
    leaked = np.isin(plain.speakers, np.unique(test.speakers))
    features, labels = plain.features.copy(), plain.labels.copy()
    features[leaked] = 5 - 3 * features[leaked]
    labels[leaked] = np.roll(labels[leaked], 1)
    changed = make_feature_set(n=96, dim=6, classes=("A", "B", "C"), speakers=8, min_length=1, max_length=1,
                               split=False)
    changed = type(changed).from_sequences(list(features[:, None, :]), ids=plain.ids, labels=labels,
                                           speakers=plain.speakers, feature_names=plain.feature_names,
                                           meta=plain.meta)
    outs = []
    for name, data in (("plain", plain), ("changed", changed)):
        save_feature_set(data, tmp_path / f"{name}.npz")
        assert nested(tmp_path / f"{name}.npz", tmp_path / name) == 0
        outs.append(tmp_path / name)
    trials = [read_rows(out / "search-outer-00" / "trials.csv") for out in outs]
    keys = ["ua", "ua_fold_00", "ua_fold_01", "ua_fold_02", "grid.C", "norm"]
    assert [[r[k] for k in keys] for r in trials[0]] == [[r[k] for k in keys] for r in trials[1]]
    scores = [json.loads((out / "search.json").read_text())["nested"][0] for out in outs]
    assert scores[0]["best_params"] == scores[1]["best_params"] and scores[0]["test_ua"] != scores[1]["test_ua"]
    # every utterance any trial of fold 0 read (fit, validation, inner test) is an outer training speaker's
    seen = {r["speaker"] for path in glob.glob(str(outs[0] / "search-outer-00" / "trial-*" / "fold-*"))
            for r in read_rows(Path(path, "predictions.csv"))}
    assert seen == set(train.speakers) and not seen & set(test.speakers)
    # the nested estimate is a pooled cross-validation run folder, its folds on the outer test speakers
    metrics = json.loads((outs[0] / "nested" / "metrics.json").read_text())
    assert metrics["n_test"] == 96 and metrics["ua"] == json.loads((outs[0] / "search.json").read_text())["outer_ua"]
    assert compare_runs.main([str(outs[0] / "nested")]) == 0


def test_two_worker_processes_share_a_journal_study(functionals_file, tmp_path):
    out, journal = tmp_path / "journal", tmp_path / "study.log"
    assert search.main(["--space", str(STATIC_SPACE), "--data", str(functionals_file), *STATIC, "--trials", "6",
                        "--jobs", "2", "--storage", f"journal:{journal}", "--out", str(out)]) == 0
    rows = read_rows(out / "search" / "trials.csv")
    finished = [r for r in rows if r["state"] in ("complete", "pruned")]
    assert 6 <= len(finished) <= 7  # each worker may finish the trial it had started when the 6th finished
    workers = json.loads((out / "search.json").read_text())["worker_pids"]
    assert len(set(workers)) == 2 and os.getpid() not in workers  # two processes of their own joined the study
    assert {int(r["pid"]) for r in rows} <= set(workers)
    assert journal.stat().st_size > 0


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server: $SERATTN_TEST_POSTGRES (CI starts one, see .ci/run), else a private temporary one
    started from the installed server binaries; skipped only when there are none."""
    if os.environ.get("SERATTN_TEST_POSTGRES"):
        yield os.environ["SERATTN_TEST_POSTGRES"]
        return
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    if not binaries[-1]:
        pytest.skip("no PostgreSQL server binaries (initdb) installed")
    bin_dir = Path(binaries[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="serattn-pg-"))
    prefix = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(folder, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "serattn"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
                    f"-k {folder} -c listen_addresses='' -p 5499", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://serattn@/postgres?host={folder}&port=5499"
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_machines_join_one_postgresql_study(postgres_url, functionals_file, tmp_path):
    """Two commands, each with its own --out (as on two machines), run one study on a real PostgreSQL server."""
    study = f"test-{os.getpid()}-{time.time_ns()}"
    commands = [[sys.executable, "search.py", "--space", str(STATIC_SPACE), "--data", str(functionals_file), *STATIC,
                 "--trials", "6", "--storage", postgres_url, "--study", study, "--out", str(tmp_path / f"machine{k}")]
                for k in range(2)]
    workers = [subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True) for command in commands]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stderr.read()
    import optuna

    folders = [tmp_path / f"machine{k}" / study for k in range(2)]
    assert all((folder / "trials.csv").is_file() for folder in folders)
    trials = optuna.load_study(study_name=study, storage=postgres_url).trials
    complete = {str(t.number) for t in trials if t.state.name == "COMPLETE"}
    assert 6 <= sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) <= 7
    assert len(complete) >= 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    trial_folders = [{p.name for p in folder.glob("trial-*")} for folder in folders]
    assert not trial_folders[0] & trial_folders[1]  # each machine wrote the trials it ran, and only those
    assert trial_folders[0] | trial_folders[1] == {f"trial-{int(t):04d}" for t in complete}


def test_a_killed_worker_s_trial_is_marked_failed_and_rerun(tmp_path):
    """SIGKILL mid-trial (attention LSTM, 2 epochs); the rerun fails the silent trial, retries its values, and
    finishes the study; best/config.json trains with train_attention_lstm.py --config."""
    data, space, out = learning_rate_search(tmp_path)
    args = ["--space", str(space), "--data", str(data), *TINY_LSTM, "--trials", "2", "--heartbeat", "1", "--out",
            str(out)]
    worker = subprocess.Popen([sys.executable, "search.py", *args], cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not list(out.glob("search/trial-0000/fold-00/config.json")):  # training of the first fold started
            assert worker.poll() is None and time.time() < deadline
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    time.sleep(2.5)  # the killed trial's heartbeat goes stale (twice --heartbeat)
    assert search.main(args) == 0
    rows = read_rows(out / "search" / "trials.csv")
    assert [(r["trial"], r["state"]) for r in rows][0] == ("0", "fail")
    retry = [r for r in rows if r["retry_of"] == "0"]
    assert retry and retry[0]["state"] == "complete" and retry[0]["learning_rate"] == rows[0]["learning_rate"]
    new = [r for r in rows[1:] if r is not retry[0]]  # after the one retry, a new point, not a third copy
    assert new and all(r["learning_rate"] != rows[0]["learning_rate"] for r in new)
    assert sum(r["state"] == "complete" for r in rows) == 2 and not (out / "search" / "trial-0000").exists()
    with sqlite3.connect(out / "study.db") as db:  # the default storage lives in --out
        assert db.execute("select count(*) from trials").fetchone()[0] == len(rows)
    again = tmp_path / "best"  # with the inner folds as --cv: the best trial again
    assert train_attention_lstm.main(["--config", str(out / "search" / "best" / "config.json"), "--cv",
                                      "kfold-speakers", "2", "--out", str(again)]) == 0
    best = json.loads((out / "search.json").read_text())
    assert json.loads((again / "metrics.json").read_text())["ua"] == best["best_ua"]


@pytest.mark.parametrize("space, message", [
    ("trainer: static\nparams: {grid.C: {low: 1, high: 0.1}}\n", "expected numbers low < high"),
    ("trainer: static\nparams: {epochs: {low: 1, high: 3}}\n", "'epochs' is not a searchable flag of trainer static"),
    ("trainer: lstm\nparams: {units: {low: 1, high: 3}}\n", "unknown trainer 'lstm'; expected one of"),
    ("trainer: static\nparams: {norm: {choices: []}}\n", "choices must be a non-empty list"),
    ("trainer: static\nparams: [\n", "is not valid YAML"),
    ("trainer: static\nparams: {data: {choices: [a.npz]}}\n", "'data' is not a searchable flag"),
])
def test_bad_space_files_get_one_line(space, message, functionals_file, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(space)
    with pytest.raises(InputError, match=message):
        search.main(["--space", str(path), "--data", str(functionals_file), *STATIC, "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_unreachable_storage_is_one_line_exit_2(functionals_file, tmp_path, capsys):
    args = ["--space", str(STATIC_SPACE), "--data", str(functionals_file), *STATIC, "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_status:
        run_main(search.main, [*args, "--storage", "postgresql://nobody:secret@127.0.0.1:1/none"])
    error = capsys.readouterr().err
    assert exit_status.value.code == 2 and error.count("\n") == 1 and "cannot open study storage" in error
    assert "secret" not in error and not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="is not an SQLAlchemy URL"):
        search.main([*args, "--storage", "not a url"])
    with pytest.raises(InputError, match="--cv is the outer protocol of --nested"):
        search.main([*args, "--cv", "loso"])
