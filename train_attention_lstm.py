"""Train the published attention LSTM on a feature set and save a self-contained run folder.

    python train_attention_lstm.py --data data/demo/features.npz --out results/demo
    python train_attention_lstm.py --train train.npz --test test.npz --activation relu --out results/relu
    python train_attention_lstm.py --data data/emodb_2s.npz --cv loso --seeds 1,2,3 --out results/emodb
    python train_attention_lstm.py --resume results/demo          # continue an interrupted run
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the log

import numpy as np

from serattn import protocols, runs
from serattn.attention import attention_diagnostics
from serattn.data import NORMALIZATIONS, Normalization
from serattn.define import ACTIVATIONS, ATTENTION_POOLINGS, BASIC_POOLINGS
from serattn.distribute import STRATEGIES, worker_out
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.metrics import evaluate_predictions, format_report

MODELS = ("attention-lstm", "basic-lstm")

# --preset NAME sets these flags' defaults (flags given on the command line win). "recommended" is
# the candidate with the best mean validation UA (2 speakers held out of the training speakers of
# each emodb_2s LOSO fold; test folds never used) among the 12 of docs/ATTENTION_VARIANTS.md.
# It sets the model and its regularizers, not the epochs: model selection stays as flagged.
PRESETS = {
    "published": {},
    "recommended": {"pooling": "attentive-stats", "pool_inputs": True, "time_mask": 25, "feature_mask": 6,
                    "input_noise": 0.2, "weight_decay": 0.3, "recurrent_dropout": 0.0},
}


def build_parser():
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument("--data", help="one feature set (.npz) whose 'split' says train/test (any split with --cv)")
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
    data.add_argument("--cv", nargs="+", metavar="PROTOCOL",
                      help="speaker cross-validation on --data: 'loso' or 'kfold-speakers K'")

    model = parser.add_argument_group("model")
    model.add_argument("--model", default="attention-lstm", choices=MODELS,
                       help="the published attention LSTM, or the same LSTM without attention")
    model.add_argument("--units", type=int, default=60, help="LSTM units")
    model.add_argument("--activation", default="tanh", choices=ACTIVATIONS, help="LSTM activation")
    model.add_argument("--recurrent-dropout", type=float, default=0.5, help="LSTM recurrent dropout")
    model.add_argument("--attention-units", type=int, default=50, help="units of the first attention layer")
    model.add_argument("--attention-activation", default="tanh", choices=ACTIVATIONS,
                       help="activation of the first attention layer")
    model.add_argument("--pooling", default=None, choices=ATTENTION_POOLINGS + BASIC_POOLINGS,
                       help="attention-lstm: attention (published, default), attentive-stats (weighted mean "
                            "and std), multihead (--heads H), attention+mean; basic-lstm: mean (default) over "
                            "valid frames, or the last valid frame")
    model.add_argument("--heads", type=int, default=1, help="attention heads of --pooling multihead")
    model.add_argument("--pool-inputs", action=argparse.BooleanOptionalAction, default=False,
                       help="attention-lstm: pool the input frames next to the LSTM outputs, with the same weights")
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

    regular = parser.add_argument_group("regularization (training batches only; attention-lstm for the first four)")
    regular.add_argument("--time-mask", type=int, default=0,
                         help="SpecAugment time masks: zero stretches of up to N frames (0: off)")
    regular.add_argument("--feature-mask", type=int, default=0,
                         help="SpecAugment feature masks: zero bands of up to N adjacent features (0: off)")
    regular.add_argument("--mask-count", type=int, default=2, help="time masks and feature masks per utterance")
    regular.add_argument("--input-noise", type=float, default=0.0,
                         help="std of Gaussian noise added to the normalized frames (0: off)")
    regular.add_argument("--pooled-dropout", type=float, default=0.0, help="dropout rate on the pooled vector")
    regular.add_argument("--weight-decay", type=float, default=0.0,
                         help="decoupled weight decay (AdamW instead of Adam; 0: plain Adam)")
    regular.add_argument("--label-smoothing", type=float, default=0.0,
                         help="smooth the training targets towards uniform by this much (0: off)")
    training.add_argument("--seeds", help="several seeds, e.g. 1,2,3: one run each, in sibling folders OUT-seedK")
    training.add_argument("--strategy", default="default", choices=STRATEGIES,
                          help="default: one device; mirrored: all GPUs of this machine; multiworker: the "
                               "machines of TF_CONFIG, same command and --out on each, --batch-size split "
                               "across them, only worker 0 writes --out (see README)")
    training.add_argument("--mixed-precision", action="store_true",
                          help="float16 compute on a GPU (refused on CPU, where it is slower)")

    output = parser.add_argument_group("output")
    output.add_argument("--out", help="run folder to create (default: results/<model>-<activation>-seed<seed>)")
    output.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    output.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs to the run folder")
    output.add_argument("--quiet", action="store_true", help="no progress bar")
    output.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    output.add_argument("--config", help="rerun with the flags of a run's config.json (flags given here win)")
    output.add_argument("--preset", choices=sorted(PRESETS),
                        help="published: the published model (the defaults); recommended: "
                             + " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                                        for k, v in PRESETS["recommended"].items())
                             + " (flags given here win)")
    output.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last epoch")
    return parser


# Flags that describe how a command was run rather than the experiment.
NOT_CONFIG = ("debug", "quiet", "overwrite", "config", "resume", "saved_config", "seeds")


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preset:  # preset values become defaults: flags given on the command line win
        parser.set_defaults(**PRESETS[args.preset])
        args = parser.parse_args(argv)
    if args.resume or args.config:
        saved = runs.read_config(Path(args.resume, "config.json") if args.resume else args.config)
        flags = {action.dest for action in parser._actions}
        parser.set_defaults(**{k: v for k, v in saved.items()
                               if k in flags and k not in NOT_CONFIG + ("out", "tensorboard")})
        args = parser.parse_args(argv)
        args.saved_config = saved
        if args.resume:
            args.out = args.resume

    if args.data and (args.train or args.test):
        parser.error("give either --data or --train and --test, not both")
    if not args.data and not (args.train and args.test):
        parser.error("give --data FILE, or --train FILE and --test FILE")
    if args.cv and not args.data:
        parser.error("--cv splits one --data file by speaker; --train/--test have a fixed split")
    for flag in ("epochs", "batch_size", "patience", "units", "attention_units"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if not 0 <= args.recurrent_dropout < 1:
        parser.error(f"--recurrent-dropout must be in [0, 1), got {args.recurrent_dropout}")
    if args.learning_rate <= 0:
        parser.error(f"--learning-rate must be positive, got {args.learning_rate}")
    if args.max_length is not None and args.max_length < 1:
        parser.error(f"--max-length must be at least 1, got {args.max_length}")
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    except ValueError:
        parser.error(f"--seeds: expected comma-separated integers, got '{args.seeds}'")
    if args.resume and len(args.seed_list) > 1:
        parser.error("--resume continues one run folder; resume each seed's folder on its own")
    if args.resume and args.strategy == "multiworker":
        parser.error("--resume is not supported with --strategy multiworker (every worker would need the "
                     "chief's checkpoint); resume with --strategy default or mirrored, or start again")
    for flag in ("time_mask", "feature_mask", "mask_count", "input_noise", "weight_decay"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag.replace('_', '-')} must not be negative, got {getattr(args, flag)}")
    for flag in ("pooled_dropout", "label_smoothing"):
        if not 0 <= getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be in [0, 1), got {getattr(args, flag)}")
    resolve_pooling(parser, args)
    args.cv = protocols.parse_cv(args.cv)
    args.pad_to_max = args.pad_to_max or not args.mask  # the published model padded everything
    args.out = args.out or f"results/{args.model}-{args.activation}-seed{args.seed}"
    return args


def resolve_pooling(parser, args):
    """Set ``args.pooling`` to the model's default and refuse flags the model lacks."""
    saved = getattr(args, "saved_config", None)
    if args.model == "attention-lstm" and saved is not None and "heads" not in saved \
            and args.pooling in BASIC_POOLINGS:
        args.pooling = None  # a config.json from before pooling variants: its 'mean' meant basic-lstm only
    if args.pooling is None:
        args.pooling = "attention" if args.model == "attention-lstm" else "mean"
    valid = ATTENTION_POOLINGS if args.model == "attention-lstm" else BASIC_POOLINGS
    if args.pooling not in valid:
        parser.error(f"--pooling {args.pooling} does not apply to --model {args.model}; expected one of: "
                     f"{', '.join(valid)}")
    if args.heads < 1 or (args.heads > 1 and args.pooling != "multihead"):
        parser.error(f"--heads {args.heads} needs --pooling multihead and must be at least 1")
    if args.model == "basic-lstm" and args.pool_inputs:
        parser.error("--pool-inputs applies to --model attention-lstm only")
    if (args.pooling != "attention" or args.pool_inputs) and not args.mask:
        parser.error(f"--pooling {args.pooling} needs the padding mask; drop --no-mask")
    if args.model == "basic-lstm" and (args.time_mask or args.feature_mask or args.input_noise
                                       or args.pooled_dropout):
        parser.error("--time-mask, --feature-mask, --input-noise and --pooled-dropout apply to "
                     "--model attention-lstm only")


def train_one_run(args, train, test, classes, out, data_files):
    """Train on ``train``, evaluate on ``test``, and write the run folder ``out``."""
    from serattn import training  # TensorFlow loads only once the input is known to be good

    # Data: validation speakers held out, normalization from the training speakers.
    fit_set, val_set = protocols.hold_out_validation(train, classes, args.val_speakers, args.seed, out)
    normalization = Normalization.fit(fit_set, args.norm)
    fit_set, val_set, test = (normalization.apply(fs) for fs in (fit_set, val_set, test))
    class_index = {c: i for i, c in enumerate(classes)}
    targets = np.array([class_index[c] for c in fit_set.labels])
    class_weights = training.parse_class_weight(args.class_weight, classes, fit_set.labels)
    pad_to = (args.max_length or int(max(train.lengths.max(), test.lengths.max()))) if args.pad_to_max else None
    padding = "post" if args.mask else "pre"

    # Model, seeded and deterministic.
    model = training.build_model(args, train.dim, len(classes))

    # The run folder exists only from here on, once every input has been checked.
    resuming = bool(args.resume) and Path(out).exists()  # a finished folder is refused there
    out = runs.reopen_run_dir(out, data_files) if resuming else runs.create_run_dir(out, args.overwrite)
    try:
        runs.write_json(out / "config.json", runs.run_config(
            recorded_flags(args), out, classes, train, data_files,
            max_length_used=pad_to,
            padding=padding,
            class_weights=dict(zip(classes, class_weights.round(6).tolist())),
            val_speakers_used=sorted(set(val_set.speakers)),
            test_speakers=sorted(set(test.speakers))))
        runs.write_json(out / "normalization.json", normalization.to_dict())

        # Train: early stopping and model selection on validation UA.
        print(f"{out}: training on {len(fit_set)} utterances ({len(set(fit_set.speakers))} speakers), "
              f"validating on {len(val_set)} ({len(set(val_set.speakers))} speakers), "
              f"testing on {len(test)} ({len(set(test.speakers))} speakers)", file=sys.stderr)
        batches = training.EpochBatches(fit_set.sequences(), targets, class_weights[targets],
                                        args.batch_size, args.seed, bucketing=not args.pad_to_max,
                                        pad_to=pad_to, padding=padding)
        validation = None
        if len(val_set):
            validation = training.evaluation_dataset(
                val_set.sequences(), [class_index[c] for c in val_set.labels], args.batch_size, pad_to, padding)
        callbacks = training.tensorboard_callbacks(out) if args.tensorboard else []
        best_epoch, resumed_at, diverged_epoch = training.fit(
            model, batches, validation, args.epochs, args.patience, out / "checkpoint", out / "history.csv",
            callbacks, verbose=0 if args.quiet else (1 if sys.stdout.isatty() else 2))
        if resumed_at:
            print(f"{out}: resumed after epoch {resumed_at}", file=sys.stderr)
        if diverged_epoch:
            kept = f"the weights of epoch {best_epoch} are kept" if len(val_set) else "its weights are broken"
            print(f"warning: {out}: the training loss became NaN or infinite in epoch {diverged_epoch}; training "
                  f"stopped there and {kept} (try --clipnorm 1 or a lower --learning-rate)", file=sys.stderr)
        model.save(out / "model.keras")

        # Evaluate: predictions, attention and representations for every split.
        parts = [(name, fs) for name, fs in [("train", fit_set), ("val", val_set), ("test", test)] if len(fs)]
        outputs = {name: training.predict_with_attention(model, fs.sequences(), args.batch_size, pad_to, padding)
                   for name, fs in parts}
        predicted = runs.write_evaluation(out, parts, outputs, classes)
        metrics = evaluate_predictions(test.labels, predicted["test"], classes)
        metrics["n_test"] = metrics.pop("n")
        metrics["best_epoch"] = best_epoch
        metrics["diverged_epoch"] = diverged_epoch
        metrics["val_ua"] = evaluate_predictions(val_set.labels, predicted["val"], classes)["ua"] \
            if len(val_set) else None
        weights = outputs["test"]["weights"]
        metrics.update(attention_diagnostics(np.concatenate(weights), np.array([len(w) for w in weights])))
        runs.write_json(out / "metrics.json", metrics)
    except (InputError, OSError):
        if not resuming:
            runs.remove_run_dir(out)  # nothing half-written stays behind
        raise
    runs.mark_complete(out)
    return metrics


def recorded_flags(args):
    """The flags that describe the experiment, for config.json."""
    return {key: value for key, value in vars(args).items() if key not in NOT_CONFIG + ("seed_list",)}


def main(argv=None):
    args = parse_args(argv)
    if args.strategy == "multiworker":
        args.out = worker_out(args.out)  # every worker runs all of main; only the chief's --out is kept

    # Data: every input is checked before anything is written.
    train, test, sources, classes = protocols.load_train_test(args.data, args.train, args.test, args.cv,
                                                              args.input_padding)
    data_files = runs.describe_data_files(sources)
    if not args.resume:
        runs.warn_if_data_changed(getattr(args, "saved_config", None), data_files)

    # One run per seed (sibling folders when there are several), each a fold set with --cv.
    for metrics, title in protocols.run_seeds(args, train, test, classes, data_files, train_one_run,
                                              recorded_flags, resume=bool(args.resume)):
        print(format_report(metrics, title))
    return 0


if __name__ == "__main__":
    run_main(main)
