"""Train the published attention LSTM on a feature set and save a self-contained run folder.

    python train_attention_lstm.py --data data/demo/features.npz --out results/demo
    python train_attention_lstm.py --train train.npz --test test.npz --activation relu --out results/relu
    python train_attention_lstm.py --data fau.npz --no-mask --max-length 2453 --out results/published
    python train_attention_lstm.py --resume results/demo          # continue an interrupted run
    python train_attention_lstm.py --config results/demo/config.json --seed 2 --out results/demo-seed2
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the log

import numpy as np

from serattn.data import Normalization, NORMALIZATIONS, check_same_features, load_feature_set
from serattn.define import ACTIVATIONS
from serattn.errors import InputError, run_main
from serattn.metrics import evaluate_predictions, format_confusion, format_summary
from serattn import runs


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument("--data", help="one feature set (.npz) whose 'split' says train/test")
    data.add_argument("--train", help="training feature set (.npz, or padded X*.npy)")
    data.add_argument("--test", help="test feature set (.npz, or padded X*.npy)")
    data.add_argument("--input-padding", default="auto", choices=["auto", "pre", "post"],
                      help="where padded input arrays carry their zeros when they store no lengths")
    data.add_argument("--norm", default="global", choices=NORMALIZATIONS,
                      help="z-normalization: statistics of the training speakers (global), of each "
                           "speaker itself (speaker; uses unlabelled test audio), or none")
    data.add_argument("--val-speakers", default="0.2",
                      help="validation speakers held out of training for model selection: a fraction, "
                           "a count, comma-separated ids, or 0 for none (train all epochs, keep the last)")

    model = parser.add_argument_group("model")
    model.add_argument("--units", type=int, default=60, help="LSTM units")
    model.add_argument("--activation", default="tanh", choices=ACTIVATIONS, help="LSTM activation")
    model.add_argument("--recurrent-dropout", type=float, default=0.5, help="LSTM recurrent dropout")
    model.add_argument("--attention-units", type=int, default=50, help="units of the first attention layer")
    model.add_argument("--attention-activation", default="tanh", choices=ACTIVATIONS,
                       help="activation of the first attention layer")
    model.add_argument("--no-mask", dest="mask", action="store_false",
                       help="published behaviour: pre-pad to --max-length and let attention see padding")
    model.add_argument("--max-length", type=int, default=None,
                       help="frames to pad to with --pad-to-max/--no-mask (default: the longest utterance)")

    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=int, default=50, help="most epochs to train")
    training.add_argument("--patience", type=int, default=10,
                          help="epochs without a better validation UA before stopping")
    training.add_argument("--batch-size", type=int, default=32, help="utterances per batch")
    training.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate")
    training.add_argument("--clipnorm", type=float, default=None, help="clip gradients to this norm")
    training.add_argument("--class-weight", default="balanced",
                          help="loss weight per class: balanced, none, or A=1.1,E=0.5,...")
    training.add_argument("--pad-to-max", action="store_true",
                          help="pad every batch to --max-length instead of grouping by length")
    training.add_argument("--seed", type=int, default=1, help="seed of every random choice")

    output = parser.add_argument_group("output")
    output.add_argument("--out", help="run folder to create (default: results/<activation>-seed<seed>)")
    output.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    output.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs to the run folder")
    output.add_argument("--quiet", action="store_true", help="no progress bar")
    output.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    output.add_argument("--config", help="rerun with the flags of a run's config.json (flags given here win)")
    output.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last epoch")
    return parser


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume or args.config:
        config_path = Path(args.resume or "", "config.json") if args.resume else Path(args.config)
        saved = runs.read_config(config_path)
        flags = {action.dest for action in parser._actions}
        ignored = {"config", "resume", "out", "overwrite", "quiet", "debug", "tensorboard"}
        parser.set_defaults(**{k: v for k, v in saved.items() if k in flags and k not in ignored})
        args = parser.parse_args(argv)
        args.saved_config = saved
        if args.resume:
            args.out = args.resume

    if args.data and (args.train or args.test):
        parser.error("give either --data or --train and --test, not both")
    if not args.data and not (args.train and args.test):
        parser.error("give --data FILE, or --train FILE and --test FILE")
    for flag in ("epochs", "batch_size", "patience"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.learning_rate <= 0:
        parser.error(f"--learning-rate must be positive, got {args.learning_rate}")
    if args.max_length is not None and args.max_length < 1:
        parser.error(f"--max-length must be at least 1, got {args.max_length}")
    args.pad_to_max = args.pad_to_max or not args.mask  # the published model padded everything
    args.out = args.out or f"results/{args.activation}-seed{args.seed}"
    return args


def load_data(args):
    """Train and test feature sets, checked against each other."""
    if args.data:
        feature_set = load_feature_set(args.data, args.input_padding)
        if feature_set.split is None:
            raise InputError(f"'{args.data}' has no 'split' array; give --train and --test instead")
        unknown = sorted(str(s) for s in set(feature_set.split) - {"train", "test"})
        if unknown:
            raise InputError(f"'{args.data}' has split values {', '.join(unknown)}; expected only train and test")
        train, test = (feature_set.subset(feature_set.split == s) for s in ("train", "test"))
        if len(train) == 0 or len(test) == 0:
            raise InputError(f"'{args.data}' needs utterances of both splits, train and test")
        return train, test, args.data, args.data
    train = load_feature_set(args.train, args.input_padding)
    test = load_feature_set(args.test, args.input_padding)
    check_same_features(train, test, args.train, args.test)
    return train, test, args.train, args.test


def main(argv=None):
    args = parse_args(argv)

    # Data: train/test, validation speakers, normalization from training speakers.
    train, test, train_source, test_source = load_data(args)
    classes = sorted(str(c) for c in set(train.labels))
    unseen = sorted(str(c) for c in set(test.labels) - set(classes))
    if unseen:
        raise InputError(f"test labels {', '.join(unseen)} in '{test_source}' never occur in the training set "
                         f"'{train_source}' (classes: {', '.join(classes)})")

    from serattn import training  # TensorFlow loads only once the input is known to be good

    is_val = training.split_validation_speakers(train.speakers, args.val_speakers, args.seed)
    fit_set, val_set = train.subset(~is_val), train.subset(is_val)
    missing = sorted(set(classes) - set(str(c) for c in fit_set.labels))
    if missing:
        raise InputError(f"class(es) {', '.join(missing)} have no training utterances once validation speakers "
                         f"are held out; choose other --val-speakers")
    if len(classes) < 2:
        raise InputError(f"'{train_source}' has a single class ({classes[0]}); need at least 2")
    normalization = Normalization.fit(fit_set, args.norm)
    fit_set, val_set, test = (normalization.apply(fs) for fs in (fit_set, val_set, test))

    class_index = {c: i for i, c in enumerate(classes)}
    targets = np.array([class_index[c] for c in fit_set.labels])
    class_weights = training.parse_class_weight(args.class_weight, classes, fit_set.labels)
    max_length = args.max_length or int(max(train.lengths.max(), test.lengths.max()))
    pad_to = max_length if args.pad_to_max else None
    padding = "post" if args.mask else "pre"

    # Model, seeded and deterministic.
    import keras
    import tensorflow as tf
    from serattn.model import build_attention_lstm

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_attention_lstm(
        train.dim, len(classes), units=args.units, activation=args.activation,
        recurrent_dropout=args.recurrent_dropout, attention_units=args.attention_units,
        attention_activation=args.attention_activation, masked=args.mask)
    training.compile_model(model, len(classes), args.learning_rate, args.clipnorm)

    # The run folder exists only from here on, once every input has been checked.
    data_files = {name: {"path": os.path.abspath(path), "sha256": runs.file_sha256(path)}
                  for name, path in {"train": train_source, "test": test_source}.items()}
    if args.resume:
        out = runs.reopen_run_dir(args.out, data_files)
    else:
        runs.warn_if_data_changed(getattr(args, "saved_config", None), data_files)
        out = runs.create_run_dir(args.out, args.overwrite)
    try:
        hidden = ("debug", "quiet", "overwrite", "config", "resume", "saved_config")
        runs.write_json(out / "config.json", {
            **{key: value for key, value in vars(args).items() if key not in hidden},
            "classes": classes,
            "max_length_used": pad_to,
            "padding": padding,
            "class_weights": dict(zip(classes, class_weights.round(6).tolist())),
            "val_speakers_used": sorted(set(val_set.speakers)),
            "data_files": data_files,
            "feature_meta": train.meta,
            "feature_names": train.feature_names.tolist(),
            "run_format": runs.RUN_FORMAT,
            **runs.environment_info(),
        })
        runs.write_json(out / "normalization.json", normalization.to_dict())

        # Train: early stopping and model selection on validation UA.
        print(f"training on {len(fit_set)} utterances ({len(set(fit_set.speakers))} speakers), "
              f"validating on {len(val_set)} ({len(set(val_set.speakers))} speakers), "
              f"testing on {len(test)}; classes {', '.join(classes)}", file=sys.stderr)
        batches = training.EpochBatches(fit_set.sequences(), targets, class_weights[targets],
                                        args.batch_size, args.seed, bucketing=not args.pad_to_max,
                                        pad_to=pad_to, padding=padding)
        validation = None
        if len(val_set):
            validation = training.evaluation_dataset(
                val_set.sequences(), [class_index[c] for c in val_set.labels], args.batch_size,
                pad_to, padding)
        callbacks = [keras.callbacks.TensorBoard(log_dir=str(out / "tensorboard"))] if args.tensorboard else []
        best_epoch, resumed_at = training.fit(
            model, batches, validation, args.epochs, args.patience, out / "checkpoint",
            out / "history.csv", callbacks, verbose=0 if args.quiet else (1 if sys.stdout.isatty() else 2))
        if resumed_at:
            print(f"resumed after epoch {resumed_at}", file=sys.stderr)
        model.save(out / "model.keras")

        # Evaluate: predictions, attention and representations for every split.
        parts = [("train", fit_set), ("val", val_set), ("test", test)]
        parts = [(name, fs) for name, fs in parts if len(fs)]
        outputs = {name: training.predict_with_attention(model, fs.sequences(), args.batch_size, pad_to, padding)
                   for name, fs in parts}
        predicted = {name: np.asarray(classes)[outputs[name]["probabilities"].argmax(1)] for name, _ in parts}
        metrics = evaluate_predictions(test.labels, predicted["test"], classes)
        metrics["n_test"] = metrics.pop("n")
        metrics["best_epoch"] = best_epoch
        metrics["val_ua"] = (evaluate_predictions(val_set.labels, predicted["val"], classes)["ua"]
                             if len(val_set) else None)
        runs.write_json(out / "metrics.json", metrics)

        def joined(key):
            return np.concatenate([getattr(fs, key) for _, fs in parts])

        split = np.concatenate([[name] * len(fs) for name, fs in parts])
        runs.write_predictions(out / "predictions.csv", joined("ids"), joined("speakers"), split,
                               joined("labels"), np.concatenate(list(predicted.values())),
                               np.concatenate([outputs[name]["probabilities"] for name, _ in parts]),
                               classes)
        runs.write_attention(out / "attention.npz",
                             [w for name, _ in parts for w in outputs[name]["weights"]],
                             np.concatenate([outputs[name]["z"] for name, _ in parts]),
                             joined("ids"), joined("labels"), joined("speakers"), split,
                             np.concatenate([outputs[name]["padding_mass"] for name, _ in parts]))
    except InputError:
        if not args.resume:
            runs.remove_run_dir(out)
        raise
    runs.mark_complete(out)

    print(format_confusion(metrics, title=f"test set, best epoch {best_epoch}"))
    print(format_summary(metrics))
    print(f"run folder: {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
