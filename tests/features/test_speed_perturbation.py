"""Speed perturbation (extract_features.py --augment): the copies, and the rule that a copy
trains only where its source utterance trains, never in validation or test."""

import json

import numpy as np
import pytest

import extract_features
import train_attention_lstm
import train_static
from serattn.config import DataConfig
from serattn.errors import InputError
from serattn.features.extraction import to_sample_rate
from serattn.features.feature_set import load_feature_set, save_feature_set
from serattn.features.normalization import Normalization
from serattn.testing import add_copies, make_feature_set
from serattn.training.protocols import cross_validation_sets, hold_out_validation, load_train_test
from tests.fabricate import read_csv, write_manifest, write_wav

TINY = ["--units", "4", "--attention-units", "2", "--epochs", "1", "--batch-size", "16", "--recurrent-dropout", "0",
        "--quiet"]
FACTORS = ("0.9", "1.1")


def copies_of(ids):
    return {f"{i}#speed{f}" for i in ids for f in FACTORS}


def predictions(run):
    rows = read_csv(run / "predictions.csv")
    return {split: [r["id"] for r in rows if r["split"] == split] for split in ("train", "val", "test")}


# --- extraction ------------------------------------------------------------------------


def test_speed_factor_changes_duration_and_pitch_together():
    rate = 16_000
    tone = np.sin(2 * np.pi * 200 * np.arange(rate) / rate).astype(np.float32)
    assert to_sample_rate(tone, rate) is tone
    for speed in (0.9, 1.1):
        faster = to_sample_rate(tone, rate, speed)
        assert abs(len(faster) - rate / speed) <= 1
        peak_hz = np.abs(np.fft.rfft(faster)).argmax() * rate / len(faster)
        assert abs(peak_hz - 200 * speed) < 2


def test_extraction_adds_one_copy_per_factor_with_its_source_id_label_speaker_and_split(tmp_path, capsys):
    write_wav(tmp_path / "a.wav", 1.0, seed=0)
    write_wav(tmp_path / "b.wav", 1.2, rate=22_050, seed=1, f0=200.0)
    write_manifest(tmp_path / "m.csv", [{"path": "a.wav", "label": "A", "speaker": "s1", "split": "train"},
                                        {"path": "b.wav", "label": "N", "speaker": "s2", "split": "test"}])
    argv = ["--manifest", str(tmp_path / "m.csv"), "--jobs", "1", "--cache", str(tmp_path / "cache")]
    extract_features.main(argv + ["--out", str(tmp_path / "f.npz"), "--augment", "speed=0.9,1.1"])
    assert "extracted 2 of 2 files (0 from cache, 0 skipped), 0 duplicates dropped, 4 speed-perturbed copies" \
        in capsys.readouterr().out

    fs = load_feature_set(tmp_path / "f.npz")
    assert list(fs.ids) == ["a.wav", "b.wav", "a.wav#speed0.9", "b.wav#speed0.9", "a.wav#speed1.1", "b.wav#speed1.1"]
    assert list(fs.source_ids) == ["a.wav", "b.wav"] * 3
    assert list(fs.labels) == ["A", "N"] * 3 and list(fs.speakers) == ["s1", "s2"] * 3
    assert list(fs.split) == ["train", "test"] * 3
    assert list(fs.is_copy) == [False, False, True, True, True, True]
    assert fs.meta["augment"] == {"speed": [0.9, 1.1]} and fs.meta["augmented_copies"] == 4
    for k, factor in ((2, 0.9), (4, 1.1)):
        for source in (0, 1):
            assert abs(fs.lengths[k + source] - fs.lengths[source] / factor) <= 2
            shared = min(fs.lengths[k + source], fs.lengths[source])
            assert not np.allclose(fs.sequence(k + source)[:shared], fs.sequence(source)[:shared])

    # The factor is part of the cache key: a second run reads all 6 from the cache, and a run
    # without --augment reads the originals' entries, which augmentation left as they were.
    assert len(list((tmp_path / "cache").iterdir())) == 6
    extract_features.main(argv + ["--out", str(tmp_path / "g.npz"), "--augment", "speed=0.9,1.1", "--quiet"])
    np.testing.assert_array_equal(load_feature_set(tmp_path / "g.npz").features, fs.features)
    extract_features.main(argv + ["--out", str(tmp_path / "plain.npz"), "--quiet"])
    plain = load_feature_set(tmp_path / "plain.npz")
    assert plain.source_ids is None and not plain.has_copies
    np.testing.assert_array_equal(plain.features, fs.originals().features)
    assert len(list((tmp_path / "cache").iterdir())) == 6


def test_a_copy_too_short_to_extract_is_listed_and_its_source_kept(tmp_path, capsys):
    write_wav(tmp_path / "short.wav", 0.04)  # 2 frames; at double speed 20 ms, less than one frame
    write_manifest(tmp_path / "m.csv", [{"path": "short.wav", "label": "A", "speaker": "s1"}],
                   columns=("path", "label", "speaker"))
    extract_features.main(["--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "f.npz"), "--jobs", "1",
                           "--no-cache", "--augment", "speed=0.5,2"])
    assert "1 speed-perturbed copy (1 skipped)" in capsys.readouterr().out
    fs = load_feature_set(tmp_path / "f.npz")
    assert list(fs.ids) == ["short.wav", "short.wav#speed0.5"] and fs.meta["augmented_copies_skipped"] == 1
    assert [row["path"] for row in read_csv(tmp_path / "f.skipped.csv")] == ["short.wav#speed2"]


# --- the feature file ------------------------------------------------------------------


def test_feature_file_keeps_source_ids_and_checks_them(tmp_path):
    augmented = add_copies(make_feature_set(n=12))
    save_feature_set(augmented, tmp_path / "aug.npz")
    loaded = load_feature_set(tmp_path / "aug.npz")
    assert list(loaded.source_ids) == list(augmented.source_ids) and loaded.meta["format_version"] == 2
    assert len(loaded.originals()) == 12 and not loaded.originals().has_copies

    plain = make_feature_set(n=12)  # a file written before copies existed: no source_ids, no meta
    np.savez(tmp_path / "old.npz", features=plain.features, lengths=plain.lengths, ids=plain.ids,
             labels=plain.labels, speakers=plain.speakers)
    assert load_feature_set(tmp_path / "old.npz").source_ids is None

    arrays = dict(np.load(tmp_path / "aug.npz"))
    for change, message in [
        (lambda a: a["meta"].__setitem__((), json.dumps({"format_version": 3})), "format version 3, newer"),
        (lambda a: a["source_ids"].__setitem__(12, "u9999"), "names source 'u9999', which is not an original"),
        (lambda a: a["speakers"].__setitem__(12, "s99"), "has speaker 's99' but its source 'u0000' has"),
        (lambda a: a["split"].__setitem__(12, "test"), "has split 'test' but its source"),
    ]:
        broken = {key: value.copy() for key, value in arrays.items()}
        change(broken)
        np.savez(tmp_path / "bad.npz", **broken)
        with pytest.raises(InputError, match=message):
            load_feature_set(tmp_path / "bad.npz")


# --- protocols: where copies go ----------------------------------------------------------


@pytest.mark.parametrize("protocol, folds", [("loso", None), ("kfold-speakers", 3)])
def test_folds_and_validation_speakers_keep_copies_with_their_source_and_out_of_val_and_test(protocol, folds):
    plain = make_feature_set(n=48, speakers=6, split=False)
    augmented = add_copies(plain)
    classes = sorted(set(plain.labels))
    cv = DataConfig(cv=(protocol, folds))
    fold_pairs = zip(cross_validation_sets(augmented, cv, 1), cross_validation_sets(plain, cv, 1))
    for (train, test), (plain_train, plain_test) in fold_pairs:
        assert list(test.ids) == list(plain_test.ids) and not test.has_copies
        assert set(train.ids) == set(plain_train.ids) | copies_of(plain_train.ids)
        fit, val = hold_out_validation(train, classes, "1", 1, "out")
        plain_fit, plain_val = hold_out_validation(plain_train, classes, "1", 1, "out")
        assert list(val.ids) == list(plain_val.ids) and not val.has_copies
        assert set(fit.ids) == set(plain_fit.ids) | copies_of(plain_fit.ids)


def test_a_split_file_tests_on_its_originals_and_trains_on_the_copies_of_train(tmp_path):
    save_feature_set(add_copies(make_feature_set(n=30)), tmp_path / "aug.npz")
    train, test, _, _ = load_train_test(data=tmp_path / "aug.npz")
    assert not test.has_copies and set(test.split) == {"test"} and len(test) == 10
    originals = train.originals().ids
    assert set(train.split) == {"train"} and set(train.ids) == set(originals) | copies_of(originals)


@pytest.mark.parametrize("method", ["global", "speaker"])
def test_normalization_statistics_come_from_originals_only(method):
    plain = make_feature_set()
    augmented = add_copies(plain)
    normalized = Normalization.fit(augmented, method).apply(augmented)
    np.testing.assert_array_equal(normalized.originals().features,
                                  Normalization.fit(plain, method).apply(plain).features)


# --- the training scripts ----------------------------------------------------------------


def test_cv_with_copies_tests_on_the_utterances_of_the_run_without_them(tmp_path):
    plain = make_feature_set(n=36, speakers=3, classes=("A", "N"), split=False)
    save_feature_set(plain, tmp_path / "plain.npz")
    save_feature_set(add_copies(plain), tmp_path / "aug.npz")
    for name in ("plain", "aug"):
        train_attention_lstm.main(["--data", str(tmp_path / f"{name}.npz"), "--cv", "loso", "--val-speakers", "1",
                                   "--out", str(tmp_path / f"run-{name}"), *TINY])

    pooled = read_csv(tmp_path / "run-aug" / "predictions.csv")
    pooled_plain = read_csv(tmp_path / "run-plain" / "predictions.csv")
    assert sorted(r["id"] for r in pooled) == sorted(r["id"] for r in pooled_plain)
    assert not any("#" in r["id"] for r in pooled)
    for fold in ("fold-00", "fold-01", "fold-02"):
        with_copies, without = predictions(tmp_path / "run-aug" / fold), predictions(tmp_path / "run-plain" / fold)
        assert with_copies["test"] == without["test"] and with_copies["val"] == without["val"]
        assert not any("#" in i for i in with_copies["test"] + with_copies["val"])
        assert sorted(with_copies["train"]) == sorted(set(without["train"]) | copies_of(without["train"]))
        assert json.loads((tmp_path / "run-aug" / fold / "metrics.json").read_text())["n_test"] == 12
        assert json.loads((tmp_path / "run-aug" / fold / "config.json").read_text())["augmented_copies_used"] == 24


def test_copies_in_a_test_file_are_dropped_and_static_models_drop_every_copy(tmp_path):
    plain = make_feature_set(n=30, classes=("A", "N"))
    save_feature_set(add_copies(plain.subset(plain.split == "train")), tmp_path / "train.npz")
    save_feature_set(add_copies(plain.subset(plain.split == "test")), tmp_path / "test.npz")
    train_attention_lstm.main(["--train", str(tmp_path / "train.npz"), "--test", str(tmp_path / "test.npz"),
                               "--val-speakers", "0", "--out", str(tmp_path / "lstm"), *TINY])
    rows = predictions(tmp_path / "lstm")
    assert rows["test"] == list(plain.ids[plain.split == "test"])
    assert sorted(rows["train"]) == sorted(set(plain.ids[plain.split == "train"]) |
                                           copies_of(plain.ids[plain.split == "train"]))

    train_static.main(["--train", str(tmp_path / "train.npz"), "--test", str(tmp_path / "test.npz"), "--pool", "mean",
                       "--val-speakers", "1", "--grid", "C=1", "--out", str(tmp_path / "static"), "--quiet"])
    rows = predictions(tmp_path / "static")
    assert sorted(rows["train"] + rows["val"] + rows["test"]) == sorted(plain.ids)
