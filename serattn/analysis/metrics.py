"""UA, WA, per-class recall and the confusion matrix in the published layout.

UA (unweighted average recall) is the mean of the per-class recalls, i.e.
scikit-learn's ``balanced_accuracy_score``; WA (weighted accuracy) is plain
accuracy. With FAU Aibo's 56% neutral chunks a model that always says N has a WA
of 56% and a UA of 20%, which is why SER papers rank by UA.
"""

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score


def unweighted_average_recall(true_labels, predicted_labels):
    """UA as a scikit-learn score: mean recall over the classes present in ``true_labels``.

    The same number as ``balanced_accuracy_score``, without its warning when a prediction
    names a class the truth lacks (as on a validation fold missing a class).
    """
    present = np.unique(true_labels)
    return float(recall_score(true_labels, predicted_labels, labels=present, average="macro", zero_division=0.0))


def evaluate_predictions(true_labels, predicted_labels, classes):
    """Scores of predicted against true class labels.

    Args:
        true_labels: (N,) class labels (strings).
        predicted_labels: (N,) predicted class labels (strings).
        classes: the class order of the confusion matrix.

    Returns:
        dict with ``ua``, ``wa`` (fractions), ``classes``, ``per_class_recall``
        (class -> recall, None for a class absent from ``true_labels``),
        ``confusion`` (rows true, columns predicted, in ``classes`` order) and ``n``.
    """
    true_labels = np.asarray(true_labels, dtype=str)
    predicted_labels = np.asarray(predicted_labels, dtype=str)
    classes = [str(c) for c in classes]
    present = [c for c in classes if np.any(true_labels == c)]
    # Recall of each class in ``classes``; the mean over classes present in the
    # truth is balanced_accuracy_score (a class never true has no recall).
    recalls = recall_score(true_labels, predicted_labels, labels=classes, average=None, zero_division=0.0)
    return {
        "ua": float(np.mean([r for c, r in zip(classes, recalls) if c in present])) if present else None,
        "wa": float(accuracy_score(true_labels, predicted_labels)),
        "classes": classes,
        "per_class_recall": {c: (float(r) if c in present else None) for c, r in zip(classes, recalls)},
        "confusion": confusion_matrix(true_labels, predicted_labels, labels=classes).tolist(),
        "n": int(len(true_labels)),
    }


def scores_by_group(true_labels, predicted_labels, groups, classes):
    """:func:`evaluate_predictions` of each group's utterances (MSP-Podcast's Test1 and Test2), in sorted order.

    Args:
        groups: (N,) the group of each utterance (a partition name).

    Returns:
        ``{group: scores}``, each with ``ua``, ``wa``, ``per_class_recall``, ``confusion``, ``n``.
    """
    true_labels, predicted_labels = np.asarray(true_labels, dtype=str), np.asarray(predicted_labels, dtype=str)
    groups = np.asarray(groups, dtype=str)
    return {str(group): evaluate_predictions(true_labels[groups == group], predicted_labels[groups == group], classes)
            for group in np.unique(groups)}


def format_confusion(metrics, title=None):
    """The confusion matrix as the published table: counts, a recall column, a UA row."""
    classes = metrics["classes"]
    confusion = np.asarray(metrics["confusion"])
    width = max(7, *(len(c) + 2 for c in classes))
    lines = [title] if title else []
    lines.append("true\\pred".ljust(10) + "".join(c.rjust(width) for c in classes) + "recall %".rjust(10))
    for label, row in zip(classes, confusion):
        recall = metrics["per_class_recall"][label]
        recall_text = "-" if recall is None else f"{100 * recall:.1f}"
        lines.append(label.ljust(10) + "".join(str(v).rjust(width) for v in row) + recall_text.rjust(10))
    ua = metrics["ua"]
    lines.append("average recall (UA)".ljust(10 + width * len(classes))
                 + ("-" if ua is None else f"{100 * ua:.1f}").rjust(10))
    return "\n".join(lines)


def format_summary(metrics):
    """One line: UA, WA and the per-class recalls in percent."""
    recalls = " ".join(
        f"{c}={'-' if r is None else f'{100 * r:.1f}'}" for c, r in metrics["per_class_recall"].items())
    ua = "-" if metrics["ua"] is None else f"{100 * metrics['ua']:.1f}%"
    return f"UA {ua}  WA {100 * metrics['wa']:.1f}%  recall per class: {recalls}  (n={int(np.sum(metrics['confusion']))})"


def format_report(metrics, title):
    """What a training script prints at the end: the confusion table, the summary
    line, and for cross-validation the UA mean and std over folds."""
    if "dimensions" in metrics:  # a dimensional run, or the numeric half of a multi-task one
        from serattn.targets import format_values

        lines = [title]
        if "confusion" in metrics:
            lines += [format_confusion(metrics), format_summary(metrics)]
        lines.append(format_values(metrics))
        if "ccc_fold_mean" in metrics:
            lines.append(f"mean CCC over folds {metrics['ccc_fold_mean']:.3f} +- {metrics['ccc_fold_std']:.3f}")
        return "\n".join(lines)
    lines = [format_confusion(metrics, title=title), format_summary(metrics)]
    if "ua_fold_mean" in metrics:
        lines.append(f"UA over folds {100 * metrics['ua_fold_mean']:.1f} +- {100 * metrics['ua_fold_std']:.1f}%")
    for name, scores in metrics.get("test_sets", {}).items():  # --split-by: each test partition on its own
        lines.append(f"test set {name}: {format_summary(scores)}")
    for role, dropped in metrics.get("label_map_dropped", {}).items():
        if dropped["total"]:
            lines.append(f"--label-map dropped {dropped['total']} {role} utterance(s)")
    return "\n".join(lines)


def headline(metrics):
    """The one score a progress line shows: test UA, or mean CCC for a dimensional run."""
    if metrics.get("ua") is None and metrics.get("ccc") is not None:
        return f"test CCC {metrics['ccc']:.3f}"
    return "test UA -" if metrics.get("ua") is None else f"test UA {100 * metrics['ua']:.1f}%"
