"""The run record: config.json read through one typed object, old folders included; model files written whole."""

import dataclasses
import json
import pickle

import pytest

from tests.fake_runs import make_fake_run
from serattn.report.run import kind_of
from serattn.runs.folder import CONFIG_FILE, KERAS_MODEL_FILE, RunFolder
from serattn.runs.reading import open_run
from serattn.runs.record import RunConfig, RunMetrics
from serattn.training.fusion import cv_folds, underlying_runs

# Keys that later versions added to config.json; a folder from before them must read with the old behaviour.
ADDED_LATER = ("model", "target", "padding", "functionals_norm", "mask", "pooling", "max_length_used", "method")


def old_run(tmp_path):
    """A finished run folder whose config.json predates model kinds, targets, padding and frame rates."""
    path = make_fake_run(tmp_path, counts={"train": 4, "test": 3})
    config = json.loads((path / CONFIG_FILE).read_text())
    for key in ADDED_LATER:
        config.pop(key, None)
    config["feature_meta"].pop("frame_rate")
    config["feature_meta"].pop("level")
    (path / CONFIG_FILE).write_text(json.dumps(config))
    return path


def test_an_old_run_folder_reads_with_the_defaults_it_was_trained_with(tmp_path):
    run = open_run(old_run(tmp_path))
    record = run.record
    assert (record.model, record.recorded_model, record.is_lstm, record.kind) == \
        ("attention-lstm", None, True, "attention-lstm")
    assert (record.padding, record.functionals_norm, record.mask, record.max_length_used) == \
        ("post", "batch", True, None)
    assert record.target == ("emotion",) and record.dimensions == () and not record.is_multitask
    assert (record.frame_rate, record.level, record.feature_set) == (100.0, "lld", "is09")
    assert run.frame_rate == 100.0 and run.dimensions == () and run.classes == ("A", "E", "N", "P", "R")
    assert record.seed == 1 and record.folds == () and not record.is_folded and record.cv is None
    assert kind_of(run) == "attention-lstm"


def test_metrics_read_typed_and_read_only(tmp_path):
    metrics = open_run(make_fake_run(tmp_path, counts={"train": 4, "test": 3})).metrics()
    assert metrics.classes == ("A", "E", "N", "P", "R") and metrics.confusion.shape == (5, 5)
    assert metrics.confusion.sum() == metrics.n_test == 15 and metrics.ua == metrics["ua"]
    assert (metrics.seconds, metrics.folds, metrics.test_sets, metrics.ccc) == (None, [], {}, None)  # not recorded
    assert metrics.scored_on == metrics.classes and metrics.best_epoch == 7
    with pytest.raises(TypeError):
        metrics.values["ua"] = 1.0
    dimensional = RunMetrics.of({"ccc": 0.5, "dimensions": {"arousal": {"ccc": 0.5}}, "n_test": 3})
    assert dimensional.scored_on == ("arousal",) and dimensional.confusion is None and dimensional.ua is None


def test_recorded_values_win_over_the_defaults(tmp_path):
    path = make_fake_run(tmp_path, counts={"train": 4, "test": 3}, frame_rate=50,
                         config={"model": "basic-lstm", "padding": "pre", "functionals_norm": "speaker",
                                 "mask": False, "max_length_used": 300, "target": ["emotion", "arousal"]})
    record = open_run(path).record
    assert (record.model, record.padding, record.functionals_norm, record.mask, record.max_length_used) == \
        ("basic-lstm", "pre", "speaker", False, 300)
    assert record.target == ("emotion", "arousal") and record.dimensions == ("arousal",) and record.is_multitask
    assert record.frame_rate == 50.0 and record.describe_model() == "basic-lstm-tanh"


def test_the_record_is_read_only(tmp_path):
    record = open_run(make_fake_run(tmp_path, counts={"train": 4, "test": 3})).record
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.values = {}
    with pytest.raises(TypeError):
        record.values["model"] = "other"


@pytest.mark.parametrize("config, kind, described", [
    ({"model": "ensemble", "member_runs": ["a", "b"], "folds": ["fold-00"]}, "ensemble", "ensemble"),
    ({"folds": ["fold-00", "fold-01"], "activation": "relu"}, "cross-validation", "unknown"),
    ({"model": "linear-svm"}, "static", "linear-svm"),
    ({"model": "attention-lstm", "activation": "tanh"}, "attention-lstm", "attention-lstm-tanh"),
])
def test_every_kind_of_run_is_told_apart(config, kind, described):
    record = RunConfig.of(config)
    assert record.kind == kind and record.describe_model() == described


def test_ensembles_follow_their_members_through_the_record(tmp_path):
    a = make_fake_run(tmp_path, "a", counts={"train": 4, "test": 3})
    b = make_fake_run(tmp_path, "b", counts={"train": 4, "test": 3})
    nested = {"model": "ensemble", "member_runs": [str(a), str(tmp_path / "missing")]}
    assert underlying_runs(tmp_path / "e", nested) == {a.resolve(), (tmp_path / "missing").resolve()}
    assert underlying_runs(b, {"model": "attention-lstm"}) == {b.resolve()}

    @dataclasses.dataclass
    class Member:
        name: str
        config: dict

        @property
        def record(self):
            return RunConfig.of(self.config)

    assert cv_folds([Member("x", {}), Member("y", {})]) is None
    assert cv_folds([Member("x", {"folds": ["fold-00"]}), Member("y", {"folds": ["fold-00"]})]) == ["fold-00"]


class BrokenModel:
    """Writes part of a .keras file, then fails, as a full disk or a killed save would."""

    def save(self, path):
        assert str(path).endswith(".keras")  # Keras refuses any other name
        with open(path, "wb") as handle:
            handle.write(b"PK\x03\x04 partial")
        raise OSError("No space left on device")


class SmallModel:
    def save(self, path):
        assert str(path).endswith(".keras")
        with open(path, "wb") as handle:
            handle.write(b"PK\x03\x04 whole")


def test_a_failing_model_save_leaves_no_model_file_and_no_partial(tmp_path):
    folder = RunFolder.create(tmp_path / "run")
    folder.write_config({"classes": ["a", "b"], "run_format": 1})
    before = sorted(entry.name for entry in folder.path.iterdir())
    with pytest.raises(OSError, match="No space"):
        folder.save_keras_model(BrokenModel())
    assert sorted(entry.name for entry in folder.path.iterdir()) == before
    assert "model_sha256" not in json.loads((folder.path / CONFIG_FILE).read_text())

    folder.save_keras_model(SmallModel())
    assert (folder.path / KERAS_MODEL_FILE).read_bytes() == b"PK\x03\x04 whole"
    assert sorted(entry.name for entry in folder.path.iterdir()) == sorted([*before, KERAS_MODEL_FILE])
    assert KERAS_MODEL_FILE in json.loads((folder.path / CONFIG_FILE).read_text())["model_sha256"]
    folder.remove()


def test_table_1_averages_the_recalls_that_exist(tmp_path):
    """A class absent from a run's test set has recall None there: the table averages the others, not crash."""
    from serattn.report.tables import summary_table

    run = open_run(make_fake_run(tmp_path, counts={"train": 4, "test": 3}))
    scores = {"ua": 0.5, "wa": 0.5, "classes": ["A", "E"]}
    members = [(run, RunMetrics.of({**scores, "per_class_recall": {"A": 0.5, "E": None}})),
               (run, RunMetrics.of({**scores, "per_class_recall": {"A": 0.7, "E": 0.4}}))]
    _, header, rows = summary_table([((), members)], [])
    assert dict(zip(header, rows[0]))["recall A (%)"] == "60.0"
    assert dict(zip(header, rows[0]))["recall E (%)"] == "40.0"


def test_metrics_are_written_from_a_run_metrics_only_and_in_their_recorded_order(tmp_path):
    """metrics.json is built by RunMetrics.of_*: its keys keep the order old runs have (a dict is refused)."""
    from serattn.analysis.metrics import evaluate_predictions

    folder = RunFolder(tmp_path)
    scores = evaluate_predictions(["a", "b", "b"], ["a", "b", "a"], ["a", "b"])
    with pytest.raises(TypeError, match="RunMetrics"):
        folder.write_metrics(scores)
    folds = [{"fold": 0, "test_speakers": ["s0"], "ua": 0.5, "wa": 0.5, "n": 2},
             {"fold": 1, "test_speakers": ["s1"], "ua": 1.0, "wa": 1.0, "n": 1}]
    repeats = [{"repeat": 0, "ua": 0.5, "wa": 0.5, "n": 3}, {"repeat": 1, "ua": 1.0, "wa": 1.0, "n": 3}]
    metrics = RunMetrics.of_folds(scores, folds, repeats=repeats, label_map_dropped=None, seconds=2.5)
    metrics = metrics.with_attention({"attention_entropy": 0.3}).with_fold_weights([[1.0], [1.0]])
    folder.write_metrics(metrics)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert list(written) == ["ua", "wa", "classes", "per_class_recall", "confusion", "n_test", "pooled",
                             "ua_fold_mean", "ua_fold_std", "wa_fold_mean", "wa_fold_std", "folds", "repeats",
                             "ua_repeat_mean", "ua_repeat_std", "seconds", "attention_entropy", "fold_weights"]
    assert written["n_test"] == 3 and written["ua_fold_mean"] == 0.75 and written["ua_repeat_std"] == 0.25
    assert written["pooled"].endswith("of all folds of all repeats (each utterance once per repeat)")
    assert pickle.loads(pickle.dumps(metrics)) == metrics  # back from worker processes and Dask


def test_a_static_run_records_only_the_keys_it_has(tmp_path):
    from serattn.analysis.metrics import evaluate_predictions

    scores = evaluate_predictions(["a", "b"], ["a", "b"], ["a", "b"])
    metrics = RunMetrics.of_static(scores, val_ua=None, test_sets=None, label_map_dropped={}, best_params={"C": 1},
                                   selection="validation speakers", grid_scores=[0.5], fit_info={"converged": True},
                                   seconds=0.1)
    assert list(metrics)[5:] == ["n_test", "best_epoch", "val_ua", "label_map_dropped", "best_params", "selection",
                                 "grid_scores", "converged", "seconds"]
    assert metrics["best_epoch"] is None and "test_sets" not in metrics
