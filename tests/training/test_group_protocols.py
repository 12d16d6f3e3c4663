"""Leave-one-group-out (--cv leave-one-group-out --group-by COLUMN) and corpus partitions (--split-by COLUMN)."""

import csv
import dataclasses
import json

import numpy as np
import pytest

import train_attention_lstm
import train_static
from serattn.analysis.metrics import evaluate_predictions, format_summary
from serattn.config import DataConfig, parse_cv
from serattn.errors import InputError
from serattn.features.feature_set import load_feature_set, save_feature_set
from serattn.testing import add_copies, make_feature_set
from serattn.training.protocols import check_groups, partition_roles, speaker_attribute, speaker_folds

TINY = ["--units", "4", "--attention-units", "4", "--epochs", "1", "--batch-size", "32", "--quiet"]
FAST = ["--grid", "C=1", "--quiet"]
# Six speakers in three sessions (two each, as IEMOCAP's sessions hold two actors), and MSP-Podcast-like partitions.
SESSIONS = {"s00": "Ses01", "s01": "Ses01", "s02": "Ses02", "s03": "Ses02", "s04": "Ses03", "s05": "Ses03"}
PARTITIONS = {"s00": "Train", "s01": "Train", "s02": "Train", "s03": "Development", "s04": "Test1", "s05": "Test2"}


def with_columns(feature_set):
    speakers = feature_set.speakers
    return dataclasses.replace(feature_set, split=None, columns={
        "session": np.array([SESSIONS[s] for s in speakers]),
        "partition": np.array([PARTITIONS[s] for s in speakers]),
        "arousal": np.array([f"{i % 5 + 1}.5" for i in range(len(speakers))])})


@pytest.fixture(scope="module")
def grouped_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("grouped") / "features.npz"
    save_feature_set(with_columns(make_feature_set(n=60, classes=("A", "B", "C"), speakers=6, min_length=5,
                                                   max_length=12, signal=3.0, seed=2)), path)
    return path


def read_folds(run):
    with open(run / "folds.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_fold_holds_out_one_group_and_its_speakers_only():
    speakers = np.repeat(["s00", "s01", "s02", "s03", "s04", "s05"], 2)
    groups = np.array([SESSIONS[s] for s in speakers])
    folds = speaker_folds(speakers, "leave-one-group-out", groups=(groups, "session"))
    assert [sorted(set(groups[test])) for _, test in folds] == [["Ses01"], ["Ses02"], ["Ses03"]]
    for train, test in folds:
        assert not set(speakers[train]) & set(speakers[test])
        assert len(train) + len(test) == len(speakers)


def test_a_speaker_in_several_groups_is_refused():
    speakers = np.array(["a", "a", "b", "b"])
    with pytest.raises(InputError, match="--group-by dialog: speaker 'a' is in several groups \\('d1', 'd2'\\)"):
        check_groups(speakers, np.array(["d1", "d2", "d3", "d3"]), "dialog")
    with pytest.raises(InputError, match="needs at least 2 values of 'session'; the data has 1"):
        check_groups(speakers, np.array(["x"] * 4), "session")
    with pytest.raises(InputError, match="1 utterance\\(s\\) have no 'session' value \\(first: speaker 'b'\\)"):
        check_groups(speakers, np.array(["x", "x", "y", ""]), "session")


def test_protocol_flags_are_parsed_and_checked():
    assert parse_cv(["leave-one-group-out"]) == ("leave-one-group-out", None)
    assert parse_cv(["leave-one-group-out", None]) == ("leave-one-group-out", None)  # as in config.json
    with pytest.raises(InputError, match="--cv leave-one-group-out and --group-by COLUMN go together"):
        DataConfig(data="x.npz", cv=("leave-one-group-out", None)).check()
    with pytest.raises(InputError, match="--cv leave-one-group-out and --group-by COLUMN go together"):
        DataConfig(data="x.npz", cv=("loso", None), group_by="session").check()
    with pytest.raises(InputError, match="--split-by partition splits one --data file by its partitions"):
        DataConfig(data="x.npz", cv=("loso", None), split_by="partition").check()


def test_partition_names_map_to_roles():
    roles = partition_roles(["Train", "Development", "Test1", "Test2", "Test3", "train", "test"], "p", "f.npz")
    assert list(roles) == ["train", "validation", "test", "test", "test", "train", "test"]
    with pytest.raises(InputError, match="--split-by p: 'f.npz' has partition\\(s\\) Holdout; expected Train"):
        partition_roles(["Train", "Holdout"], "p", "f.npz")
    with pytest.raises(InputError, match="--split-by p: 'f.npz' has no test partition"):
        partition_roles(["Train", "Development"], "p", "f.npz")


def test_columns_survive_saving_subsets_and_augmented_copies(grouped_file):
    data = load_feature_set(grouped_file)
    assert sorted(data.columns) == ["arousal", "partition", "session"]
    assert data.numeric_column("arousal")[:3].tolist() == [1.5, 2.5, 3.5]
    copies = add_copies(data, (0.9,))
    assert list(copies.columns["session"]) == list(data.columns["session"]) * 2
    picked = data.subset(data.speakers == "s04")
    assert set(picked.columns["session"]) == {"Ses03"} and set(picked.columns["partition"]) == {"Test1"}


def test_lstm_leave_one_session_out(grouped_file, tmp_path):
    out = tmp_path / "logo"
    train_attention_lstm.main(["--data", str(grouped_file), "--cv", "leave-one-group-out", "--group-by", "session",
                               "--val-speakers", "0", "--out", str(out), *TINY])
    config = json.loads((out / "config.json").read_text())
    assert (config["cv"], config["group_by"], config["split_by"]) == (["leave-one-group-out", None], "session", None)
    folds = read_folds(out)
    assert [(row["fold"], row["test_speaker"]) for row in folds] == [
        ("fold-00", "s00"), ("fold-00", "s01"), ("fold-01", "s02"), ("fold-01", "s03"),
        ("fold-02", "s04"), ("fold-02", "s05")]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_test"] == 60 and [f["test_speakers"] for f in metrics["folds"]] == [
        ["s00", "s01"], ["s02", "s03"], ["s04", "s05"]]


def test_static_leave_one_session_out_and_a_missing_column(grouped_file, tmp_path):
    out = tmp_path / "logo"
    assert train_static.main(["--data", str(grouped_file), "--cv", "leave-one-group-out", "--group-by", "session",
                              "--out", str(out), *FAST, "--pool", "mean"]) == 0
    assert [row["test_speaker"] for row in read_folds(out) if row["fold"] == "fold-02"] == ["s04", "s05"]
    with pytest.raises(InputError, match="--group-by room: '.*features.npz' has no column 'room'; its columns: "
                                         "arousal, partition, session"):
        train_static.main(["--data", str(grouped_file), "--cv", "leave-one-group-out", "--group-by", "room",
                           "--out", str(tmp_path / "refused"), *FAST, "--pool", "mean"])
    assert not (tmp_path / "refused").exists()


def scored_per_test_set(out, classes=("A", "B", "C")):
    """metrics.json's test_sets, checked against predictions.csv: Test1 is speaker s04, Test2 s05."""
    metrics = json.loads((out / "metrics.json").read_text())
    with open(out / "predictions.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "test"]
    assert sorted(metrics["test_sets"]) == ["Test1", "Test2"]
    for name, speaker in (("Test1", "s04"), ("Test2", "s05")):
        part = [r for r in rows if r["speaker"] == speaker]
        expected = evaluate_predictions([r["true"] for r in part], [r["predicted"] for r in part], list(classes))
        assert metrics["test_sets"][name] == expected and expected["n"] == 10
    pooled = np.sum([metrics["test_sets"][name]["confusion"] for name in ("Test1", "Test2")], axis=0)
    assert pooled.tolist() == metrics["confusion"] and metrics["n_test"] == 20
    return metrics


def test_lstm_trains_validates_and_tests_on_the_corpus_partitions(grouped_file, tmp_path, capsys):
    out = tmp_path / "msp"
    train_attention_lstm.main(["--data", str(grouped_file), "--split-by", "partition", "--out", str(out), *TINY])
    metrics = scored_per_test_set(out)
    printed = capsys.readouterr().out
    for name in ("Test1", "Test2"):
        assert f"test set {name}: {format_summary(metrics['test_sets'][name])}" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["split_by"] == "partition" and config["cv"] is None
    assert config["val_speakers_used"] == ["s03"]  # the Development partition, not a random pick
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_split = {split: sorted({r["speaker"] for r in rows if r["split"] == split})
                for split in ("train", "val", "test")}
    assert by_split["test"] == ["s04", "s05"]
    assert not set(by_split["train"]) & {"s03", "s04", "s05"}


def test_static_split_by_and_shared_speakers_warning(grouped_file, tmp_path, capsys):
    out = tmp_path / "msp"
    assert train_static.main(["--data", str(grouped_file), "--split-by", "partition", "--out", str(out), *FAST,
                              "--pool", "mean"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["split_by"] == "partition" and config["val_speakers_used"] == ["s03"]
    scored_per_test_set(out)
    data = load_feature_set(grouped_file)
    shared = dataclasses.replace(data, columns={**data.columns, "partition": np.where(
        np.arange(len(data)) // 6 % 2, "Train", "Test1")})  # every speaker in both
    save_feature_set(shared, tmp_path / "shared.npz")
    capsys.readouterr()
    assert train_static.main(["--data", str(tmp_path / "shared.npz"), "--split-by", "partition", "--out",
                              str(tmp_path / "shared"), *FAST, "--pool", "mean"]) == 0
    assert "warning: --split-by partition: 6 speaker(s) are in both training and test partitions" in \
        capsys.readouterr().err


def test_stratify_speakers_by_a_column_of_the_feature_set(grouped_file):
    data = load_feature_set(grouped_file)
    assert speaker_attribute(data, "session") == SESSIONS
    with pytest.raises(InputError, match="column 'arousal' of the feature set has several values for speaker 's00'"):
        speaker_attribute(data, "arousal")
