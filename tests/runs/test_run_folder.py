"""Reading run folders: what a finished run provides, and one-line errors otherwise."""

import json

import numpy as np
import pytest

from tests.fake_runs import make_fake_run
from serattn.errors import InputError
from serattn.features.corpora import read_manifest
from serattn.runs.reading import check_splits, open_run


@pytest.fixture
def run_dir(tmp_path):
    return make_fake_run(tmp_path, counts={"train": 4, "val": 2, "test": 3})


def test_finished_run_gives_config_metrics_predictions_attention(run_dir):
    run = open_run(run_dir)
    assert run.classes == ("A", "E", "N", "P", "R")
    assert run.frame_rate == 100.0
    assert run.manifest_path.is_file()

    metrics = run.metrics()
    assert metrics["confusion"].shape == (5, 5)
    assert metrics["confusion"].sum() == metrics["n_test"] == 15

    predictions = run.predictions()
    assert predictions["p_A"].dtype == np.float64
    assert set(predictions["split"]) == {"train", "val", "test"}

    attention = run.attention()
    assert len(attention) == 45 and attention.z.shape == (45, 60)
    assert attention.weights.shape == (attention.lengths.sum(),)
    np.testing.assert_allclose(attention.utterance(2).sum(), 1.0, rtol=1e-5)


def test_select_keeps_the_frames_of_the_chosen_utterances(run_dir):
    attention = open_run(run_dir).attention()
    test = attention.select(attention.split == "test")
    assert len(test) == 15 and set(test.split) == {"test"}
    first = int(np.flatnonzero(attention.split == "test")[0])
    np.testing.assert_array_equal(test.utterance(0), attention.utterance(first))
    assert test.index_of(attention.ids[first]) == 0


def test_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="run folder '.*nowhere' does not exist"):
        open_run(tmp_path / "nowhere")


def test_incomplete_run_is_refused(tmp_path):
    run_dir = make_fake_run(tmp_path, incomplete=True)
    with pytest.raises(InputError, match="is incomplete .*INCOMPLETE.*wait for training to finish"):
        open_run(run_dir)


def test_missing_file_is_named(run_dir):
    (run_dir / "attention.npz").unlink()
    run = open_run(run_dir)
    with pytest.raises(InputError, match="lacks 'attention.npz'"):
        run.attention()
    (run_dir / "config.json").unlink()
    with pytest.raises(InputError, match="lacks 'config.json'"):
        open_run(run_dir)


def test_malformed_files_are_input_errors(run_dir):
    (run_dir / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read .*config.json"):
        open_run(run_dir)


def test_inconsistent_attention_arrays_are_input_errors(run_dir):
    with np.load(run_dir / "attention.npz") as npz:
        arrays = dict(npz)
    np.savez(run_dir / "attention.npz", **{**arrays, "weights": arrays["weights"][:-1]})
    with pytest.raises(InputError, match="'weights' .* must be ragged"):
        open_run(run_dir).attention()
    np.savez(run_dir / "attention.npz", **{**arrays, "split": np.full(len(arrays["ids"]), "dev")})
    with pytest.raises(InputError, match="unknown value.* dev"):
        open_run(run_dir).attention()


def test_bad_confusion_matrix_is_an_input_error(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["confusion"] = metrics["confusion"][:3]
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(InputError, match="must be a 5x5 matrix"):
        open_run(run_dir).metrics()


def test_check_splits_names_the_valid_choices():
    split = np.array(["train", "test"])
    check_splits(["test"], split, "attention.npz")
    with pytest.raises(InputError, match="unknown split 'dev'; expected one of: test, train, val"):
        check_splits(["dev"], split, "attention.npz")
    with pytest.raises(InputError, match="no 'val' utterances; choose from: test, train"):
        check_splits(["val"], split, "attention.npz")


def test_manifest_columns(run_dir):
    manifest = read_manifest(open_run(run_dir).manifest_path).columns()
    assert {"path", "cue_start_s", "cue_end_s", "duration_s"} <= set(manifest)
    with pytest.raises(InputError, match="does not exist"):
        read_manifest(run_dir / "nope.csv")

