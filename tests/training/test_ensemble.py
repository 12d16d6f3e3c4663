import csv
import json

import numpy as np
import pytest

import compare_runs
import ensemble as ensemble_script
import train_static
from serattn.training import fusion as ensemble
from serattn.runs import folder as runs
from serattn.features.feature_set import save_feature_set
from serattn.errors import InputError
from serattn.runs.reading import open_run
from serattn.testing import make_feature_set

CLASSES = ("A", "B", "C")


def probabilities_for(labels, right, classes=CLASSES, confidence=0.8):
    """Rows putting ``confidence`` on the true class where ``right``, else on the next class."""
    rows = np.full((len(labels), len(classes)), (1 - confidence) / (len(classes) - 1))
    for i, label in enumerate(labels):
        j = classes.index(label)
        rows[i, j if right[i] else (j + 1) % len(classes)] = confidence
    return rows


def write_member(path, val_right, test_right, classes=CLASSES, model="linear-svm", seed=1,
                 val_ids=None, test_ids=None, labels=None):
    """A finished single-split run folder with val and test rows of chosen correctness."""
    val_ids = [f"v{i:02d}" for i in range(len(val_right))] if val_ids is None else val_ids
    test_ids = [f"t{i:02d}" for i in range(len(test_right))] if test_ids is None else test_ids
    ids = list(val_ids) + list(test_ids)
    labels = [CLASSES[i % len(CLASSES)] for i in range(len(ids))] if labels is None else labels
    right = np.concatenate([val_right, test_right]).astype(bool)
    probabilities = probabilities_for(labels, right, classes)
    predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
    split = ["val"] * len(val_ids) + ["test"] * len(test_ids)
    path.mkdir(parents=True)
    runs.write_json(path / "config.json", {"model": model, "seed": seed, "classes": list(classes),
                                          "data_files": {}, "run_format": 1})
    runs.write_predictions(path / "predictions.csv", ids, [f"s{i % 2}" for i in range(len(ids))], split,
                           labels, predicted, probabilities, classes)
    n = len(val_ids)
    runs.write_json(path / "metrics.json", {
        "ua": float(np.mean(right[n:])), "wa": float(np.mean(right[n:])), "classes": list(classes),
        "per_class_recall": {c: 0.5 for c in classes}, "confusion": np.eye(len(classes), dtype=int).tolist()})
    return path


def write_cv_parent(path, folds, model="linear-svm"):
    """A CV parent whose fold k has val and test rows given by ``folds[k] = (val_right, test_right)``."""
    path.mkdir(parents=True)
    names = [f"fold-{k:02d}" for k in range(len(folds))]
    for k, (val_right, test_right) in enumerate(folds):
        write_member(path / names[k], val_right, test_right, model=model,
                     val_ids=[f"f{k}v{i:02d}" for i in range(len(val_right))],
                     test_ids=[f"f{k}t{i:02d}" for i in range(len(test_right))])
    runs.write_json(path / "config.json", {"model": model, "seed": 1, "classes": list(CLASSES), "data_files": {},
                                          "run_format": 1, "cv": ["loso", None], "folds": names})
    runs.write_json(path / "metrics.json", {"ua": 0.5, "wa": 0.5, "classes": list(CLASSES),
                                           "per_class_recall": {c: 0.5 for c in CLASSES},
                                           "confusion": np.eye(3, dtype=int).tolist()})
    with open(path / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "speaker", "split", "true", "predicted", *(f"p_{c}" for c in CLASSES), "fold"])
    return path


GOOD, BAD = np.ones(12, bool), np.zeros(12, bool)


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_weights_follow_validation_not_test(tmp_path):
    # A is right on every validation utterance and wrong on every test one; B the reverse.
    a = write_member(tmp_path / "a", GOOD, BAD)
    b = write_member(tmp_path / "b", BAD, GOOD)
    out = tmp_path / "ens"
    assert ensemble_script.main([str(a), str(b), "--method", "weighted", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # Every weight of A from 0.6 up gives A's decisions (val UA 1); the most even of them wins.
    assert metrics["weights"] == [0.6, 0.4]
    assert metrics["val_ua"] == 1.0 and metrics["ua"] == 0.0  # test labels never chose the weights
    assert metrics["member_test_ua"] == [0.0, 1.0] and metrics["n_val"] == 12 and metrics["n_test"] == 12
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "ensemble" and config["weights"] == [0.6, 0.4]
    assert config["member_runs"] == [str(a.resolve()), str(b.resolve())]
    assert config["member_models"] == ["linear-svm", "linear-svm"] and config["seed"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "predictions.csv"]


def test_mean_averages_the_probabilities(tmp_path):
    a = write_member(tmp_path / "a", GOOD, GOOD[:6])
    b = write_member(tmp_path / "b", BAD, BAD[:6])
    out = tmp_path / "mean"
    assert ensemble_script.main([str(a), str(b), "--method", "mean", "--out", str(out)]) == 0
    rows = [r for r in read_rows(out / "predictions.csv") if r["split"] == "test"]
    members = [{r["id"]: r for r in read_rows(run / "predictions.csv")} for run in (a, b)]
    for row in rows:
        for c in CLASSES:
            expected = np.mean([float(m[row["id"]][f"p_{c}"]) for m in members])
            assert float(row[f"p_{c}"]) == pytest.approx(expected, abs=1e-6)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["weights"] == [0.5, 0.5] and metrics["n_test"] == 6


def test_equally_good_weights_prefer_the_most_even(tmp_path):
    a = write_member(tmp_path / "a", GOOD, GOOD)
    b = write_member(tmp_path / "b", GOOD, BAD)
    c = write_member(tmp_path / "c", GOOD, BAD)
    result = ensemble.combine_members([ensemble.read_member(p) for p in (a, b, c)], "weighted")
    np.testing.assert_allclose(result["weights"], [0.3, 0.3, 0.4])  # one of the closest to 1/3 each


def test_members_with_another_class_order_are_aligned(tmp_path):
    a = write_member(tmp_path / "a", GOOD, GOOD)
    b = write_member(tmp_path / "b", GOOD, GOOD, classes=("C", "A", "B"))
    result = ensemble.combine_members([ensemble.read_member(p) for p in (a, b)], "mean")
    np.testing.assert_allclose(result["test"].member_probabilities[0], result["test"].member_probabilities[1])


def test_simplex_grid():
    grid = ensemble.simplex_grid(3, 0.1)
    assert grid.shape == (66, 3) and np.allclose(grid.sum(axis=1), 1) and grid.min() == 0
    assert len({tuple(row) for row in grid.round(6)}) == 66
    with pytest.raises(InputError, match="--step must divide 1"):
        ensemble.simplex_grid(2, 0.3)


def test_cv_parents_are_combined_fold_by_fold(tmp_path):
    # Fold 0's validation rows favour A, fold 1's favour B: each fold follows its own.
    a = write_cv_parent(tmp_path / "a", [(GOOD, BAD[:5]), (BAD, GOOD[:5])], model="mlp")
    b = write_cv_parent(tmp_path / "b", [(BAD, GOOD[:5]), (GOOD, BAD[:5])])
    out = tmp_path / "ens"
    assert ensemble_script.main([str(a), str(b), "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fold_weights"] == [[0.6, 0.4], [0.4, 0.6]] and metrics["ua"] == 0.0
    assert len(metrics["folds"]) == 2 and metrics["n_test"] == 10 and "ua_fold_mean" in metrics
    for fold in ("fold-00", "fold-01"):
        assert sorted(p.name for p in (out / fold).iterdir()) == ["config.json", "metrics.json", "predictions.csv"]
    pooled = read_rows(out / "predictions.csv")
    assert [r["fold"] for r in pooled] == ["0"] * 5 + ["1"] * 5 and {r["split"] for r in pooled} == {"test"}
    config = json.loads((out / "config.json").read_text())
    assert config["folds"] == ["fold-00", "fold-01"] and config["cv"] == ["loso", None]
    assert config["member_models"] == ["mlp", "linear-svm"]
    assert compare_runs.main([str(out), str(out / "fold-00")]) == 0
    assert not (out / "INCOMPLETE").exists() and open_run(out).metrics()["ua"] == 0.0


def test_static_cv_runs_combine_end_to_end(tmp_path):
    data = tmp_path / "functionals.npz"
    save_feature_set(make_feature_set(n=72, dim=6, classes=CLASSES, speakers=6, min_length=1, max_length=1,
                                      signal=2.0, seed=5), data)
    members = []
    for model, grid in [("linear-svm", "C=0.1"), ("logreg", "C=1")]:
        members.append(tmp_path / model)
        train_static.main(["--data", str(data), "--cv", "kfold-speakers", "2", "--model", model, "--grid", grid,
                           "--out", str(members[-1]), "--quiet"])
    out = tmp_path / "ens"
    assert ensemble_script.main([*map(str, members), "--out", str(out), "--step", "0.25", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["fold_weights"]) == 2 and all(len(w) == 2 for w in metrics["fold_weights"])
    assert metrics["ua"] > 0.5 and metrics["n_test"] == 72
    fold = json.loads((out / "fold-00" / "metrics.json").read_text())
    assert fold["n_val"] > 0 and fold["val_ua"] is not None


def test_mismatched_runs_are_refused(tmp_path):
    a = write_member(tmp_path / "a", GOOD, GOOD)
    other_test = write_member(tmp_path / "other-test", GOOD, GOOD, test_ids=[f"x{i}" for i in range(12)])
    other_classes = write_member(tmp_path / "other-classes", GOOD, GOOD, classes=("A", "B", "D"),
                                 labels=[("A", "B", "D")[i % 3] for i in range(24)])
    other_labels = write_member(tmp_path / "other-labels", GOOD, GOOD, labels=["B", "C", "A"] * 8)
    no_val = write_member(tmp_path / "no-val", [], GOOD)
    cv = write_cv_parent(tmp_path / "cv", [(GOOD, GOOD)])
    cv3 = write_cv_parent(tmp_path / "cv3", [(GOOD, GOOD)] * 3)
    out = str(tmp_path / "out")
    cases = [
        ([a, other_test], [], "tested on different utterances: .* 12 only in the first, 12 only in the other"),
        ([a, other_classes], [], "runs predict different classes: .* has A, B, C, .* has A, B, D"),
        ([a, other_labels], [], "disagree on the true label of 't00'"),
        ([a, no_val], ["--method", "weighted"], "no utterance is a validation row of every run .* --method mean"),
        ([a, cv], [], "cannot combine a cross-validation run with a single-split run"),
        ([cv, cv3], [], "runs have different folds"),
        ([a, tmp_path / "missing"], [], "does not exist"),
    ]
    for members, flags, message in cases:
        with pytest.raises(InputError, match=message):
            ensemble_script.main([*map(str, members), *flags, "--out", out])
        assert not (tmp_path / "out").exists()
    assert ensemble_script.main([str(a), str(no_val), "--method", "mean", "--out", out]) == 0  # mean needs no val
    (a / "INCOMPLETE").write_text("")
    with pytest.raises(InputError, match="is incomplete"):
        ensemble_script.main([str(a), str(no_val), "--out", str(tmp_path / "out2")])
    with pytest.raises((SystemExit, InputError)):  # argparse usage error
        ensemble_script.main([str(no_val), "--out", str(tmp_path / "out3")])


def test_missing_probability_columns_are_refused(tmp_path):
    a = write_member(tmp_path / "a", GOOD, GOOD)
    b = write_member(tmp_path / "b", GOOD, GOOD)
    rows = read_rows(b / "predictions.csv")
    with open(b / "predictions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[k for k in rows[0] if k != "p_C"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(InputError, match="lacks the probability column"):
        ensemble_script.main([str(a), str(b), "--out", str(tmp_path / "out")])
