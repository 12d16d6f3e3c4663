"""Train a static scikit-learn model (linear or RBF SVM, logistic regression, MLP) on utterance functionals.

    python train_static.py --data data/emodb_2s_func.npz --cv loso --model linear-svm --out results/emodb/lsvm
    python train_static.py --data data/emodb_2s_func.npz --cv loso --model mlp --seeds 1,2,3 --out results/mlp
    python train_static.py --train train_func.npz --test test_func.npz --model logreg --val-speakers 0
"""

import sys
import time

import numpy as np

from serattn import config
from serattn.analysis.metrics import evaluate_predictions, format_report
from serattn.config import NORMALIZATIONS
from serattn.errors import ArgumentParser, run_main
from serattn.runs import folder as runs
from serattn.training import protocols, static


def build_parser():
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument("--data", help="one feature set (.npz) whose 'split' says train/test (any split with --cv)")
    data.add_argument("--train", help="training feature set (.npz)")
    data.add_argument("--test", help="test feature set (.npz)")
    config.add_speaker_fold_flags(data)
    data.add_argument("--val-speakers", default="0.2",
                      help="validation speakers held out of training to choose hyper-parameters (and give "
                           "the val predictions ensemble.py tunes on): a fraction, a count, comma-separated "
                           "ids, or 0 for none (then an inner speaker-group CV chooses, and the final model "
                           "trains on every training speaker) (default: %(default)s, as train_attention_lstm.py)")

    features = parser.add_argument_group("features")
    features.add_argument("--pool", default="none", choices=static.FRAME_POOLS,
                          help="frame-level (LLD) input: refuse it (none), or use mean and std over each "
                               "utterance's frames (mean) (default: %(default)s)")
    features.add_argument("--norm", default="global", choices=NORMALIZATIONS,
                          help="z-normalization: statistics of the training speakers (global), of each "
                               "speaker itself (speaker; uses unlabelled test audio), or none "
                               "(default: %(default)s)")

    model = parser.add_argument_group("model")
    model.add_argument("--model", default="linear-svm", choices=static.STATIC_MODELS,
                       help="linear-svm (the IS09 challenge baseline kind), rbf-svm, logreg or mlp "
                            "(default: %(default)s)")
    model.add_argument("--grid", default=None,
                       help=f"hyper-parameter values to choose from, 'NAME=V1,V2;NAME2=...' "
                            f"(default per model: {static.describe_grids()})")
    model.add_argument("--hidden", default="128",
                       help="mlp only: hidden layer sizes, comma-separated units (default: %(default)s)")
    model.add_argument("--max-iter", type=int, default=None,
                       help="most solver iterations; mlp: epochs (default: 10000; mlp 300)")
    model.add_argument("--calibration", default="auto", choices=static.CALIBRATIONS,
                       help="class probabilities: auto = sigmoid (Platt) calibration for SVMs on speaker-held-out "
                            "decision values, the model's own predict_proba otherwise; sigmoid or isotonic "
                            "calibrate any model (default: %(default)s)")

    training = parser.add_argument_group("training")
    training.add_argument("--class-weight", default="balanced", choices=["balanced", "none"],
                          help="loss weight per class, from the training utterances (default: %(default)s)")
    training.add_argument("--inner-folds", type=int, default=5,
                          help="speaker folds of the inner CV that chooses hyper-parameters with "
                               "--val-speakers 0 (default: %(default)s)")
    training.add_argument("--seed", type=int, default=1, help="seed of every random choice (default: %(default)s)")
    training.add_argument("--seeds", help="several seeds, e.g. 1,2,3: one run each, in sibling folders OUT-seedK")
    training.add_argument("--jobs", type=int, default=1,
                          help="processes: the folds (--cv) and seeds (--seeds) side by side, the cores divided "
                               "between them; for a single run, parallel grid-search fits (default: %(default)s)")
    training.add_argument("--dask-scheduler", metavar="ADDRESS",
                          help="run the folds and seeds on a Dask cluster (tcp://HOST:8786) instead; every "
                               "worker needs this repository and the --out folder at the same path (see README)")

    output = parser.add_argument_group("output")
    output.add_argument("--out", help="run folder to create (default: results/<model>-seed<seed>)")
    output.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    output.add_argument("--quiet", action="store_true", help="no per-fold progress lines")
    output.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    output.add_argument("--config", help="rerun with the flags of a run's config.json (or a search's "
                                         "best/config.json); flags given here win")
    return parser


# Saved keys that a rerun does not take over: how the earlier command was run.
NOT_SAVED = ("debug", "quiet", "overwrite", "config", "seeds", "out", "jobs", "dask_scheduler")


def saved_defaults(saved, parser):
    """A config.json's flags as parser defaults: the grid, hidden sizes and cv back in their flag form."""
    flags = {action.dest for action in parser._actions}
    defaults = {k: v for k, v in saved.items() if k in flags and k not in NOT_SAVED}
    if isinstance(defaults.get("grid"), dict):
        defaults["grid"] = ";".join(f"{name}={','.join(str(v) for v in values)}"
                                    for name, values in defaults["grid"].items()) or None
    if isinstance(defaults.get("hidden"), list):
        defaults["hidden"] = ",".join(str(units) for units in defaults["hidden"])
    if defaults.get("hidden") is None:
        defaults.pop("hidden", None)
    return defaults


def parse_args(argv):
    """The flags as an :class:`~serattn.config.Experiment` of a static model, every value checked."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        parser.set_defaults(**saved_defaults(runs.read_config(args.config), parser))
        args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.inner_folds < 2:
        parser.error(f"--inner-folds must be at least 2, got {args.inner_folds}")
    try:
        hidden = tuple(int(units) for units in args.hidden.split(","))
    except ValueError:
        parser.error(f"--hidden takes comma-separated integers, got '{args.hidden}'")
    if min(hidden) < 1:
        parser.error(f"--hidden: every layer needs at least 1 unit, got {list(hidden)}")
    max_iter = args.max_iter or (300 if args.model == "mlp" else 10_000)
    if max_iter < 1:
        parser.error(f"--max-iter must be at least 1, got {max_iter}")
    seeds = config.parse_seeds(args.seeds, args.seed)
    several_runs = bool(args.cv) or len(seeds) > 1  # --jobs then runs whole folds and seeds side by side
    data = config.DataConfig(data=args.data, train=args.train, test=args.test, norm=args.norm,
                             val_speakers=args.val_speakers, cv=config.parse_cv(args.cv),
                             stratify_speakers_by=args.stratify_speakers_by, repeats=args.repeats,
                             group_by=args.group_by, split_by=args.split_by).check()
    model = config.StaticModelConfig(model=args.model, grid=static.parse_grid(args.grid, args.model),
                                     hidden=hidden if args.model == "mlp" else None, max_iter=max_iter,
                                     calibration=args.calibration, pool=args.pool)
    training = config.StaticTrainConfig(class_weight=args.class_weight, inner_folds=args.inner_folds,
                                        seed=args.seed)
    output = config.OutputConfig(out=args.out or f"results/{args.model}-seed{args.seed}",
                                 overwrite=args.overwrite, quiet=args.quiet, jobs=args.jobs,
                                 dask_scheduler=args.dask_scheduler, grid_jobs=1 if several_runs else args.jobs)
    return config.Experiment(data, model, training, output, seeds=seeds)


def train_one_run(experiment, train, test, classes, out, data_files):
    """Choose hyper-parameters, fit on ``train``, evaluate on ``test``, write the run folder ``out``."""
    model_config, train_config, output = experiment.model, experiment.training, experiment.output

    # Data: validation speakers held out, normalization from the remaining training speakers.
    fit_set, val_set, test, normalization = protocols.split_and_normalize(experiment, train, test, classes, out)
    weights = dict(zip(classes, protocols.class_weights(train_config.class_weight, classes, fit_set.labels)))

    # The run folder exists only from here on, once every input has been checked.
    run = runs.RunFolder.create(out, output.overwrite)
    out = run.path
    try:
        run.write_config(runs.run_config(
            experiment.with_out(out).to_flags(), out, classes, train, data_files,
            class_weights={c: round(float(w), 6) for c, w in weights.items()},
            val_speakers_used=sorted(set(val_set.speakers)),
            test_speakers=sorted(set(test.speakers))))
        run.write_normalization(normalization)

        # Hyper-parameters: UA on the validation speakers (or inner speaker folds without them).
        start = time.perf_counter()
        features = np.concatenate([fit_set.features, val_set.features])
        labels = np.concatenate([fit_set.labels, val_set.labels])
        speakers = np.concatenate([fit_set.speakers, val_set.speakers])
        in_val = np.arange(len(labels)) >= len(fit_set)
        classifier = static.build_classifier(model_config.model, train_config.seed, model_config.max_iter,
                                             model_config.hidden)
        best, scores, how = static.select_hyperparameters(
            static.make_pipeline(classifier), model_config.grid, features, labels, speakers, in_val,
            static.fit_parameters(weights, labels), train_config.inner_folds, output.grid_jobs)

        # Model: refit on the training speakers only, so the val predictions stay out-of-sample.
        model, info = static.fit_static_model(
            model_config.model, best, fit_set.features, fit_set.labels, fit_set.speakers,
            train_config.class_weight, train_config.seed, model_config.calibration, model_config.max_iter,
            model_config.hidden)
        run.save_static_model(static.saved_pipeline(model, normalization))

        # Evaluate: probabilities for every split, metrics on test.
        parts = [(name, fs) for name, fs in [("train", fit_set), ("val", val_set), ("test", test)] if len(fs)]
        probabilities = {name: static.predict_probabilities(model, fs.features, classes) for name, fs in parts}
        predicted = {name: np.asarray(classes)[p.argmax(axis=1)] for name, p in probabilities.items()}

        def joined(values):
            return np.concatenate([values(name, fs) for name, fs in parts])

        run.write_predictions(joined(lambda _, fs: fs.ids),
                               joined(lambda _, fs: fs.speakers), joined(lambda name, fs: [name] * len(fs)),
                               joined(lambda _, fs: fs.labels), joined(lambda name, _: predicted[name]),
                               joined(lambda name, _: probabilities[name]), classes)
        metrics = evaluate_predictions(test.labels, predicted["test"], classes)
        metrics["n_test"] = metrics.pop("n")
        metrics["best_epoch"] = None  # no epochs to choose among
        metrics["val_ua"] = evaluate_predictions(val_set.labels, predicted["val"], classes)["ua"] \
            if len(val_set) else None
        metrics.update(best_params=best, selection=how, grid_scores=scores, **info,
                       seconds=round(time.perf_counter() - start, 3))
        run.write_metrics(metrics)
    except BaseException:
        run.remove()
        raise
    run.mark_complete()
    if not info["converged"]:
        print(f"warning: {out}: the {model_config.model} solver stopped at --max-iter {model_config.max_iter} "
              f"before converging", file=sys.stderr)
    if not output.quiet:
        print(f"{out}: {', '.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}' for k, v in best.items())} "
              f"({how}); test UA {100 * metrics['ua']:.1f}%, {metrics['seconds']:.1f} s", file=sys.stderr)
    return metrics


def load_data(experiment):
    """``(train, test, sources, classes)``: one row of functionals per utterance, checked.

    Augmented copies (extract_features.py --augment) are dropped: static models train on originals only.
    """
    data = experiment.data
    return protocols.load_train_test(
        data.data, data.train, data.test, data.cv, split_by=data.split_by, group_by=data.group_by,
        prepare=lambda feature_set, path: static.utterance_features(feature_set.originals(), experiment.model.pool,
                                                                    path))


def main(argv=None):
    experiment = parse_args(argv)

    # Data: every input is checked before anything is written.
    train, test, sources, classes = load_data(experiment)
    data_files = runs.describe_data_files(sources)

    # One run per seed (sibling folders when there are several), each a fold set with --cv.
    for metrics, title in protocols.run_seeds(experiment, train, test, classes, data_files, train_one_run):
        print(format_report(metrics, title))
    return 0


if __name__ == "__main__":
    run_main(main)
