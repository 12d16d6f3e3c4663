"""Issue 24, run folders and their readers: nothing of the user's deleted, nothing counted twice, one line.

Each row of ``CASES`` runs a script in-process on a fresh folder, as tests/scripts/test_safety.py
does, and checks one error line, exit status 2, and that nothing there changed. The
rows below it check what is accepted: figures of classes named with ``$``, and
training and static runs that print no library noise (oneDNN's ``E0000`` line,
scikit-learn's warnings).
"""

import functools
import json
import os
import re
import shutil

import pytest

import attention_visualize
import compare_runs
import ensemble
import report
import train_attention_lstm
import tsne_plot
from tests.fake_runs import make_fake_run
from serattn.deploy import export
from serattn.errors import InputError, run_main
from serattn.runs import folder as runs
from serattn.search import report as search_report
from serattn.training import protocols
from tests.scripts.test_safety import ROOT, TINY, assert_refused, features, script

SCRIPTS = {"train": train_attention_lstm.main, "ensemble": ensemble.main, "compare": compare_runs.main,
           "report": report.main}


def trained_run(tmp, name="run", extra=(), cv=()):
    """A real finished run folder of a tiny model (seconds)."""
    out = tmp / name
    run_main_quietly(train_attention_lstm.main, ["--data", features(tmp), "--out", str(out), *TINY, *cv])
    return out


def run_main_quietly(main, argv):
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, argv)
    assert exit_info.value.code == 0


def with_notes(run, *names):
    """``run`` with files of the user's in it (a name ending in / is a folder with a file)."""
    for name in names:
        path = run / name
        if name.endswith("/"):
            path.mkdir(parents=True)
            (path / "mine.csv").write_text("x")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("mine")
    return run


def tampered(run):
    metrics = json.loads((run / runs.METRICS_FILE).read_text())
    metrics["ua"] = 0.99
    (run / runs.METRICS_FILE).write_text(json.dumps(metrics))
    return run


def members(tmp):
    return [str(make_fake_run(tmp, "a", seed=1)), str(make_fake_run(tmp, "b", seed=2))]


def byte_copy(tmp):
    a, b = members(tmp)
    shutil.copytree(a, tmp / "a_copy")
    return [a, b, str(tmp / "a_copy")]


def ensemble_of(tmp):
    """Runs a, b and an ensemble of a and b (its config names them as members)."""
    a, b = members(tmp)
    run_main_quietly(ensemble.main, [a, b, "--method", "mean", "--out", str(tmp / "ens")])
    return [str(tmp / "ens"), a]


# (case, script, argv builder (tmp -> list), fragment of the error line)
CASES = [
    # 4. --overwrite deletes only what serattn wrote
    ("--overwrite of a run holding the user's notes", "train",
     lambda t: ["--data", features(t), "--out", str(with_notes(make_fake_run(t, "r"), "NOTES.md", "mydata/")),
                "--overwrite", *TINY],
     "output folder '.*r' holds files serattn did not write \\(NOTES.md, mydata/\\); --overwrite deletes only "
     "its own files: move them, or choose another --out"),
    ("--overwrite of a cross-validation with a file in a fold", "train",
     lambda t: ["--data", features(t), "--out", str(with_notes(make_fake_run(t, "r"), "fold-00/plot.png")),
                "--overwrite", *TINY], "holds files serattn did not write \\(fold-00/plot.png\\)"),
    ("--overwrite of an ensemble holding the user's notes", "ensemble",
     lambda t: [*members(t), "--method", "mean", "--out", str(with_notes(make_fake_run(t, "e"), "NOTES.md")),
                "--overwrite"], "holds files serattn did not write \\(NOTES.md\\)"),
    ("--overwrite of a page report.py did not write", "report",
     lambda t: [str(make_fake_run(t)), "--out", str((t / "mine.html").write_text("<html>mine</html>") and
                                                       t / "mine.html"), "--overwrite"],
     "'.*mine.html' is not a page written by report.py; --overwrite replaces only those"),
    # 7. numbers shown are the numbers the predictions give
    ("metrics.json edited after the run", "compare",
     lambda t: [str(tampered(make_fake_run(t, "a"))), str(make_fake_run(t, "b", seed=2)), "--by", "seed"],
     "'.*a/metrics.json' does not match the test rows of predictions.csv \\(UA 99.0% there, [\\d.]+% from the "
     "predictions\\); the run folder was edited or damaged"),
    ("metrics.json edited after the run", "report",
     lambda t: [str(tampered(make_fake_run(t, "a"))), "--out", str(t / "r.html")],
     "'.*a/metrics.json' does not match the test rows of predictions.csv"),
    # 8. an ensemble counts each model once and writes only its own folder
    ("a byte copy of a member", "ensemble", lambda t: [*byte_copy(t), "--method", "mean", "--out", str(t / "e")],
     "'.*a' and '.*a_copy' have identical config.json and predictions.csv files \\(a copy of one run\\?\\)"),
    ("an ensemble next to one of its members", "ensemble",
     lambda t: [*ensemble_of(t), "--method", "mean", "--out", str(t / "e2")],
     "'.*ens' and '.*a' both contain the run '.*a'; an ensemble counts each run once"),
    ("--out inside a member", "ensemble", lambda t: [*(m := members(t)), "--out", f"{m[0]}/fusion"],
     "--out '.*a/fusion' is, is inside, or holds the run '.*a' to combine"),
    ("--step 0", "ensemble", lambda t: [*members(t), "--step", "0", "--out", str(t / "e")],
     "--step must divide 1 into equal parts .*got 0.0"),
    ("--step nan", "ensemble", lambda t: [*members(t), "--step", "nan", "--out", str(t / "e")],
     "--step must divide 1 into equal parts .*got nan"),
    # numbers that are no numbers: one line before any data is read
    ("--val-speakers nan", "train", lambda t: ["--data", features(t), "--val-speakers", "nan", *TINY],
     "--val-speakers: expected a fraction in \\(0, 1\\), a speaker count, or speaker ids, got 'nan'"),
    ("--val-speakers inf", "train", lambda t: ["--data", features(t), "--val-speakers", "inf", *TINY],
     "--val-speakers: expected a fraction in \\(0, 1\\), a speaker count, or speaker ids, got 'inf'"),
    ("--class-weight A=nan", "train", lambda t: ["--data", features(t), "--class-weight", "A=nan", *TINY],
     "--class-weight: expected balanced, none or CLASS=WEIGHT,... with finite, non-negative weights, got 'A=nan'"),
    ("--class-weight A=inf", "train", lambda t: ["--data", features(t), "--class-weight", "A=inf", *TINY],
     "with finite, non-negative weights, got 'A=inf'"),
    ("--learning-rate nan", "train", lambda t: ["--data", features(t), "--learning-rate", "nan", *TINY],
     "--learning-rate must be a finite number, got nan"),
    ("--input-noise nan", "train", lambda t: ["--data", features(t), "--input-noise", "nan", *TINY],
     "--input-noise must be a finite number, got nan"),
    # a scheduler that is not there: one line, and no folder left to say "already exists" next time
    ("--dask-scheduler notanaddress", "train",
     lambda t: ["--data", features(t), "--out", str(t / "r"), "--dask-scheduler", "notanaddress", *TINY],
     "--dask-scheduler: no Dask scheduler answers at 'notanaddress' \\(missing port number"),
    ("--dask-scheduler on a closed port", "train",
     lambda t: ["--data", features(t), "--out", str(t / "r"), "--dask-scheduler", "tcp://127.0.0.1:9", *TINY],
     "--dask-scheduler: no Dask scheduler answers at 'tcp://127.0.0.1:9'"),
]


def test_a_refused_scheduler_leaves_no_client_to_collect_later():
    # A failed dask Client sits in a reference cycle; collected while the next Client starts its event-loop
    # thread, its finalizer waited for that start's lock and the test run hung (the two rows below, in turn).
    import gc

    from distributed import Client

    def clients():
        return sum(isinstance(thing, Client) for thing in gc.get_objects())

    before = clients()
    gc.disable()
    try:
        with pytest.raises(InputError, match="no Dask scheduler answers at 'notanaddress'"):
            protocols.connect_to_scheduler("notanaddress", timeout=1)
        assert clients() == before
    finally:
        gc.enable()


@pytest.mark.parametrize("case, script_name, make_argv, message", CASES, ids=[f"{c[1]}: {c[0]}" for c in CASES])
def test_refused_with_one_line_and_nothing_changed(case, script_name, make_argv, message, tmp_path, capsys,
                                                  monkeypatch):
    # a closed port refuses at once, but the client retries until its timeout (10 s): 1 s takes the same path
    monkeypatch.setattr(protocols, "connect_to_scheduler", functools.partial(protocols.connect_to_scheduler, timeout=1))
    assert_refused(SCRIPTS[script_name], make_argv(tmp_path), message, tmp_path, capsys)


def test_overwrite_replaces_a_run_with_only_its_own_files(tmp_path):
    """A real run folder, with figures and a report of its own, is replaced by --overwrite."""
    run = trained_run(tmp_path)
    with_notes(run, "figures/attention_slots_test.png", "report.html", runs.TENSORBOARD_DIR + "/")
    run_main_quietly(train_attention_lstm.main, ["--data", features(tmp_path), "--out", str(run), "--overwrite",
                                                 *TINY])
    assert not (run / "report.html").exists() and not (run / runs.FIGURES_DIR).exists()


def test_export_overwrite_refuses_a_folder_with_the_users_files(tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / export.MODEL_CARD).write_text("{}")
    (out / "model.onnx").write_bytes(b"onnx")
    export.check_out(out, overwrite=True)  # an export folder of ours: may be replaced
    (out / "deploy-notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"holds files serattn did not write \(deploy-notes.txt\)"):
        export.check_out(out, overwrite=True)


def test_search_overwrite_refuses_a_folder_with_the_users_files(tmp_path):
    out = tmp_path / "search"
    for name in ("search.json", "study.db", "study/trials.csv", "study/trial-0000/config.json",
                 "nested/fold-00/metrics.json"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("{}")
    search_report.check_only_ours(out, "study")  # all of it a search's: may be replaced
    (out / "study" / "analysis.ipynb").write_text("mine")
    with pytest.raises(InputError, match=r"holds files serattn did not write \(study/analysis.ipynb\)"):
        search_report.check_only_ours(out, "study")


def test_resume_on_changed_data_names_the_feature_file(tmp_path):
    run = make_fake_run(tmp_path, incomplete=True, config={"data_files": {"data": {"path": "f.npz", "sha256": "1"}}})
    with pytest.raises(InputError) as error:
        runs.reopen_run_dir(run, {"data": {"path": "f.npz", "sha256": "2"}})
    assert str(error.value).startswith("the feature file 'f.npz' changed since run"), error.value


def test_figures_of_classes_named_with_dollar_signs(tmp_path):
    """A label such as '$\\x{$' is drawn as written, not parsed as mathtext."""
    classes = ("$\\x{$", "E", "N")
    run = make_fake_run(tmp_path, classes=classes, audio=False, counts={"train": 12, "test": 8})
    for main, argv in ((attention_visualize.main, [str(run)]), (tsne_plot.main, [str(run), "--perplexity", "5"]),
                       (report.main, [str(run), "--gallery", "0"])):
        run_main_quietly(main, argv)
    assert (run / runs.FIGURES_DIR / "tsne.png").is_file() and (run / runs.REPORT_FILE).is_file()


def test_training_and_static_runs_print_no_library_noise(tmp_path):
    """No oneDNN 'E0000' line in a training run; no scikit-learn warning in a static grid search."""
    data = features(tmp_path)
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    trained = script("train_attention_lstm.py", "--data", data, "--out", tmp_path / "r", *TINY, cwd=tmp_path,
                     env=env)
    static = script("train_static.py", "--data", data, "--out", tmp_path / "s", "--pool", "mean", "--quiet",
                    cwd=tmp_path, env=env)
    for process in (trained, static):
        _, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr
        assert not re.search(r"E0000|oneDNN|Warning", stderr), stderr


def test_tensorboard_flag_without_tensorboard_is_one_line(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else
                        real(name, *a))
    with pytest.raises(SystemExit) as exit_info:
        run_main(train_attention_lstm.main, ["--data", features(tmp_path), "--out", str(tmp_path / "r"),
                                             "--tensorboard", *TINY])
    assert exit_info.value.code == 2
    assert "--tensorboard needs the tensorboard package" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_jobs_workers_end_with_a_killed_parent(tmp_path):
    """SIGKILL a --jobs 2 cross-validation while both folds train: its workers are gone within seconds."""
    import subprocess
    import sys

    from tests.search.test_trust_search import kill_when_ready

    out = tmp_path / "cv"
    parent = subprocess.Popen([sys.executable, "train_attention_lstm.py", "--data", features(tmp_path), "--cv", "loso",
                               "--jobs", "2", "--epochs", "1000", "--patience", "1000", "--out", str(out), *TINY],
                              cwd=ROOT, stderr=subprocess.DEVNULL)
    kill_when_ready(parent, lambda: len(list(out.glob("fold-*/checkpoint"))) >= 2)  # both workers train a fold
