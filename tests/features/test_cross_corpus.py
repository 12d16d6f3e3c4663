"""Cross-corpus runs: --train A --test B --label-map FILE, unmapped labels refused or dropped and counted."""

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import train_attention_lstm
import train_static
from serattn.errors import InputError
from serattn.features.feature_set import load_feature_set, save_feature_set
from serattn.features.label_map import apply_label_map, read_label_map
from serattn.testing import make_feature_set
from tests.scripts.test_safety import assert_refused

TINY = ["--units", "8", "--attention-units", "4", "--epochs", "2", "--quiet"]
FAST = ["--grid", "C=1", "--quiet", "--pool", "mean"]
# EmoDB's letters (W anger, F happiness, N neutral, T sadness, L boredom) and IEMOCAP's categories.
EMODB = ("W", "F", "N", "T", "L")
IEMOCAP = ("ang", "hap", "exc", "neu", "sad", "fru")
MAP_YAML = """\
classes: [angry, happy, neutral, sad]
corpora:
  emodb: {W: angry, F: happy, N: neutral, T: sad}
  iemocap: {ang: angry, hap: happy, exc: happy, neu: neutral, sad: sad}
"""
MAP_CSV = """\
corpus,label,class
emodb,W,angry
emodb,F,happy
emodb,T,sad
iemocap,ang,angry
iemocap,hap,happy
iemocap,exc,happy
iemocap,sad,sad
iemocap,fru,
,N,neutral
,neu,neutral
"""


def corpus(name, classes, seed, shift=0.0):
    """A fabricated corpus extracted with recipe ``name``: no split, its own speakers, frames shifted by ``shift``."""
    data = make_feature_set(n=60, classes=classes, speakers=6, min_length=5, max_length=12, signal=3.0, seed=seed,
                            split=False)
    return dataclasses.replace(data, features=data.features + np.float32(shift),
                               speakers=np.char.add(f"{name}_", data.speakers), meta={**data.meta, "corpus": name})


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpora")
    save_feature_set(corpus("emodb", EMODB, seed=1), folder / "emodb.npz")
    save_feature_set(corpus("iemocap", IEMOCAP, seed=2, shift=5.0), folder / "iemocap.npz")
    (folder / "map.yaml").write_text(MAP_YAML)
    (folder / "map.csv").write_text(MAP_CSV)
    return folder


def count(path, labels):
    data = load_feature_set(path)
    return {label: int(np.sum(data.labels == label)) for label in labels}


def test_yaml_and_csv_maps_read_alike(corpora):
    yaml_map, csv_map = read_label_map(corpora / "map.yaml"), read_label_map(corpora / "map.csv")
    assert yaml_map.classes == ("angry", "happy", "neutral", "sad") and csv_map.classes is None
    assert yaml_map.lookup("iemocap") == {"ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral",
                                          "sad": "sad"}
    # the CSV's shared rows (empty corpus) apply to every corpus, an empty class drops the label
    assert csv_map.lookup("emodb") == {"W": "angry", "F": "happy", "T": "sad", "N": "neutral", "neu": "neutral"}
    assert csv_map.lookup("iemocap")["fru"] is None and csv_map.lookup("iemocap")["exc"] == "happy"


def test_labels_are_mapped_dropped_by_name_or_refused(corpora):
    label_map = read_label_map(corpora / "map.csv")
    path = corpora / "iemocap.npz"
    data = load_feature_set(path)
    before = count(path, IEMOCAP)
    with pytest.raises(InputError, match=r"--label-map '.*map.csv' maps no class for label\(s\) L of "
                                         r"'.*emodb.npz' \(corpus emodb\)") as refused:
        apply_label_map(label_map, load_feature_set(corpora / "emodb.npz"), corpora / "emodb.npz")
    assert "W" not in str(refused.value)  # mapped labels are not named; L, unmapped, is
    mapped, record = apply_label_map(label_map, data, path)
    assert sorted(set(mapped.labels)) == ["angry", "happy", "neutral", "sad"]
    assert np.sum(mapped.labels == "happy") == before["hap"] + before["exc"]  # merged because the map says so
    assert record["dropped_by_map"] == {"fru": before["fru"]} and record["dropped_unmapped"] == {}
    assert len(mapped) == len(data) - before["fru"]
    assert np.array_equal(mapped.speakers, data.speakers[data.labels != "fru"])


@pytest.mark.parametrize("text, message", [
    ("classes: [angry]\nlabels: {W: furious}\n", r"maps to class\(es\) furious outside its classes \(angry\)"),
    ("labels: [W, F]\n", r"'labels' must map labels to classes"),
    ("mapping: {W: angry}\n", r"expected a mapping with 'classes', 'labels' and 'corpora', got 'mapping'"),
    ("labels: {}\n", "maps no label"),
])
def test_malformed_maps_are_refused(tmp_path, text, message):
    (tmp_path / "map.yaml").write_text(text)
    with pytest.raises(InputError, match=message):
        read_label_map(tmp_path / "map.yaml")
    (tmp_path / "map.csv").write_text("label,class\nW,angry\n")
    with pytest.raises(InputError, match="expected the CSV header 'corpus,label,class'"):
        read_label_map(tmp_path / "map.csv")


def test_unmapped_labels_stop_the_command_before_any_folder(corpora, tmp_path, capsys):
    argv = ["--train", str(corpora / "emodb.npz"), "--test", str(corpora / "iemocap.npz"), "--label-map",
            str(corpora / "map.yaml"), "--out", str(tmp_path / "run"), *TINY]
    assert_refused(train_attention_lstm.main, argv, r"maps no class for label\(s\) L of '.*emodb.npz' \(corpus "
                                                    r"emodb\); add them to the map .* or use --drop-unmapped",
                   tmp_path, capsys)
    assert_refused(train_attention_lstm.main, ["--data", str(corpora / "emodb.npz"), "--cv", "loso",
                                               "--drop-unmapped", "--out", str(tmp_path / "run"), *TINY],
                   "--drop-unmapped drops the labels a --label-map FILE does not name", tmp_path, capsys)


def test_lstm_trains_on_one_corpus_and_tests_on_another(corpora, tmp_path, capsys):
    out = tmp_path / "emodb-to-iemocap"
    train_attention_lstm.main(["--train", str(corpora / "emodb.npz"), "--test", str(corpora / "iemocap.npz"),
                               "--label-map", str(corpora / "map.yaml"), "--drop-unmapped", "--val-speakers", "0",
                               "--out", str(out), *TINY])
    emodb, iemocap = count(corpora / "emodb.npz", EMODB), count(corpora / "iemocap.npz", IEMOCAP)
    stderr = capsys.readouterr()
    assert f"--label-map: {emodb['L']} train utterance(s) of '{corpora / 'emodb.npz'}' dropped (L {emodb['L']}; " \
           f"unmapped: L)" in stderr.err
    assert f"--label-map dropped {iemocap['fru']} test utterance(s)" in stderr.out

    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == ["angry", "happy", "neutral", "sad"]
    assert config["label_map"] == str(corpora / "map.yaml") and config["drop_unmapped"] is True
    used = config["label_map_used"]
    assert used["sets"]["train"]["map"] == {"F": "happy", "N": "neutral", "T": "sad", "W": "angry"}
    assert used["sets"]["test"]["corpus"] == "iemocap" and used["sets"]["test"]["map"]["exc"] == "happy"
    assert "label_map" not in config["feature_meta"]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["label_map_dropped"] == {
        "train": {"dropped_by_map": {}, "dropped_unmapped": {"L": emodb["L"]}, "total": emodb["L"]},
        "test": {"dropped_by_map": {}, "dropped_unmapped": {"fru": iemocap["fru"]}, "total": iemocap["fru"]}}
    assert metrics["n_test"] == 60 - iemocap["fru"]
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["true"] for r in rows} == {"angry", "happy", "neutral", "sad"}
    assert sum(r["true"] == "happy" and r["split"] == "test" for r in rows) == iemocap["hap"] + iemocap["exc"]

    # --norm global: the statistics of the training corpus only (the test corpus is shifted by 5)
    train = load_feature_set(corpora / "emodb.npz")
    kept = train.subset(train.labels != "L")
    mean = np.asarray(json.loads((out / "normalization.json").read_text())["mean"])
    np.testing.assert_allclose(mean, kept.features.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_static_cross_corpus_with_a_csv_map_and_per_speaker_normalization(corpora, tmp_path):
    out = tmp_path / "iemocap-to-emodb"
    iemocap = count(corpora / "iemocap.npz", IEMOCAP)
    assert train_static.main(["--train", str(corpora / "iemocap.npz"), "--test", str(corpora / "emodb.npz"),
                              "--label-map", str(corpora / "map.csv"), "--drop-unmapped", "--norm", "speaker",
                              "--out", str(out), *FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == ["angry", "happy", "neutral", "sad"] and config["norm"] == "speaker"
    assert json.loads((out / "normalization.json").read_text()) == {"method": "speaker"}  # each speaker's own
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["label_map_dropped"]["train"]["dropped_by_map"] == {"fru": iemocap["fru"]}
    assert metrics["label_map_dropped"]["test"]["dropped_unmapped"] == {"L": count(corpora / "emodb.npz", EMODB)["L"]}


def test_one_corpus_with_a_map_and_cross_validation(corpora, tmp_path):
    out = tmp_path / "loso"
    assert train_static.main(["--data", str(corpora / "iemocap.npz"), "--cv", "kfold-speakers", "2", "--label-map",
                              str(corpora / "map.csv"), "--out", str(out), *FAST]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    fru = count(corpora / "iemocap.npz", IEMOCAP)["fru"]
    assert metrics["n_test"] == 60 - fru
    assert metrics["label_map_dropped"] == {"data": {"dropped_by_map": {"fru": fru}, "dropped_unmapped": {},
                                                     "total": fru}}
    assert json.loads((out / "fold-00" / "metrics.json").read_text())["label_map_dropped"] == \
        metrics["label_map_dropped"]


def test_the_shipped_map_names_every_label_of_every_recipe_and_the_recipe_finds_it():
    from serattn.experiment import Experiment, read_recipe
    from serattn.features.corpora import EMODB_EMOTIONS, RAVDESS_EMOTIONS
    from serattn.features.corpora_natural import CREMA_D_EMOTIONS, IEMOCAP_CATEGORIES, MSP_PODCAST_EMOTIONS

    root = Path(__file__).resolve().parents[2]
    label_map = read_label_map(root / "recipes" / "label_maps" / "four_classes.yaml")
    labels = {"emodb": EMODB_EMOTIONS, "ravdess": RAVDESS_EMOTIONS.values(), "iemocap": IEMOCAP_CATEGORIES,
              "msp-podcast": MSP_PODCAST_EMOTIONS, "crema-d": CREMA_D_EMOTIONS}
    for corpus_name, names in labels.items():
        table = label_map.lookup(corpus_name)
        assert set(names) == set(table), corpus_name  # each label mapped or dropped on purpose, none unknown
        assert {c for c in table.values() if c} == {"angry", "happy", "neutral", "sad"}, corpus_name
    experiment = Experiment.from_dict(read_recipe(root / "recipes" / "cross_corpus_iemocap_to_crema_d.yaml"))
    assert (root / experiment.data.label_map).is_file()
