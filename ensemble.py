"""Combine the class probabilities of runs on the same test utterances into a run folder of its own.

    python ensemble.py results/emodb/att-tanh-seed1 results/emodb/linear-svm --out results/emodb/ens
    python ensemble.py results/tanh_seed1 results/mlp-seed1 --method mean --out results/ens-mean
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from serattn.training import fusion as ensemble
from serattn.training import protocols
from serattn.runs import folder as runs
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.analysis.metrics import evaluate_predictions, format_report
from serattn.targets import evaluate_values


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="finished run folders (train_attention_lstm.py, train_static.py), all single-split "
                             "runs on the same test set or all cross-validation parents of the same --cv")
    combination = parser.add_argument_group("combination")
    combination.add_argument("--method", default=None, choices=ensemble.METHODS,
                             help="mean: average the probabilities (and predicted values); weighted: weights on a "
                                  "simplex grid that maximize UA on the validation rows every run held out (mean CCC "
                                  "for dimensional runs; both, weighted as the loss, for multi-task runs) "
                                  "(default: weighted; dimensional and multi-task runs: mean)")
    combination.add_argument("--step", type=float, default=0.1,
                             help="weighted only: grid step of the weights, dividing 1 (default: %(default)s)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", required=True, help="run folder to create")
    output.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    output.add_argument("--quiet", action="store_true", help="no per-fold weight lines")
    output.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    args = parser.parse_args(argv)
    if len(args.run_dirs) < 2:
        parser.error(f"give at least 2 run folders to combine, got {len(args.run_dirs)}")
    resolved = [Path(d).resolve() for d in args.run_dirs]
    if len(set(resolved)) != len(resolved):
        parser.error("a run folder is given twice")
    out = Path(args.out).resolve()
    for run_dir, path in zip(args.run_dirs, resolved):
        if out == path or path in out.parents or out in path.parents:
            parser.error(f"--out '{args.out}' is, is inside, or holds the run '{run_dir}' to combine; "
                         f"write the ensemble elsewhere")
    ensemble.check_step(args.step)
    runs.check_output(args.out, args.overwrite)  # before reading the members
    dimensional = [ensemble.is_dimensional(run_dir) for run_dir in args.run_dirs]
    if any(dimensional) and not all(dimensional):
        raise InputError("cannot combine dimensional runs (--target arousal,...) with categorical ones")
    args.dimensional = all(dimensional)
    args.method = args.method or ("mean" if args.dimensional else "weighted")
    return args


def config_of(args, members, classes):
    """config.json of the ensemble: the member runs, their models and seeds, the method."""
    seeds = [m.record.seed for m in members]
    return {
        "model": "ensemble",
        "method": args.method,
        "step": args.step if args.method == "weighted" else None,
        "member_runs": [str(m.path.resolve()) for m in members],
        "member_models": [m.record.describe_model() for m in members],
        "member_seeds": seeds,
        "seed": seeds[0] if len(set(map(str, seeds))) == 1 else None,
        "cv": members[0].record.cv,
        "classes": list(classes),
        "data_files": {f"member{i}_{name}": value for i, m in enumerate(members)
                       for name, value in m.record.data_files.items()},
        "feature_meta": ensemble.common_items([m.record.feature_meta for m in members]),
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
    metrics = evaluate_predictions(test.true, predicted["test"], classes)
    metrics["n_test"] = metrics.pop("n")
    metrics["best_epoch"] = None
    metrics["val_ua"] = result["val_ua"]
    metrics["n_val"] = 0 if result["val"] is None else len(result["val"].ids)
    metrics["weights"] = result["weights"].round(6).tolist()
    metrics["member_test_ua"] = [
        evaluate_predictions(test.true, np.asarray(classes)[p.argmax(axis=1)], classes)["ua"]
        for p in test.member_probabilities]
    run.write_metrics(metrics)
    return metrics


def write_value_combination(run, result, members, config):
    """config.json, predictions.csv (val then test rows, true_D and pred_D; true, predicted and p_<class> of
    multi-task runs) and metrics.json of dimensional or multi-task runs combined."""
    dims, classes = result["dimensions"], list(result["classes"])
    run.write_config({**config, "out": str(run), "target": (["emotion"] if classes else []) + list(dims),
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
    test = result["test"]
    metrics = {"target": (["emotion"] if classes else []) + list(dims)}
    if classes:
        metrics.update(evaluate_predictions(test["true_labels"], np.asarray(classes)[test["probabilities"].argmax(axis=1)],
                                            classes))
        metrics.pop("n")
        metrics["val_ua"] = evaluate_predictions(result["val"]["true_labels"], np.asarray(classes)[
            result["val"]["probabilities"].argmax(axis=1)], classes)["ua"] if result["val"] is not None else None
    metrics.update(evaluate_values(test["true"], test["predicted"], dims))
    metrics["n_test"] = metrics.pop("n")
    metrics["best_epoch"] = None
    metrics["val_ccc"] = evaluate_values(result["val"]["true"], result["val"]["predicted"], dims)["ccc"] \
        if result["val"] is not None else None
    metrics["weights"] = result["weights"].round(6).tolist()
    metrics["member_test_ccc"] = [evaluate_values(test["true"], p, dims)["ccc"] for p in test["member_predicted"]]
    run.write_metrics(metrics)
    return metrics


def combine_folds(args, parents, folds):
    """Combine CV parents fold by fold; each fold's weights come from its own validation rows.

    Returns:
        [(fold name, members, result), ...], all checked before anything is written.
    """
    combined = []
    for fold in folds:
        if args.dimensional:
            members = [ensemble.read_value_member(parent.path / fold) for parent in parents]
            combined.append((fold, members, ensemble.combine_value_members(members, args.method, args.step)))
        else:
            members = [ensemble.read_member(parent.path / fold) for parent in parents]
            combined.append((fold, members, ensemble.combine_members(members, args.method, args.step)))
    return combined


def write_folds(args, parents, combined, run):
    """Fold folders fold-KK in ``run``, then the pooled test rows and scores in ``run`` itself."""
    fold_runs, fold_weights = [], []
    for fold, members, result in combined:
        fold_run = runs.RunFolder.create(run.path / fold)  # locked and INCOMPLETE until written, like a training fold
        fold_runs.append(fold_run)
        fold_weights.append(result["weights"].round(6).tolist())
        if args.dimensional:
            write_value_combination(fold_run, result, members, config_of(args, members, list(members[0].record.classes)))
            fold_run.mark_complete()
            continue
        write_combination(fold_run, result, members, config_of(args, members, result["classes"]))
        fold_run.mark_complete()
        if not args.quiet:
            val_rows = 0 if result["val"] is None else len(result["val"].ids)
            val_ua = "-" if result["val_ua"] is None else f"{100 * result['val_ua']:.1f}%"
            print(f"{fold_run}: weights {', '.join(f'{w:.2f}' for w in result['weights'])} "
                  f"(val UA {val_ua} on {val_rows} rows)", file=sys.stderr)
    classes = list(parents[0].record.classes) if args.dimensional else ensemble.check_classes(parents)
    metrics = protocols.write_pooled_run(run, fold_runs, classes)
    metrics["fold_weights"] = fold_weights  # each fold's config.json names its own
    run.write_metrics(metrics)
    target = {"target": list(parents[0].record.target)} if args.dimensional else {}
    run.write_config({**config_of(args, parents, classes), "out": str(run),
                      "folds": [fold for fold, _, _ in combined], **target})
    return metrics


def main(argv=None):
    args = parse_args(argv)

    # Members: every run checked before anything is written.
    read = ensemble.read_value_member if args.dimensional else ensemble.read_member
    parents = [read(path) for path in args.run_dirs]
    ensemble.check_distinct(parents)
    if not args.dimensional:
        ensemble.check_classes(parents)
    folds = ensemble.cv_folds(parents)

    # Combine: weights from validation rows only, fold by fold for cross-validation parents.
    if folds:
        combined = combine_folds(args, parents, folds)
    elif args.dimensional:
        result = ensemble.combine_value_members(parents, args.method, args.step)
    else:
        result = ensemble.combine_members(parents, args.method, args.step)

    # Save: a run folder like a training run's (fold-KK sub-folders for cross-validation).
    run = runs.RunFolder.create(args.out, args.overwrite)
    out = run.path
    try:
        if folds:
            metrics = write_folds(args, parents, combined, run)
            title = f"{out}: pooled test predictions of {len(folds)} folds, {args.method} of {len(parents)} runs"
        elif args.dimensional:
            metrics = write_value_combination(run, result, parents, config_of(args, parents, list(parents[0].record.classes)))
            title = f"{out}: test set, {args.method} of {len(parents)} dimensional runs, weights " + \
                ", ".join(f"{w:.2f}" for w in result["weights"])
        else:
            metrics = write_combination(run, result, parents, config_of(args, parents, result["classes"]))
            title = f"{out}: test set, {args.method} of {len(parents)} runs, weights " + \
                ", ".join(f"{w:.2f}" for w in result["weights"])
    except BaseException:
        run.remove()
        raise
    run.mark_complete()
    print(format_report(metrics, title))
    return 0


if __name__ == "__main__":
    run_main(main)
