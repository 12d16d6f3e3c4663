import csv
import json
import shutil

import numpy as np
import pytest

import train_attention_lstm
from serattn.errors import InputError
from serattn.config import parse_cv
from serattn.features.feature_set import save_feature_set
from serattn.testing import make_feature_set
from serattn.training.protocols import speaker_folds

TINY = ["--units", "8", "--attention-units", "4", "--epochs", "3", "--batch-size", "16", "--quiet"]


def test_folds_keep_test_speakers_out_of_training():
    speakers = np.repeat(["a", "b", "c", "d"], 3)
    loso = speaker_folds(speakers, "loso")
    assert len(loso) == 4
    for train, test in loso:
        assert len(set(speakers[test])) == 1 and not set(speakers[test]) & set(speakers[train])
    kfold = speaker_folds(speakers, "kfold-speakers", 2)
    assert sorted(np.concatenate([test for _, test in kfold]).tolist()) == list(range(12))
    with pytest.raises(InputError, match="needs at least 5 speakers; the data has 4"):
        speaker_folds(speakers, "kfold-speakers", 5)


def test_parse_cv():
    assert parse_cv(["loso"]) == ("loso", None)
    assert parse_cv(["kfold-speakers", "5"]) == ("kfold-speakers", 5)
    assert parse_cv(["loso", None]) == ("loso", None)  # as saved in config.json
    with pytest.raises(InputError, match="expected 'loso' or 'kfold-speakers K'"):
        parse_cv(["kfold-speakers"])


@pytest.fixture(scope="module")
def cv_run(feature_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "cv"
    train_attention_lstm.main(["--data", str(feature_file), "--cv", "kfold-speakers", "3", "--out", str(out), *TINY])
    return out


def test_cross_validation_pools_every_fold(cv_run, feature_file):
    metrics = json.loads((cv_run / "metrics.json").read_text())
    folds = metrics["folds"]
    assert len(folds) == 3 and metrics["n_test"] == 150 == sum(f["n"] for f in folds)
    tested = [s for f in folds for s in f["test_speakers"]]
    assert len(tested) == len(set(tested)) == 9  # every speaker tested exactly once
    assert metrics["ua_fold_mean"] == pytest.approx(np.mean([f["ua"] for f in folds]))
    assert np.sum(metrics["confusion"]) == 150
    for k in range(3):
        config = json.loads((cv_run / f"fold-{k:02d}" / "config.json").read_text())
        assert not set(config["test_speakers"]) & set(config["val_speakers_used"])
    with np.load(cv_run / "attention.npz") as npz:
        assert len(npz["ids"]) == 150 and set(npz["split"]) == {"test"}


def test_cross_validation_resumes_fold_by_fold(cv_run, tmp_path):
    copy = tmp_path / "cv"
    shutil.copytree(cv_run, copy)
    shutil.rmtree(copy / "fold-02")
    (copy / "metrics.json").unlink()
    (copy / "INCOMPLETE").write_text("")
    kept = (copy / "fold-00" / "model.keras").stat().st_mtime_ns
    train_attention_lstm.main(["--resume", str(copy)])
    assert (copy / "fold-00" / "model.keras").stat().st_mtime_ns == kept  # finished folds are not retrained
    assert json.loads((copy / "metrics.json").read_text()) == json.loads((cv_run / "metrics.json").read_text())


@pytest.mark.parametrize("change", ["no folds.csv", "other folds"])
def test_resume_refuses_folds_other_than_the_recorded_ones(cv_run, tmp_path, change):
    copy = tmp_path / "cv"
    shutil.copytree(cv_run, copy)
    shutil.rmtree(copy / "fold-02")
    (copy / "metrics.json").unlink()
    (copy / "INCOMPLETE").write_text("")
    config_before = (copy / "config.json").read_text()
    if change == "no folds.csv":  # started before kfold-speakers shuffled: its folds were others
        (copy / "folds.csv").unlink()
        message = "has no folds.csv: it was started before kfold-speakers shuffled speakers"
    else:
        rows = list(csv.DictReader(open(copy / "folds.csv", newline="")))
        rows[0]["test_speaker"], rows[-1]["test_speaker"] = rows[-1]["test_speaker"], rows[0]["test_speaker"]
        with open(copy / "folds.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        message = "differ from the folds this command plans"
    with pytest.raises(InputError, match=message):
        train_attention_lstm.main(["--resume", str(copy)])
    assert not (copy / "fold-02").exists() and (copy / "config.json").read_text() == config_before


def test_seeds_write_sibling_runs_and_basic_lstm_trains(feature_file, tmp_path):
    out = tmp_path / "basic"
    train_attention_lstm.main(["--data", str(feature_file), "--model", "basic-lstm", "--pooling", "last",
                               "--seeds", "1,2", "--out", str(out), *TINY])
    first, second = (json.loads((tmp_path / f"basic-seed{k}" / "config.json").read_text()) for k in (1, 2))
    assert (first["seed"], second["seed"]) == (1, 2) and first["model"] == "basic-lstm"
    assert (tmp_path / "basic-seed1" / "metrics.json").read_text() != (tmp_path / "basic-seed2" / "metrics.json").read_text()
    with np.load(tmp_path / "basic-seed1" / "attention.npz") as npz:  # uniform weights stand in for attention
        first_utterance = npz["weights"][:npz["lengths"][0]]
        np.testing.assert_allclose(first_utterance, 1 / npz["lengths"][0], rtol=1e-5)


def test_kfold_speakers_shuffles_with_the_seed_and_balances_on_request(tmp_path):
    speakers = np.repeat([f"Actor_{i:02d}" for i in range(1, 13)], 4)
    tested = lambda pairs: [sorted(set(speakers[test])) for _, test in pairs]  # noqa: E731
    one, again, other = (speaker_folds(speakers, "kfold-speakers", 3, seed=s) for s in (1, 1, 2))
    assert tested(one) == tested(again) and tested(one) != tested(other)
    for pairs in (one, other):  # every speaker tested once, never trained on in its fold
        assert sorted(s for fold in tested(pairs) for s in fold) == sorted(set(speakers))
        assert all(not set(speakers[train]) & set(speakers[test]) for train, test in pairs)
    # balanced by a speaker attribute (RAVDESS gender): every fold 2 male + 2 female actors
    gender = {s: "male" if int(s[-2:]) % 2 else "female" for s in speakers}
    for _, test in speaker_folds(speakers, "kfold-speakers", 3, seed=4, attribute=gender):
        assert sorted(gender[s] for s in set(speakers[test])) == ["female"] * 2 + ["male"] * 2
    # repeated k-fold: R partitions of the speakers, each different
    repeated = speaker_folds(speakers, "kfold-speakers", 3, seed=1, repeats=2)
    assert len(repeated) == 6 and tested(repeated[:3]) == tested(one) and tested(repeated[3:]) != tested(one)
    # class balance: StratifiedGroupKFold keeps each fold's class shares near the corpus's
    labels = np.array(["A", "B"] * 24)
    labels[:16] = "A"
    for _, test in speaker_folds(speakers, "kfold-speakers", 3, seed=1, labels=labels):
        assert 0.5 < np.mean(labels[test] == "A") < 0.8


def test_stratify_speakers_by_reads_ravdess_gender_and_manifest_columns(tmp_path):
    from serattn.training.protocols import speaker_attribute

    actors = make_feature_set(n=8, speakers=4, split=False)
    actors = type(actors).from_sequences(actors.sequences(), ids=actors.ids, labels=actors.labels,
                                         speakers=[f"Actor_{i % 4 + 1:02d}" for i in range(8)],
                                         feature_names=actors.feature_names, meta={"corpus": "ravdess"})
    assert speaker_attribute(actors, "gender") == {"Actor_01": "male", "Actor_02": "female", "Actor_03": "male",
                                                   "Actor_04": "female"}
    data = make_feature_set(n=24, speakers=4, split=False)
    with pytest.raises(InputError, match="not extracted from a CSV manifest"):
        speaker_attribute(data, "age")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,speaker,group\n" + "".join(f"{i}.wav,A,s{i % 4:02d},g{i % 2}\n" for i in range(8)))
    data.meta["manifest"] = str(manifest)
    assert speaker_attribute(data, "group") == {"s00": "g0", "s01": "g1", "s02": "g0", "s03": "g1"}
    with pytest.raises(InputError, match="has no column 'age'; columns: path, label, speaker, group"):
        speaker_attribute(data, "age")
    manifest.write_text("path,label,speaker,group\na.wav,A,s00,x\nb.wav,A,s00,y\n")
    with pytest.raises(InputError, match="several values for speaker 's00'"):
        speaker_attribute(data, "group")


def test_repeated_kfold_writes_folds_and_per_repeat_ua(tmp_path):
    import train_static

    data = make_feature_set(n=72, dim=6, classes=("A", "B", "C"), speakers=6, min_length=1, max_length=1,
                            signal=3.0, split=False)
    path = tmp_path / "functionals.npz"
    save_feature_set(data, path)
    out = tmp_path / "run"
    train_static.main(["--data", str(path), "--cv", "kfold-speakers", "3", "--repeats", "2", "--stratify-speakers-by",
                       "classes", "--grid", "C=1", "--val-speakers", "0", "--quiet", "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["folds"]) == 6 and metrics["n_test"] == 144 and len(metrics["repeats"]) == 2
    assert metrics["ua_repeat_mean"] == pytest.approx(np.mean([r["ua"] for r in metrics["repeats"]]))
    with open(out / "folds.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for repeat in ("0", "1"):  # each repeat tests every speaker exactly once
        assert sorted(r["test_speaker"] for r in rows if r["repeat"] == repeat) == [f"s{i:02d}" for i in range(6)]
    with pytest.raises(InputError, match="apply to --cv kfold-speakers K only"):
        train_static.main(["--data", str(path), "--cv", "loso", "--repeats", "2", "--out", str(tmp_path / "x")])
