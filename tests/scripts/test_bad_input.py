"""Bad input through the real command-line entry points: one line, exit 2, nothing left behind.

Each row names a script, builds its arguments in a fresh folder, and says what the one
error line must contain. Scripts run in-process through ``run_main`` (as their
``__main__`` does), so a row takes milliseconds unless it reaches training.
"""

import errno
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

import attention_visualize
import compare_runs
import extract_features
import predict
import train_attention_lstm
import tsne_plot
from serattn.features.feature_set import save_feature_set
from serattn.errors import run_main
from serattn.testing import add_copies, make_feature_set
from tests.fabricate import write_manifest, write_wav

SCRIPTS = {
    "train": train_attention_lstm.main,
    "extract": extract_features.main,
    "predict": predict.main,
    "visualize": attention_visualize.main,
    "tsne": tsne_plot.main,
    "compare": compare_runs.main,
}
TINY = ["--units", "4", "--attention-units", "2", "--epochs", "1", "--quiet"]


def features(tmp, name="fs.npz", **changes):
    """A small saved feature set, with some arrays replaced."""
    feature_set = make_feature_set(n=30)
    for key, value in changes.items():
        setattr(feature_set, key, value(feature_set) if callable(value) else value)
    path = tmp / name
    np.savez(path, features=feature_set.features, lengths=feature_set.lengths, ids=feature_set.ids,
             labels=feature_set.labels, speakers=feature_set.speakers, split=feature_set.split,
             feature_names=feature_set.feature_names)
    return path


def with_nan(fs):
    frames = fs.features.copy()
    frames[5, 2] = np.nan
    return frames


def one_speaker_class(tmp):
    """Class P is spoken only by speaker s00."""
    feature_set = make_feature_set(n=40)
    feature_set.labels[(feature_set.labels == "P") & (feature_set.speakers != "s00")] = "N"
    feature_set.labels[np.flatnonzero(feature_set.speakers == "s00")[0]] = "P"
    save_feature_set(feature_set, tmp / "fs.npz")
    return tmp / "fs.npz"


def orphan_copy(tmp):
    """A speed-perturbed copy whose source utterance is not in the file."""
    feature_set = add_copies(make_feature_set(n=30), factors=(0.9,))
    feature_set.source_ids[30] = "u9999"
    np.savez(tmp / "fs.npz", features=feature_set.features, lengths=feature_set.lengths, ids=feature_set.ids,
             labels=feature_set.labels, speakers=feature_set.speakers, source_ids=feature_set.source_ids)
    return tmp / "fs.npz"


def single_speaker_train(tmp):
    feature_set = make_feature_set(n=30)
    feature_set.speakers[feature_set.split == "train"] = "only"
    save_feature_set(feature_set, tmp / "fs.npz")
    return tmp / "fs.npz"


def unseen_test_label(tmp):
    feature_set = make_feature_set(n=30)
    feature_set.labels[np.flatnonzero(feature_set.split == "test")[0]] = "X"
    save_feature_set(feature_set, tmp / "fs.npz")
    return tmp / "fs.npz"


def fake_run(tmp, *, incomplete=False, run_format=1, drop=()):
    """A run folder as the figure scripts and predict.py see it, without training."""
    from tests.fake_runs import make_fake_run
    run = make_fake_run(tmp, incomplete=incomplete)
    config = json.loads((run / "config.json").read_text())
    config["run_format"] = run_format
    (run / "config.json").write_text(json.dumps(config))
    for name in drop:
        (run / name).unlink()
    return run


def bad_wavs_manifest(tmp):
    (tmp / "wav").mkdir()
    (tmp / "wav" / "empty.wav").write_bytes(b"")
    (tmp / "wav" / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    sf.write(tmp / "wav" / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(tmp / "wav" / "short.wav", np.ones(100, np.float32) * 0.1, 16000)
    write_manifest(tmp / "manifest.csv", [
        {"path": f"wav/{name}.wav", "label": "A", "speaker": "s1"}
        for name in ("empty", "corrupt", "silent", "short", "missing")], columns=("path", "label", "speaker"))
    return tmp / "manifest.csv"


# (case, script, argv builder (tmp -> list), fragment of the error line, path that must not exist)
CASES = [
    ("missing feature file", "train", lambda t: ["--data", str(t / "nope.npz"), "--out", str(t / "run")],
     "feature file '.*nope.npz' does not exist", "run"),
    ("empty feature file", "train", lambda t: [(t / "e.npz").write_bytes(b"") or "--data", str(t / "e.npz"),
                                               "--out", str(t / "run")], "cannot read feature file", "run"),
    ("NaN features", "train", lambda t: ["--data", str(features(t, features=with_nan)), "--out", str(t / "run")],
     "NaN or infinite feature values \\(first in utterance 'u0000'\\)", "run"),
    ("zero-length sequence", "train",
     lambda t: ["--data", str(features(t, lengths=lambda fs: np.r_[0, fs.lengths[0], fs.lengths[1:]][:30])),
                "--out", str(t / "run")], "no frames|add up to", "run"),
    ("lengths do not add up", "train",
     lambda t: ["--data", str(features(t, lengths=lambda fs: fs.lengths + 1)), "--out", str(t / "run")],
     "lengths in .* add up to", "run"),
    ("feature dimension differs", "train",
     lambda t: ["--train", str(features(t, "a.npz")), "--test",
                str(features(t, "b.npz", features=lambda fs: fs.features[:, :7],
                             feature_names=lambda fs: fs.feature_names[:7])), "--out", str(t / "run")],
     "expected 8 features per frame as in '.*a.npz', got 7 in '.*b.npz'", "run"),
    ("test label never trained", "train", lambda t: ["--data", str(unseen_test_label(t)), "--out", str(t / "run")],
     "test labels X in .* never occur in the training set", "run"),
    ("class without training examples", "train",
     lambda t: ["--data", str(one_speaker_class(t)), "--val-speakers", "s00", "--out", str(t / "run"), *TINY],
     "class\\(es\\) P have no training utterances", "run"),
    ("no validation speaker possible", "train",
     lambda t: ["--data", str(single_speaker_train(t)), "--out", str(t / "run"), *TINY],
     "has 1 speaker, so no speaker-disjoint validation set", "run"),
    ("fold without test speakers", "train",
     lambda t: ["--data", str(features(t)), "--cv", "kfold-speakers", "20", "--out", str(t / "run")],
     "needs at least 20 speakers; the data has 6", "run"),
    ("unknown activation", "train", lambda t: ["--data", "x.npz", "--activation", "sigmoid", "--out", str(t / "run")],
     "argument --activation: invalid choice: 'sigmoid'", "run"),
    ("negative size", "train", lambda t: ["--data", "x.npz", "--units", "-3", "--out", str(t / "run")],
     "--units must be at least 1, got -3", "run"),
    ("output folder exists", "train",
     lambda t: [(t / "run").mkdir() or "--data", str(features(t)), "--out", str(t / "run")],
     "output folder '.*run' already exists; choose another --out, or pass --overwrite", None),
    ("output under a file", "train",
     lambda t: [(t / "afile").write_text("") or "--data", str(features(t)), "--out", str(t / "afile" / "run"),
                *TINY], "cannot create output folder", None),
    ("resume a run that never ran", "train", lambda t: ["--resume", str(t / "nothing")],
     "config.json' not found", None),
    ("missing manifest", "extract", lambda t: ["--manifest", str(t / "m.csv"), "--out", str(t / "f.npz")],
     "m.csv", "f.npz"),
    ("unknown corpus", "extract", lambda t: ["--corpus", "emodb2", str(t), "--out", str(t / "f.npz")],
     "unknown corpus 'emodb2'; expected one of: csv, emodb, fau-aibo, ravdess", "f.npz"),
    ("corpus root of no recipe layout", "extract", lambda t: ["--corpus", "emodb", str(t), "--out", str(t / "f.npz")],
     "does not look like EmoDB: expected wav/SSTTTEV.wav files", "f.npz"),
    ("only unusable wavs", "extract",
     lambda t: ["--manifest", str(bad_wavs_manifest(t)), "--out", str(t / "f.npz"), "--jobs", "1", "--quiet"],
     "nothing extracted from '.*manifest.csv': all 5 files were skipped .*; see '.*f.skipped.csv'", "f.npz"),
    ("speed factor zero", "extract",
     lambda t: ["--manifest", str(bad_wavs_manifest(t)), "--out", str(t / "f.npz"), "--augment", "speed=0"],
     "--augment speed: expected distinct factors from 0.5 to 2 other than 1, e.g. speed=0.9,1.1; got '0'", "f.npz"),
    ("speed factor not a number", "extract",
     lambda t: ["--manifest", str(bad_wavs_manifest(t)), "--out", str(t / "f.npz"), "--augment", "speed=abc"],
     "--augment speed: expected distinct factors .* got 'abc' in 'speed=abc'", "f.npz"),
    ("unknown augmentation", "extract",
     lambda t: ["--manifest", str(bad_wavs_manifest(t)), "--out", str(t / "f.npz"), "--augment", "pitch=2"],
     "--augment: unknown augmentation 'pitch' in 'pitch=2'; expected one of: speed", "f.npz"),
    ("copy without its source", "train",
     lambda t: ["--data", str(orphan_copy(t)), "--out", str(t / "run")],
     "augmented copy 'u0000#speed0.9' in '.*fs.npz' names source 'u9999', which is not an original", "run"),
    ("run folder missing", "predict", lambda t: [str(t / "run"), str(t / "a.wav")], "does not exist", None),
    ("incomplete run", "predict", lambda t: [str(fake_run(t, incomplete=True)), str(t / "a.wav")],
     "is incomplete", None),
    ("run of a newer version", "visualize", lambda t: [str(fake_run(t, run_format=99))], "newer than this serattn", None),
    ("incomplete run", "visualize", lambda t: [str(fake_run(t, incomplete=True))], "is incomplete", None),
    ("run without attention", "visualize", lambda t: [str(fake_run(t, drop=["attention.npz"]))], "attention.npz", None),
    ("run folder missing", "tsne", lambda t: [str(t / "run")], "does not exist", None),
    ("unknown flag", "tsne", lambda t: [str(fake_run(t)), "--perplexty", "5"],
     "unrecognized arguments: --perplexty 5 \\(see --help\\)", None),
    ("flag value of the wrong type", "tsne", lambda t: [str(fake_run(t)), "--perplexity", "five"],
     "argument --perplexity: invalid float value: 'five'", None),
    ("no run folder given", "tsne", lambda t: [], "the following arguments are required: run_dir", None),
    ("run without metrics", "compare", lambda t: [str(fake_run(t, drop=["metrics.json"]))], "metrics.json", None),
]


@pytest.mark.parametrize("case, script, make_argv, message, absent", CASES, ids=[f"{c[1]}: {c[0]}" for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(case, script, make_argv, message, absent, tmp_path, capsys):
    argv = make_argv(tmp_path)
    before = {p for p in tmp_path.rglob("*")}
    with pytest.raises(SystemExit) as exit_info:
        run_main(SCRIPTS[script], argv)
    stderr = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2, stderr
    assert len(stderr) == 1 and "Traceback" not in stderr[0], stderr
    assert "error: " in stderr[0]
    import re
    assert re.search(message, stderr[0]), stderr[0]
    if absent:
        assert not (tmp_path / absent).exists()
    left = {p for p in tmp_path.rglob("*")} - before
    assert not [p for p in left if p.suffix == ".tmp" or p.name.startswith(".")], left  # no temp files


def test_unusable_wavs_are_listed_with_their_reasons(tmp_path, capsys):
    manifest = bad_wavs_manifest(tmp_path)
    with pytest.raises(SystemExit):
        run_main(extract_features.main, ["--manifest", str(manifest), "--out", str(tmp_path / "f.npz"),
                                         "--jobs", "1", "--quiet"])
    import csv
    with open(tmp_path / "f.skipped.csv", newline="") as handle:
        reasons = {row["path"]: row["reason"] for row in csv.DictReader(handle)}
    assert reasons["wav/empty.wav"].startswith("empty file")
    assert reasons["wav/corrupt.wav"].startswith("unreadable audio")
    assert reasons["wav/silent.wav"].startswith("all silence")
    assert reasons["wav/short.wav"].startswith("too short")
    assert reasons["wav/missing.wav"].startswith("file not found")


def test_disk_full_while_writing_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    write_wav(tmp_path / "a.wav", duration_s=0.5)
    write_manifest(tmp_path / "m.csv", [{"path": "a.wav", "label": "A", "speaker": "s"}],
                   columns=("path", "label", "speaker"))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "f.npz"))

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(SystemExit) as exit_info:
        run_main(extract_features.main, ["--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "f.npz"),
                                         "--jobs", "1", "--quiet", "--no-cache"])
    stderr = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1
    assert len(stderr) == 1 and "No space left on device" in stderr[0] and "f.npz" in stderr[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "m.csv"]


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        run_main(train_attention_lstm.main, ["--data", str(tmp_path / "nope.npz"), "--debug"])
    shutil.rmtree(tmp_path, ignore_errors=True)
