"""The IEMOCAP, MSP-Podcast and CREMA-D recipes on miniatures of their distributed layouts."""

import collections

import numpy as np
import pytest

from extract_features import main as extract_main
from serattn.errors import InputError
from serattn.features import corpora
from serattn.features.feature_set import load_feature_set
from tests.fabricate import fabricate_crema_d, fabricate_iemocap, fabricate_msp_podcast


def by_path(manifest):
    return {row["path"]: row for row in manifest.rows}


# --- IEMOCAP ----------------------------------------------------------------------------------


def test_iemocap_reads_every_turn_with_its_category_speaker_session_and_vad(tmp_path):
    fabricate_iemocap(tmp_path)
    manifest = corpora.prepare_corpus("iemocap", tmp_path)
    rows = by_path(manifest)
    assert list(rows) == sorted([
        "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav",
        "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav",
        "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F001.wav",
        "Session1/sentences/wav/Ses01M_script01_1/Ses01M_script01_1_M012.wav",
        "Session1/sentences/wav/Ses01M_script01_1/Ses01M_script01_1_F000.wav",
        "Session2/sentences/wav/Ses02F_impro02/Ses02F_impro02_M003.wav",
        "Session2/sentences/wav/Ses02F_impro02/Ses02F_impro02_F001.wav",
    ])  # evaluator lines, Categorical/ files and the header are not turns
    first = rows["Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"]
    assert first == dict(path="Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav", label="neu",
                         speaker="Ses01_F", split="", session="Ses01", dialog="Ses01F_impro01", mode="improvised",
                         gender="female", start_s="6.2901", end_s="8.2357", valence="2.5000", arousal="2.5000",
                         dominance="2.5000")
    # The speaker is the turn's speaker (M012), not the marker wearer of the dialog name (Ses01M... / Ses01F...).
    scripted = rows["Session1/sentences/wav/Ses01M_script01_1/Ses01M_script01_1_F000.wav"]
    assert (scripted["speaker"], scripted["gender"], scripted["mode"], scripted["label"]) == \
        ("Ses01_F", "female", "scripted", "xxx")
    male = rows["Session2/sentences/wav/Ses02F_impro02/Ses02F_impro02_M003.wav"]
    assert (male["speaker"], male["session"], male["label"]) == ("Ses02_M", "Ses02", "sad")
    assert (male["valence"], male["arousal"], male["dominance"]) == ("1.6667", "2.0000", "2.3333")
    assert collections.Counter(r["speaker"] for r in manifest.rows) == \
        {"Ses01_F": 3, "Ses01_M": 2, "Ses02_F": 1, "Ses02_M": 1}
    assert sorted(r["label"] for r in manifest.rows) == ["ang", "exc", "fru", "hap", "neu", "sad", "xxx"]
    assert all(manifest.audio_path(row).is_file() for row in manifest.rows)


def test_iemocap_four_classes_merge_excited_into_happy_and_count_the_dropped(tmp_path):
    fabricate_iemocap(tmp_path)
    manifest = corpora.prepare_corpus("iemocap", tmp_path, classes="4")
    assert {row["dialog"] + ":" + row["label"] for row in manifest.rows} == {
        "Ses01F_impro01:neu", "Ses01F_impro01:hap", "Ses01M_script01_1:ang", "Ses02F_impro02:sad",
        "Ses02F_impro02:hap"}
    assert manifest.meta["dropped_by_classes"] == 2  # fru and xxx
    assert manifest.meta["classes"] == "4"


@pytest.mark.parametrize("line, shown", [
    ("[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000]", r"\[2.5000, 2.5000\]"),
    ("[6.2901 - 8.2357]\tSes01F_impro01_F000\tjoy\t[2.5000, 2.5000, 2.5000]", "joy"),
    ("[6.2901 - 8.2357]\tSes01F_impro01\tneu\t[2.5000, 2.5000, 2.5000]", "Ses01F_impro01\tneu"),
])
def test_iemocap_malformed_turn_line_names_file_and_line(tmp_path, line, shown):
    fabricate_iemocap(tmp_path)
    label_file = tmp_path / "Session2" / "dialog" / "EmoEvaluation" / "Ses02F_impro02.txt"
    label_file.write_text(label_file.read_text() + line + "\n")
    with pytest.raises(InputError, match=f"Ses02F_impro02.txt', line 15: expected .*got '.*{shown}"):
        corpora.prepare_corpus("iemocap", tmp_path)


def test_iemocap_missing_label_file_and_unknown_class_set(tmp_path):
    fabricate_iemocap(tmp_path)
    with pytest.raises(InputError, match="unknown --classes '5' for iemocap; expected one of: all, 4"):
        corpora.prepare_corpus("iemocap", tmp_path, classes="5")
    with pytest.raises(InputError, match="--classes 4: corpus emodb has no class sets"):
        corpora.prepare_corpus("emodb", tmp_path, classes="4")
    (tmp_path / "Session1" / "dialog" / "EmoEvaluation" / "Ses01M_script01_1.txt").unlink()
    with pytest.raises(InputError, match="IEMOCAP label file '.*Session1/dialog/EmoEvaluation/"
                                         "Ses01M_script01_1.txt' does not exist"):
        corpora.prepare_corpus("iemocap", tmp_path)


# --- MSP-Podcast -------------------------------------------------------------------------------


def test_msp_podcast_reads_classes_dimensions_partitions_and_unknown_speakers(tmp_path):
    fabricate_msp_podcast(tmp_path)
    manifest = corpora.prepare_corpus("msp-podcast", tmp_path)
    rows = by_path(manifest)
    assert list(rows) == [f"Audios/MSP-PODCAST_{n}.wav" for n in (
        "0001_0008", "0001_0019", "0002_0033", "0003_0001", "0004_0012", "0005_0002", "0006_0044", "0007_0003")]
    assert rows["Audios/MSP-PODCAST_0001_0008.wav"] == dict(
        path="Audios/MSP-PODCAST_0001_0008.wav", label="N", speaker="127", split="train", partition="Train",
        gender="female", arousal="4.2", valence="4.0", dominance="4.6")
    assert [(r["partition"], r["split"]) for r in manifest.rows] == [
        ("Train", "train")] * 3 + [("Development", "train")] * 2 + [("Test1", "test")] * 2 + [("Test2", "test")]
    # Unknown speakers: each utterance its own speaker, so no two unrelated voices share a speaker group.
    assert rows["Audios/MSP-PODCAST_0004_0012.wav"]["speaker"] == "Unknown_MSP-PODCAST_0004_0012"
    assert rows["Audios/MSP-PODCAST_0006_0044.wav"]["speaker"] == "Unknown_MSP-PODCAST_0006_0044"
    assert rows["Audios/MSP-PODCAST_0006_0044.wav"]["gender"] == "unknown"
    assert [r["label"] for r in manifest.rows] == ["N", "H", "A", "S", "N", "C", "X", "U"]
    assert [float(r["valence"]) for r in manifest.rows] == [4.0, 6.0, 2.2, 2.8, 4.4, 3.0, 4.25, 5.5]
    assert all(manifest.audio_path(row).is_file() for row in manifest.rows)


def test_msp_podcast_errors_name_the_label_file_and_line(tmp_path):
    with pytest.raises(InputError, match="does not look like MSP-Podcast: expected the label file "
                                         "'Labels/labels_consensus.csv'"):
        corpora.prepare_corpus("msp-podcast", tmp_path)
    fabricate_msp_podcast(tmp_path)
    labels = tmp_path / "Labels" / "labels_consensus.csv"
    labels.write_text(labels.read_text() + "MSP-PODCAST_0009_0001.wav,N,4.0,4.0,4.0,5,Male,Validation\n")
    with pytest.raises(InputError, match="labels_consensus.csv', line 11: expected .*got "
                                         "'MSP-PODCAST_0009_0001.wav', 'N', 'Validation'"):
        corpora.prepare_corpus("msp-podcast", tmp_path)
    labels.write_text("FileName,EmoClass,EmoAct,EmoVal,SpkrID,Gender,Split_Set\n")
    with pytest.raises(InputError, match="lacks the column\\(s\\) EmoDom"):
        corpora.prepare_corpus("msp-podcast", tmp_path)


# --- CREMA-D --------------------------------------------------------------------------------------


def test_crema_d_reads_actor_sentence_emotion_level_and_demographics(tmp_path):
    names = fabricate_crema_d(tmp_path)
    manifest = corpora.prepare_corpus("crema-d", tmp_path)
    rows = by_path(manifest)
    assert list(rows) == sorted(f"AudioWAV/{name}" for name in names)  # readme.txt is not a clip
    assert rows["AudioWAV/1001_DFA_ANG_XX.wav"] == dict(
        path="AudioWAV/1001_DFA_ANG_XX.wav", label="ANG", speaker="1001", split="", sentence="DFA", level="XX",
        age="51", gender="male", race="Caucasian", ethnicity="Not Hispanic")
    assert [(r["speaker"], r["label"], r["level"]) for r in manifest.rows] == [
        ("1001", "ANG", "XX"), ("1001", "HAP", "HI"), ("1002", "NEU", "XX"), ("1002", "SAD", "LO"),
        ("1091", "DIS", "XX"), ("1091", "FEA", "MD")]
    assert {r["speaker"]: (r["age"], r["gender"]) for r in manifest.rows} == \
        {"1001": ("51", "male"), "1002": ("21", "female"), "1091": ("29", "female")}


def test_crema_d_needs_its_demographics(tmp_path):
    fabricate_crema_d(tmp_path)
    (tmp_path / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,x\n")
    with pytest.raises(InputError, match="VideoDemographics.csv' has no row for actor 1002"):
        corpora.prepare_corpus("crema-d", tmp_path)
    (tmp_path / "VideoDemographics.csv").unlink()
    with pytest.raises(InputError, match="CREMA-D demographics file '.*VideoDemographics.csv' does not exist"):
        corpora.prepare_corpus("crema-d", tmp_path)


@pytest.mark.parametrize("name, expected", [
    ("iemocap", "does not look like IEMOCAP: expected Session1..Session5"),
    ("msp-podcast", "does not look like MSP-Podcast"),
    ("crema-d", "does not look like CREMA-D: expected AudioWAV/"),
])
def test_a_root_without_the_layout_is_an_input_error(tmp_path, name, expected):
    (tmp_path / "wav").mkdir()
    with pytest.raises(InputError, match=f"'{tmp_path}' {expected}"):
        corpora.prepare_corpus(name, tmp_path)


# --- extraction carries the columns -----------------------------------------------------------


def test_extracted_iemocap_keeps_sessions_and_dimensions_as_columns(tmp_path, capsys):
    fabricate_iemocap(tmp_path / "IEMOCAP_full_release")
    out = tmp_path / "iemocap4.npz"
    assert extract_main(["--corpus", "iemocap", str(tmp_path / "IEMOCAP_full_release"), "--classes", "4",
                         "--out", str(out), "--jobs", "1", "--no-cache", "--level", "functionals"]) == 0
    assert "--classes 4: 2 utterances of other categories dropped, 5 kept" in capsys.readouterr().err
    fs = load_feature_set(out)
    assert list(fs.ids) == sorted(fs.ids) and len(fs) == 5
    assert list(fs.columns["session"]) == ["Ses01", "Ses01", "Ses01", "Ses02", "Ses02"]
    order = np.argsort(fs.ids)
    assert list(fs.labels[order]) == ["neu", "hap", "ang", "hap", "sad"]
    np.testing.assert_array_equal(fs.numeric_column("arousal")[order], [2.5, 4.0, 4.5, 3.5, 2.0])
    assert fs.meta["dropped_by_classes"] == 2 and fs.split is None
    sub = fs.subset(fs.columns["session"] == "Ses02")
    assert list(sub.columns["valence"]) == ["4.5000", "1.6667"] and list(sub.speakers) == ["Ses02_F", "Ses02_M"]


def test_msp_podcast_miniature_is_trained_on_its_partitions_and_scored_per_test_set(tmp_path, capsys):
    import json

    import train_static

    fabricate_msp_podcast(tmp_path / "MSP-Podcast")
    data = tmp_path / "msp.npz"
    assert extract_main(["--corpus", "msp-podcast", str(tmp_path / "MSP-Podcast"), "--out", str(data), "--jobs", "1",
                         "--no-cache", "--level", "functionals"]) == 0
    # Train holds N H A, Development S N, Test1 C X, Test2 U: a map to three classes lets every test label train
    (tmp_path / "map.yaml").write_text("corpora:\n  msp-podcast: {N: neutral, H: positive, U: positive, A: negative, "
                                       "S: negative, C: negative, X: null}\n")
    out = tmp_path / "run"
    capsys.readouterr()
    assert train_static.main(["--data", str(data), "--split-by", "partition", "--label-map", str(tmp_path / "map.yaml"),
                              "--model", "logreg", "--grid", "C=1", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_test"] == 2 and metrics["label_map_dropped"]["data"]["dropped_by_map"] == {"X": 1}
    assert {name: (scores["n"], scores["classes"], np.sum(scores["confusion"], axis=1).tolist())
            for name, scores in metrics["test_sets"].items()} == {
        "Test1": (1, ["negative", "neutral", "positive"], [1, 0, 0]),
        "Test2": (1, ["negative", "neutral", "positive"], [0, 0, 1])}
    printed = capsys.readouterr().out
    assert "test set Test1: UA" in printed and "test set Test2: UA" in printed
    assert json.loads((out / "config.json").read_text())["val_speakers_used"] == ["45", "Unknown_MSP-PODCAST_0004_0012"]
