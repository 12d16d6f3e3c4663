import numpy as np
import pytest

import extract_features as script
from serattn.features.feature_set import load_feature_set
from serattn.features.demo_corpus import make_demo_corpus
from serattn.errors import InputError, run_main
from tests.fabricate import fabricate_emodb, read_csv


@pytest.fixture(scope="module")
def demo_manifest(tmp_path_factory):
    """A tiny demo corpus: 30 utterances of 3 speakers, at most 1 s each."""
    return make_demo_corpus(tmp_path_factory.mktemp("demo"), 30, 3, seed=1, max_duration_s=1.0)


def test_manifest_extraction_writes_a_loadable_feature_set_matching_the_manifest(tmp_path, demo_manifest):
    out = tmp_path / "feats" / "demo.npz"
    assert script.main(["--manifest", str(demo_manifest), "--out", str(out), "--jobs", "2", "--quiet"]) == 0

    fs = load_feature_set(out)
    rows = read_csv(demo_manifest)
    assert list(fs.ids) == [row["path"] for row in rows]
    assert list(fs.labels) == [row["label"] for row in rows]
    assert list(fs.speakers) == [row["speaker"] for row in rows]
    assert list(fs.split) == [row["split"] for row in rows]
    assert fs.dim == 32
    durations = np.array([float(row["duration_s"]) for row in rows])
    assert np.all(np.abs(fs.lengths - 100 * durations) <= 3)
    assert fs.meta["manifest"] == str(demo_manifest.resolve()) and fs.meta["frame_rate"] == 100
    assert (out.parent / ".feature_cache").is_dir()
    assert not (out.parent / "demo.skipped.csv").exists()


def test_a_second_run_reads_every_file_from_the_cache(tmp_path, demo_manifest, capsys):
    argv = ["--manifest", str(demo_manifest), "--out", str(tmp_path / "a.npz"), "--jobs", "1",
            "--cache", str(tmp_path / "cache"), "--overwrite"]  # the second run replaces the first's file
    script.main(argv)
    assert "extracted 30 of 30 files (0 from cache, 0 skipped)" in capsys.readouterr().out
    script.main(argv)
    assert "extracted 30 of 30 files (30 from cache, 0 skipped)" in capsys.readouterr().out


def test_no_cache_leaves_no_cache_folder(tmp_path, demo_manifest):
    script.main(["--manifest", str(demo_manifest), "--out", str(tmp_path / "a.npz"), "--jobs", "1",
                 "--no-cache", "--quiet", "--limit", "5"])
    assert len(load_feature_set(tmp_path / "a.npz")) == 5
    assert not (tmp_path / ".feature_cache").exists()


def test_functionals_level_stores_one_row_per_utterance(tmp_path, demo_manifest):
    out = tmp_path / "f.npz"
    script.main(["--manifest", str(demo_manifest), "--out", str(out), "--level", "functionals",
                 "--limit", "4", "--jobs", "1", "--quiet"])
    fs = load_feature_set(out)
    assert fs.dim == 384 and list(fs.lengths) == [1, 1, 1, 1]
    assert fs.meta["level"] == "functionals"


def test_corpus_recipe_with_labels_and_limit(tmp_path):
    fabricate_emodb(tmp_path / "emodb")
    out = tmp_path / "e.npz"
    script.main(["--corpus", "emodb", str(tmp_path / "emodb"), "--out", str(out), "--jobs", "1",
                 "--quiet", "--labels", "W=angry,F=happy,T=sad,N=neutral"])
    fs = load_feature_set(out)
    assert sorted(set(fs.labels)) == ["angry", "happy", "neutral", "sad"] and len(fs) == 12
    assert fs.split is None and fs.meta["corpus"] == "emodb"
    assert fs.meta["labels"] == {"W": "angry", "F": "happy", "T": "sad", "N": "neutral"}


@pytest.mark.parametrize("argv, message", [
    (["--corpus", "emodb2", "x", "--out", "a.npz"],
     "unknown corpus 'emodb2'; expected one of: csv, emodb, fau-aibo, ravdess"),
    (["--manifest", "nowhere.csv", "--out", "a.npz"], "manifest 'nowhere.csv' does not exist"),
    (["--manifest", "m.csv", "--out", "a.h5"], "--out must name a .npz file or a feature store folder, NAME or NAME.store, got 'a.h5'"),
    (["--manifest", "m.csv", "--out", "a.npz", "--jobs", "0"], "--jobs must be at least 1"),
    (["--manifest", "m.csv", "--out", "a.store", "--shard-size", "0"], "--shard-size must be at least 1 utterance"),
    (["--manifest", "m.csv", "--out", "a.npz", "--dask-scheduler", "tcp://h:8786"],
     "--shard-size and --dask-scheduler write a sharded store: give --out a folder name without .npz"),
])
def test_user_mistakes_are_one_line_errors(argv, message):
    with pytest.raises(InputError, match=message.replace(".", r"\.").replace("(", r"\(")):
        script.main(argv)


def test_run_main_exits_with_status_2_on_a_bad_corpus_root(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main(script.main, ["--corpus", "ravdess", str(tmp_path), "--out", str(tmp_path / "a.npz")])
    assert exit_info.value.code == 2
    assert "does not look like RAVDESS" in capsys.readouterr().err
