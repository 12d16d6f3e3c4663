"""What a run predicts: the emotion class, numeric dimensions (arousal, valence...), or both.

``--target emotion`` (the default) is the categorical pipeline, unchanged. Any other
name is a numeric manifest column of the feature set (``column_NAME`` in the .npz):
``--target arousal,valence,dominance`` trains a regression head after the same pooling,
``--target emotion,arousal,valence`` a softmax and a regression head side by side
(multi-task). Dimensional runs are scored by the concordance correlation coefficient
(CCC, Lin 1989), as MSP-Podcast and the AVEC challenges are, next to Pearson's r and
the mean squared error.

This module is TF-free: the configs check targets with it before any data is read,
and the metrics here score predictions.csv files.
"""

import math
import re

import numpy as np

from serattn.errors import InputError

EMOTION = "emotion"  # the categorical target: the feature set's labels
TARGET_LOSSES = ("ccc", "mse")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_targets(value) -> tuple[str, ...]:
    """``"emotion,arousal"``, ``["arousal", "valence"]`` or None -> a tuple of target names, checked."""
    if value is None or value == "" or value == []:
        return (EMOTION,)
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else [str(n).strip() for n in value]
    for name in names:
        if not NAME.fullmatch(name):
            raise InputError(f"--target: '{name}' is not a column name (expected e.g. emotion or arousal,valence)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"--target: '{repeated[0]}' is given twice")
    return tuple(names)


def dimensions(targets) -> tuple[str, ...]:
    """The numeric targets (every target but ``emotion``), in the order given."""
    return tuple(t for t in targets if t != EMOTION)


def parse_loss_weights(spec, targets) -> dict[str, float]:
    """``"emotion=1,arousal=0.5"`` -> {target: weight} for every target (1 where not given), checked."""
    weights = {t: 1.0 for t in targets}
    if not spec:
        return weights
    for item in str(spec).split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or not math.isfinite(weight) or weight < 0:
            raise InputError(f"--loss-weights: expected TARGET=WEIGHT,... with finite, non-negative weights, "
                             f"got '{item}'")
        if name not in weights:
            raise InputError(f"--loss-weights: '{name}' is not a target of --target {','.join(targets)}")
        weights[name] = weight
    if not sum(weights.values()):
        raise InputError("--loss-weights: at least one target needs a positive weight")
    return weights


# --- scores ---------------------------------------------------------------------------


def concordance(true, predicted) -> float | None:
    """Lin's concordance correlation coefficient: 2 cov / (var_t + var_p + (mean_t - mean_p)^2).

    Unlike Pearson's r it drops when the predictions are shifted or scaled; 1 only for
    predictions equal to the truth. Population (1/N) moments, as the AVEC scripts use.
    """
    true, predicted = np.asarray(true, float), np.asarray(predicted, float)
    if len(true) < 2:
        return None
    covariance = np.mean((true - true.mean()) * (predicted - predicted.mean()))
    denominator = true.var() + predicted.var() + (true.mean() - predicted.mean()) ** 2
    return float(2 * covariance / denominator) if denominator > 0 else None


def pearson(true, predicted) -> float | None:
    true, predicted = np.asarray(true, float), np.asarray(predicted, float)
    if len(true) < 2 or true.std() == 0 or predicted.std() == 0:
        return None
    return float(np.corrcoef(true, predicted)[0, 1])


def evaluate_values(true, predicted, dims) -> dict:
    """Per-dimension CCC, Pearson's r and MSE of (N, K) true and predicted values, and the mean CCC.

    Returns:
        ``{"ccc": mean CCC over dimensions, "dimensions": {dim: {"ccc", "pearson", "mse"}}, "n"}``.
    """
    true, predicted = np.asarray(true, float).reshape(-1, len(dims)), np.asarray(predicted, float).reshape(-1, len(dims))
    scores = {}
    for k, dim in enumerate(dims):
        scores[dim] = {"ccc": concordance(true[:, k], predicted[:, k]),
                       "pearson": pearson(true[:, k], predicted[:, k]),
                       "mse": float(np.mean((true[:, k] - predicted[:, k]) ** 2)) if len(true) else None}
    cccs = [s["ccc"] for s in scores.values() if s["ccc"] is not None]
    return {"ccc": float(np.mean(cccs)) if cccs else None, "dimensions": scores, "n": int(len(true))}


def dimensions_of_rows(rows) -> tuple[str, ...]:
    """The dimensions whose true_/pred_ columns a predictions.csv has (its first row's keys)."""
    keys = list(rows[0]) if rows else []
    return tuple(k[len("pred_"):] for k in keys if k.startswith("pred_") and f"true_{k[len('pred_'):]}" in keys)


def evaluate_value_rows(rows, dims) -> dict:
    """:func:`evaluate_values` of predictions.csv rows (their true_D and pred_D columns)."""
    true = [[float(r[f"true_{d}"]) for d in dims] for r in rows]
    predicted = [[float(r[f"pred_{d}"]) for d in dims] for r in rows]
    return evaluate_values(np.array(true).reshape(-1, len(dims)), np.array(predicted).reshape(-1, len(dims)), dims)


def format_values(metrics) -> str:
    """One line: mean CCC and per dimension CCC, Pearson and MSE."""
    def number(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    parts = [f"{dim}: CCC {number(s['ccc'])} r {number(s['pearson'])} MSE {number(s['mse'], 4)}"
             for dim, s in metrics["dimensions"].items()]
    return f"mean CCC {number(metrics['ccc'])}  " + "  ".join(parts) + f"  (n={metrics.get('n', metrics.get('n_test'))})"


def selection_weights(targets, loss_weights=None) -> dict[str, float]:
    """The validation metrics that pick the best epoch, and their weights: ``{"ua": 1}`` for a
    categorical run; each dimension's CCC (``ccc_arousal``...), and UA in a multi-task run,
    weighted as in the loss (equal by default: the mean CCC over dimensions)."""
    weights = parse_loss_weights(loss_weights, targets)
    chosen = {("ua" if t == EMOTION else f"ccc_{t}"): w for t, w in weights.items() if w > 0}
    return chosen or {"ua": 1.0}


def selection_score(logs, weights) -> float | None:
    """The weighted mean of the validation metrics in ``weights`` (``val_`` + key in Keras' logs)."""
    values = [(logs or {}).get(f"val_{key}") for key in weights]
    if any(v is None for v in values):
        return None
    return float(sum(w * v for w, v in zip(weights.values(), values)) / sum(weights.values()))
