"""One ensemble run: finished runs' class probabilities (and predicted values) combined into a run folder.

``ensemble.py`` and ``--seeds ... --seed-ensemble`` (:func:`serattn.api.run`) call
:func:`write_ensemble`; the combinations themselves (members read and checked,
weights chosen on validation rows) are :mod:`serattn.training.fusion`.
"""

import sys

import numpy as np

from serattn.analysis.metrics import evaluate_predictions
from serattn.errors import InputError
from serattn.runs import folder as runs
from serattn.runs.record import RunMetrics
from serattn.targets import EMOTION, evaluate_values
from serattn.training import fusion, protocols


def config_of(members, classes, method, step):
    """config.json of the ensemble: the member runs, their models and seeds, the method."""
    seeds = [m.record.seed for m in members]
    return {
        "model": "ensemble",
        "method": method,
        "step": step if method == "weighted" else None,
        "member_runs": [str(m.path.resolve()) for m in members],
        "member_models": [m.record.describe_model() for m in members],
        "member_seeds": seeds,
        "seed": seeds[0] if len(set(map(str, seeds))) == 1 else None,
        "cv": members[0].record.cv,
        "classes": list(classes),
        "data_files": {f"member{i}_{name}": value for i, m in enumerate(members)
                       for name, value in m.record.data_files.items()},
        "feature_meta": fusion.common_items([m.record.feature_meta for m in members]),
        **runs.provenance(),
    }


def write_combination(run, result, members, config):
    """Write config.json, predictions.csv (val then test rows) and metrics.json of one combination."""
    classes = result["classes"]
    run.write_config({**config, "out": str(run), "weights": result["weights"].round(6)})
    parts = [(name, result[name]) for name in ("val", "test") if result[name] is not None]
    predicted = {name: np.asarray(classes)[part.probabilities.argmax(axis=1)] for name, part in parts}
    run.write_predictions(
        np.concatenate([p.ids for _, p in parts]),
        np.concatenate([p.speakers for _, p in parts]), np.concatenate([[name] * len(p.ids) for name, p in parts]),
        np.concatenate([p.true for _, p in parts]), np.concatenate([predicted[name] for name, _ in parts]),
        np.concatenate([p.probabilities for _, p in parts]), classes)
    test = result["test"]
    metrics = RunMetrics.of_ensemble(
        evaluate_predictions(test.true, predicted["test"], classes), val_ua=result["val_ua"],
        n_val=0 if result["val"] is None else len(result["val"].ids), weights=result["weights"].round(6).tolist(),
        member_test_ua=[evaluate_predictions(test.true, np.asarray(classes)[p.argmax(axis=1)], classes)["ua"]
                        for p in test.member_probabilities])
    run.write_metrics(metrics)
    return metrics


def write_value_combination(run, result, members, config):
    """config.json, predictions.csv (val then test rows, true_D and pred_D; true, predicted and p_<class> of
    multi-task runs) and metrics.json of dimensional or multi-task runs combined."""
    dims, classes = result["dimensions"], list(result["classes"])
    run.write_config({**config, "out": str(run), "target": ([EMOTION] if classes else []) + list(dims),
                      "weights": result["weights"].round(6)})
    rows = []
    for split in ("val", "test"):
        part = result[split]
        if part is None:
            continue
        for i, utterance in enumerate(part["ids"]):
            row = {"id": utterance, "speaker": part["speakers"][i], "split": split}
            if classes:
                probabilities = part["probabilities"][i]
                row.update(true=part["true_labels"][i], predicted=classes[int(probabilities.argmax())],
                           **{f"p_{c}": f"{p:.6f}" for c, p in zip(classes, probabilities)})
            for k, dim in enumerate(dims):
                row.update({f"true_{dim}": f"{part['true'][i, k]:.6g}", f"pred_{dim}": f"{part['predicted'][i, k]:.6f}"})
            rows.append(row)
    run.write_prediction_rows(rows)
    test, val = result["test"], result["val"]

    def classified(part):
        return np.asarray(classes)[part["probabilities"].argmax(axis=1)]

    metrics = RunMetrics.of_value_ensemble(
        tuple([EMOTION] if classes else []) + tuple(dims),
        evaluate_predictions(test["true_labels"], classified(test), classes) if classes else None,
        evaluate_values(test["true"], test["predicted"], dims),
        val_ua=evaluate_predictions(val["true_labels"], classified(val), classes)["ua"]
        if classes and val is not None else None,
        val_ccc=evaluate_values(val["true"], val["predicted"], dims)["ccc"] if val is not None else None,
        weights=result["weights"].round(6).tolist(),
        member_test_ccc=[evaluate_values(test["true"], p, dims)["ccc"] for p in test["member_predicted"]])
    run.write_metrics(metrics)
    return metrics


def combine(members, dimensional, method, step):
    """One combination of members (a fold's, or single-split runs'), values too where they are dimensional."""
    if dimensional:
        return fusion.combine_value_members(members, method, step)
    return fusion.combine_members(members, method, step)


def write_folds(parents, combined, run, dimensional, method, step, quiet=False):
    """Fold folders fold-KK in ``run``, then the pooled test rows and scores in ``run`` itself."""
    fold_runs, fold_weights = [], []
    for fold, members, result in combined:
        fold_run = runs.RunFolder.create(run.path / fold)  # locked and INCOMPLETE until written, like a training fold
        fold_runs.append(fold_run)
        fold_weights.append(result["weights"].round(6).tolist())
        if dimensional:
            write_value_combination(fold_run, result, members,
                                    config_of(members, list(members[0].record.classes), method, step))
            fold_run.mark_complete()
            continue
        write_combination(fold_run, result, members, config_of(members, result["classes"], method, step))
        fold_run.mark_complete()
        if not quiet:
            val_rows = 0 if result["val"] is None else len(result["val"].ids)
            val_ua = "-" if result["val_ua"] is None else f"{100 * result['val_ua']:.1f}%"
            print(f"{fold_run}: weights {', '.join(f'{w:.2f}' for w in result['weights'])} "
                  f"(val UA {val_ua} on {val_rows} rows)", file=sys.stderr)
    classes = list(parents[0].record.classes) if dimensional else fusion.check_classes(parents)
    metrics = protocols.write_pooled_run(run, fold_runs, classes).with_fold_weights(fold_weights)
    run.write_metrics(metrics)
    target = {"target": list(parents[0].record.target)} if dimensional else {}
    run.write_config({**config_of(parents, classes, method, step), "out": str(run),
                      "folds": [fold for fold, _, _ in combined], **target})
    return metrics


def write_ensemble(run_dirs, out, method=None, step=0.1, overwrite=False, quiet=False):
    """Combine finished runs (single-split runs on the same test set, or CV parents of the same folds)
    into the run folder ``out``; every member is checked before anything is written.

    Args:
        run_dirs: the member run folders (categorical, or all dimensional/multi-task).
        method: ``mean`` or ``weighted`` (weights on validation rows); default weighted for
            categorical runs, mean for dimensional ones.
        step: the weight grid's step (weighted).

    Returns:
        ``(metrics, title)`` of the combination's test rows.
    """
    dimensional = [fusion.is_dimensional(run_dir) for run_dir in run_dirs]
    if any(dimensional) and not all(dimensional):
        raise InputError("cannot combine dimensional runs (--target arousal,...) with categorical ones")
    dimensional = all(dimensional)
    method = method or ("mean" if dimensional else "weighted")

    # Members: every run checked before anything is written.
    read = fusion.read_value_member if dimensional else fusion.read_member
    parents = [read(path) for path in run_dirs]
    fusion.check_distinct(parents)
    if not dimensional:
        fusion.check_classes(parents)
    folds = fusion.cv_folds(parents)

    # Combine: weights from validation rows only, fold by fold for cross-validation parents.
    if folds:
        combined = []
        for fold in folds:
            members = [read(parent.path / fold) for parent in parents]
            combined.append((fold, members, combine(members, dimensional, method, step)))
    else:
        result = combine(parents, dimensional, method, step)

    # Save: a run folder like a training run's (fold-KK sub-folders for cross-validation).
    run = runs.RunFolder.create(out, overwrite)
    out = run.path
    try:
        if folds:
            metrics = write_folds(parents, combined, run, dimensional, method, step, quiet)
            title = f"{out}: pooled test predictions of {len(folds)} folds, {method} of {len(parents)} runs"
        elif dimensional:
            metrics = write_value_combination(run, result, parents,
                                              config_of(parents, list(parents[0].record.classes), method, step))
            title = f"{out}: test set, {method} of {len(parents)} dimensional runs, weights " + \
                ", ".join(f"{w:.2f}" for w in result["weights"])
        else:
            metrics = write_combination(run, result, parents, config_of(parents, result["classes"], method, step))
            title = f"{out}: test set, {method} of {len(parents)} runs, weights " + \
                ", ".join(f"{w:.2f}" for w in result["weights"])
    except BaseException:
        run.remove()
        raise
    run.mark_complete()
    return metrics, title
