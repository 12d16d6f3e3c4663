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

from serattn import config
from serattn.analysis.attention import attention_metrics
from serattn.analysis.metrics import evaluate_predictions, format_report
from serattn.config import LSTM_MODELS, NORMALIZATIONS, PRESETS, STRATEGIES
from serattn.define import ACTIVATIONS, ATTENTION_POOLINGS, BASIC_POOLINGS, FUNCTIONALS_NORMS
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.runs import folder as runs
from serattn.training import protocols
from serattn.training.distribute import worker_out

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
    config.add_speaker_fold_flags(data)

    model = parser.add_argument_group("model")
    model.add_argument("--model", default="attention-lstm", choices=LSTM_MODELS,
                       help="the published attention LSTM, or the same LSTM without attention")
    model.add_argument("--units", type=int, default=60, help="LSTM units")
    model.add_argument("--activation", default="tanh", choices=ACTIVATIONS, help="LSTM activation")
    model.add_argument("--recurrent-dropout", type=float, default=0.5, help="LSTM recurrent dropout")
    model.add_argument("--attention-units", type=int, default=50, help="units of the first attention layer")
    model.add_argument("--attention-activation", default="tanh", choices=ACTIVATIONS,
                       help="activation of the first attention layer")
    model.add_argument("--pooling", default=None, choices=ATTENTION_POOLINGS + BASIC_POOLINGS,
                       help="attention-lstm: attention (published, default), attentive-stats (weighted mean "
                            "and std), multihead (--heads H), attention+mean, attention+stats (mean and std "
                            "over frames), attention+functionals (9 functionals of the input frames); "
                            "basic-lstm: mean (default) over valid frames, the last valid frame, or "
                            "mean+functionals")
    model.add_argument("--heads", type=int, default=1, help="attention heads of --pooling multihead")
    model.add_argument("--pool-inputs", action=argparse.BooleanOptionalAction, default=False,
                       help="attention-lstm: pool the input frames next to the LSTM outputs, with the same weights")
    model.add_argument("--functionals-norm", default="batch", choices=FUNCTIONALS_NORMS + ("auto",),
                       help="how the +functionals poolings standardize their functionals: batch normalization "
                            "(default), each speaker's own statistics (needs --norm speaker; uses the test "
                            "speakers' unlabelled audio as --norm speaker does), or auto: speaker with --norm "
                            "speaker, batch otherwise")
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
    training.add_argument("--jit-compile", action="store_true",
                          help="compile the train and test steps with XLA (faster on CPU; batches are then padded "
                               "to multiples of 16 frames; numbers differ from the default in float rounding)")
    training.add_argument("--lstm-kernel", default="auto", choices=config.LSTM_KERNELS,
                          help="auto: TensorFlow's fused one-op LSTM (BlockLSTM, same weights and files, ~1.5x "
                               "faster training on CPU) wherever it computes what the Keras loop computes (tanh, "
                               "--recurrent-dropout 0, no --jit-compile, no GPU), the Keras loop otherwise; "
                               "keras: always the loop; fused: always fused, refused where it is not exact")
    training.add_argument("--jobs", type=int, default=1,
                          help="processes that run the folds (--cv) and seeds (--seeds) side by side, the cores divided "
                               "between them; the numbers are those of --jobs 1 (default: %(default)s)")
    training.add_argument("--dask-scheduler", metavar="ADDRESS",
                          help="run the folds and seeds on a Dask cluster (tcp://HOST:8786) instead; every "
                               "worker needs this repository and the --out folder at the same path (see README)")

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


def parse_args(argv):
    """The flags as an :class:`~serattn.config.Experiment`, every value checked."""
    parser = build_parser()
    args = parser.parse_args(argv)
    saved = None
    if args.preset:  # preset values become defaults: flags given on the command line win
        parser.set_defaults(**PRESETS[args.preset])
        args = parser.parse_args(argv)
    if args.resume or args.config:
        saved = runs.read_config(Path(args.resume, runs.CONFIG_FILE) if args.resume else args.config)
        flags = {action.dest for action in parser._actions}
        parser.set_defaults(**{k: v for k, v in saved.items() if k in flags and k not in NOT_SAVED})
        if args.resume and "lstm_kernel" not in saved:  # started before --lstm-kernel: its checkpoint is the loop's
            parser.set_defaults(lstm_kernel="keras")
        args = parser.parse_args(argv)
    if args.resume and args.seeds and len(config.parse_seeds(args.seeds, args.seed)) > 1:
        parser.error("--resume continues one run folder; resume each seed's folder on its own")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if (args.jobs > 1 or args.dask_scheduler) and args.strategy != "default":
        parser.error(f"--jobs and --dask-scheduler run whole folds and seeds per process; with --strategy "
                     f"{args.strategy} one run already spans the devices, so use one or the other")
    if args.resume and args.strategy == "multiworker":
        parser.error("--resume is not supported with --strategy multiworker (every worker would need the "
                     "chief's checkpoint); resume with --strategy default or mirrored, or start again")
    if args.pooling is None or (saved is not None and "heads" not in saved and args.model == "attention-lstm"
                                and args.pooling in BASIC_POOLINGS):
        # the model's own default; a config.json from before pooling variants said 'mean' for basic-lstm only
        args.pooling = "attention" if args.model == "attention-lstm" else "mean"
    if args.functionals_norm == "auto":  # config.json records what was used
        args.functionals_norm = "speaker" if args.norm == "speaker" and args.pooling.endswith("+functionals") \
            else "batch"
    flags = vars(args) | {"cv": config.parse_cv(args.cv),
                          "pad_to_max": args.pad_to_max or not args.mask}  # the published model padded everything
    data, model, training = config.from_flags(flags, (config.DataConfig, config.ModelConfig, config.TrainConfig))
    output = config.OutputConfig(out=args.resume or args.out or f"results/{args.model}-{args.activation}-seed{args.seed}",
                                 overwrite=args.overwrite, resume=args.resume, quiet=args.quiet,
                                 tensorboard=args.tensorboard, jobs=args.jobs, dask_scheduler=args.dask_scheduler)
    experiment = config.Experiment(data.check(), model.check(), training.check(), output,
                                   seeds=config.parse_seeds(args.seeds, args.seed))
    return experiment, saved


# Saved keys that a rerun does not take over: how the earlier command was run.
NOT_SAVED = ("debug", "quiet", "overwrite", "config", "resume", "seeds", "out", "tensorboard", "jobs",
             "dask_scheduler", "preset")


def train_one_run(experiment, train, test, classes, out, data_files):
    """Train on ``train``, evaluate on ``test``, and write the run folder ``out``."""
    # TensorFlow loads only once the input is known to be good.
    from serattn.training import trainer as training
    from serattn.training.batches import EpochBatches, evaluation_dataset

    model_config, train_config, output = experiment.model, experiment.training, experiment.output

    # Data: validation speakers held out, normalization from the remaining training speakers.
    fit_set, val_set, test, normalization = protocols.split_and_normalize(experiment, train, test, classes, out)
    class_index = {c: i for i, c in enumerate(classes)}
    targets = np.array([class_index[c] for c in fit_set.labels])
    class_weights = protocols.class_weights(train_config.class_weight, classes, fit_set.labels)
    pad_to = (model_config.max_length or int(max(train.lengths.max(), test.lengths.max()))) \
        if train_config.pad_to_max else None
    padding = "post" if model_config.mask else "pre"

    # Model, seeded and deterministic.
    model = training.build_model(model_config, train_config, train.dim, len(classes))
    lstm_kernel = training.lstm_kernel_for(model_config, train_config)

    # The run folder exists only from here on, once every input has been checked.
    resuming = bool(output.resume) and Path(out).exists()  # a finished folder is refused there
    run = runs.RunFolder.reopen(out, data_files) if resuming else runs.RunFolder.create(out, output.overwrite)
    out = run.path
    try:
        run.write_config(runs.run_config(
            experiment.with_out(out).to_flags(), out, classes, train, data_files,
            max_length_used=pad_to,
            padding=padding,
            lstm_kernel_used=lstm_kernel,
            class_weights=dict(zip(classes, class_weights.round(6).tolist())),
            val_speakers_used=sorted(set(val_set.speakers)),
            augmented_copies_used=int(fit_set.is_copy.sum()),
            test_speakers=sorted(set(test.speakers))))
        run.write_normalization(normalization)

        # Train: early stopping and model selection on validation UA.
        print(f"{out}: training on {len(fit_set)} utterances ({len(set(fit_set.speakers))} speakers), "
              f"validating on {len(val_set)} ({len(set(val_set.speakers))} speakers), "
              f"testing on {len(test)} ({len(set(test.speakers))} speakers)", file=sys.stderr)
        extra_inputs = {name: training.utterance_inputs(fs, model_config.functionals_norm)
                        for name, fs in [("fit", fit_set), ("val", val_set), ("test", test)]}
        batches = EpochBatches(fit_set.sequences(), targets, class_weights[targets], train_config.batch_size,
                               train_config.seed, bucketing=not train_config.pad_to_max, pad_to=pad_to,
                               padding=padding, pad_multiple=train_config.pad_multiple,
                               utterance_inputs=extra_inputs["fit"])
        validation = None
        if len(val_set):
            validation = evaluation_dataset(val_set.sequences(), [class_index[c] for c in val_set.labels],
                                            train_config.batch_size, pad_to, padding, train_config.pad_multiple,
                                            extra_inputs["val"])
        callbacks = training.tensorboard_callbacks(out) if output.tensorboard else []
        best_epoch, resumed_at, diverged_epoch = training.fit(
            model, batches, validation, train_config.epochs, train_config.patience, run.checkpoint_dir,
            run.history_path, callbacks, verbose=0 if output.quiet else (1 if sys.stdout.isatty() else 2),
            lstm_kernel=lstm_kernel)
        if resumed_at:
            print(f"{out}: resumed after epoch {resumed_at}", file=sys.stderr)
        if diverged_epoch:
            kept = f"the weights of epoch {best_epoch} are kept" if len(val_set) else "its weights are broken"
            print(f"warning: {out}: the training loss became NaN or infinite in epoch {diverged_epoch}; training "
                  f"stopped there and {kept} (try --clipnorm 1 or a lower --learning-rate)", file=sys.stderr)
        run.save_keras_model(model)

        # Evaluate: predictions, attention and representations for every split.
        parts = [(name, fs) for name, fs in [("train", fit_set), ("val", val_set), ("test", test)] if len(fs)]
        outputs = {name: training.predict_with_attention(model, fs.sequences(), train_config.batch_size, pad_to,
                                                         padding, extra_inputs["fit" if name == "train" else name])
                   for name, fs in parts}
        predicted = run.write_evaluation(parts, outputs, classes)
        metrics = evaluate_predictions(test.labels, predicted["test"], classes)
        metrics["n_test"] = metrics.pop("n")
        metrics["best_epoch"] = best_epoch
        metrics["diverged_epoch"] = diverged_epoch
        metrics["val_ua"] = evaluate_predictions(val_set.labels, predicted["val"], classes)["ua"] \
            if len(val_set) else None
        weights = outputs["test"]["weights"]
        metrics.update(attention_metrics(np.concatenate(weights), np.array([len(w) for w in weights]), test.ids,
                                         train.meta.get("manifest")))
        run.write_metrics(metrics)
    except (InputError, OSError):
        if not resuming:
            run.remove()  # nothing half-written stays behind
        raise
    run.mark_complete()
    return metrics


def load_data(experiment):
    """``(train, test, sources, classes)`` of the experiment's feature sets, checked (as search.py loads them too)."""
    data = experiment.data
    return protocols.load_train_test(data.data, data.train, data.test, data.cv, data.input_padding,
                                     split_by=data.split_by, group_by=data.group_by)


def main(argv=None):
    experiment, saved_config = parse_args(argv)
    if experiment.training.strategy == "multiworker":
        # every worker runs all of main; only the chief's --out is kept
        experiment = experiment.with_out(worker_out(experiment.output.out))

    # Data: every input is checked before anything is written.
    train, test, sources, classes = load_data(experiment)
    data_files = runs.describe_data_files(sources)
    if not experiment.output.resume:
        runs.warn_if_data_changed(saved_config, data_files)

    # One run per seed (sibling folders when there are several), each a fold set with --cv.
    for metrics, title in protocols.run_seeds(experiment, train, test, classes, data_files, train_one_run,
                                              resume=bool(experiment.output.resume)):
        print(format_report(metrics, title))
    return 0


if __name__ == "__main__":
    run_main(main)
