import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.metrics import balanced_accuracy_score

from serattn.analysis.metrics import evaluate_predictions, format_confusion, format_report

CLASSES = ["A", "E", "N", "P", "R"]


@pytest.mark.filterwarnings("ignore:y_pred contains classes", "ignore:A single label")
@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(CLASSES), st.sampled_from(CLASSES)), min_size=1, max_size=60))
def test_ua_is_balanced_accuracy(pairs):
    true, predicted = map(np.array, zip(*pairs))
    metrics = evaluate_predictions(true, predicted, CLASSES)
    assert metrics["ua"] == pytest.approx(balanced_accuracy_score(true, predicted))
    assert metrics["wa"] == pytest.approx(np.mean(true == predicted))
    assert np.sum(metrics["confusion"]) == len(true)


def test_majority_class_scores_chance_ua_but_high_wa():
    true = np.array(["N"] * 56 + ["A"] * 9 + ["E"] * 21 + ["P"] * 7 + ["R"] * 7)
    metrics = evaluate_predictions(true, np.full(len(true), "N"), CLASSES)
    assert metrics["ua"] == pytest.approx(0.2)
    assert metrics["wa"] == pytest.approx(0.56)
    assert metrics["per_class_recall"]["N"] == 1.0 and metrics["per_class_recall"]["A"] == 0.0


def test_confusion_layout_rows_true_columns_predicted():
    metrics = evaluate_predictions(["A", "A", "E", "N"], ["A", "E", "E", "E"], ["A", "E", "N"])
    assert metrics["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    table = format_confusion(metrics).splitlines()
    assert table[1].split() == ["A", "1", "1", "0", "50.0"]
    assert table[-1].startswith("average recall (UA)") and table[-1].endswith("50.0")


def test_absent_class_has_no_recall_and_is_left_out_of_ua():
    metrics = evaluate_predictions(["A", "E"], ["A", "A"], ["A", "E", "N"])
    assert metrics["per_class_recall"]["N"] is None
    assert metrics["ua"] == pytest.approx(0.5)


def test_report_adds_the_fold_line_only_for_cross_validation():
    metrics = evaluate_predictions(["A", "E"], ["A", "A"], ["A", "E"])
    assert "UA over folds" not in format_report(metrics, "single split")
    report = format_report({**metrics, "ua_fold_mean": 0.5, "ua_fold_std": 0.125}, "cv").splitlines()
    assert report[0] == "cv" and report[-1] == "UA over folds 50.0 +- 12.5%"
