"""Train the published attention LSTM on a feature set and save a self-contained run folder.

    python train_attention_lstm.py --data data/demo/features.npz --out results/demo
    python train_attention_lstm.py --train train.npz --test test.npz --activation relu --out results/relu
    python train_attention_lstm.py --data data/emodb_2s.npz --cv loso --seeds 1,2,3 --out results/emodb
    python train_attention_lstm.py --data data/demo/features.npz --target arousal,valence --out results/demo-av
    python train_attention_lstm.py --resume results/demo          # continue an interrupted run
    python train_attention_lstm.py --recipe recipes/demo.yaml --epochs 5   # a recipe file, a flag on top
"""

import argparse
from pathlib import Path

import serattn
from serattn import config
from serattn.analysis.metrics import format_report
from serattn.config import LSTM_MODELS, NORMALIZATIONS, PRESETS, STRATEGIES
from serattn.define import ACTIVATIONS, FUNCTIONALS_FITS, FUNCTIONALS_NORMS
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.experiment import Experiment, merge, nest, read_recipe, saved_layer
from serattn.poolings import pooling_names
from serattn.runs import folder as runs
from serattn.targets import TARGET_LOSSES

TRAINER = "attention-lstm"


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
    config.add_label_map_flags(data)

    model = parser.add_argument_group("model")
    model.add_argument("--model", default="attention-lstm", choices=LSTM_MODELS,
                       help="the published attention LSTM, or the same LSTM without attention")
    model.add_argument("--units", type=int, default=60, help="LSTM units")
    model.add_argument("--activation", default="tanh", choices=ACTIVATIONS, help="LSTM activation")
    model.add_argument("--recurrent-dropout", type=float, default=0.5, help="LSTM recurrent dropout")
    model.add_argument("--attention-units", type=int, default=50, help="units of the first attention layer")
    model.add_argument("--attention-activation", default="tanh", choices=ACTIVATIONS,
                       help="activation of the first attention layer")
    model.add_argument("--pooling", default=None, choices=pooling_names(),
                       help="attention-lstm: attention (published, default), attentive-stats (weighted mean "
                            "and std), multihead (--heads H), attention+mean, attention+stats (mean and std "
                            "over frames), attention+functionals (9 functionals of the input frames), region-attention "
                            "(pools 0.25-s regions of a small convolution of the input frames); "
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
    model.add_argument("--functionals-fit", default="joint", choices=FUNCTIONALS_FITS + ("auto",),
                       help="how the +functionals poolings weigh their functionals: joint (default: trained with the "
                            "network), logreg: a logistic regression fitted to the training set first (C by inner "
                            "speaker folds, as train_static.py's), kept frozen, the network trained on its "
                            "cross-fitted logits to add its own (needs --functionals-norm speaker and --target "
                            "emotion), or auto: logreg where it applies, joint otherwise")
    model.add_argument("--target", default="emotion",
                       help="what the head predicts: emotion (the classes; default), numeric manifest columns such as "
                            "arousal,valence,dominance (a regression head, scored by CCC), or both, e.g. "
                            "emotion,arousal,valence (multi-task)")
    model.add_argument("--no-mask", dest="mask", action="store_false",
                       help="published behaviour: pre-pad to --max-length and let attention see padding")
    model.add_argument("--max-length", type=int, default=None,
                       help="frames to pad to with --pad-to-max/--no-mask (default: the longest utterance)")

    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=config.parse_epochs, default=50,
                          help="most epochs to train, or auto: chosen by 3 inner speaker folds of the training "
                               "speakers (each up to 50 epochs, early stopping on its validation UA), then every "
                               "training speaker trains that many (replaces --val-speakers; epochs_auto.json)")
    training.add_argument("--patience", type=int, default=10,
                          help="epochs without a better validation UA before stopping")
    training.add_argument("--batch-size", type=int, default=32, help="utterances per batch")
    training.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate")
    training.add_argument("--clipnorm", type=float, default=None, help="clip gradients to this norm")
    training.add_argument("--class-weight", default="balanced",
                          help="loss weight per class: balanced, none, or A=1.1,E=0.5,...")
    training.add_argument("--target-loss", default="ccc", choices=TARGET_LOSSES,
                          help="loss of the numeric targets: ccc (1 - CCC over the batch; default) or mse")
    training.add_argument("--loss-weights", metavar="TARGET=W,...",
                          help="each target's weight in the loss and in model selection, e.g. emotion=1,arousal=0.5 "
                               "(default: 1 each; dimensional runs select the epoch of the best mean validation CCC)")
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
    training.add_argument("--seed-ensemble", action="store_true",
                          help="with --seeds: also write OUT-ensemble, the seeds' class probabilities averaged")
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
    output.add_argument("--recipe", help="a recipe file (YAML, see recipes/): the experiment to run (flags given "
                                         "here win)")
    output.add_argument("--config", help="rerun with the flags of a run's config.json (flags given here win)")
    output.add_argument("--preset", choices=sorted(PRESETS),
                        help="published: the published model (the defaults); "
                             + "; ".join(f"{name}: " + " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                                                                for k, v in flags.items())
                                         for name, flags in PRESETS.items() if flags)
                             + " (flags given here win)")
    output.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last epoch")
    return parser


def parse_args(argv):
    """The flags as a checked :class:`~serattn.experiment.Experiment`, and the config.json it reruns (or None)."""
    spec, saved = experiment_spec(argv)
    return Experiment.from_dict(spec), saved


def experiment_spec(argv):
    """``(experiment dict, saved config.json or None)`` of a command line, not yet resolved or checked.

    Layers, later ones winning: ``--preset``, then ``--recipe`` or the run of ``--config``/``--resume``,
    then the flags given. search.py adds each trial's values on top of this dict.
    """
    parser = build_parser()
    given = parser.parse_given(argv)
    preset, recipe, config_file = given.pop("preset", None), given.pop("recipe", None), given.pop("config", None)
    given.pop("debug", None)
    if recipe and (config_file or given.get("resume")):
        raise InputError("give --recipe, --config or --resume, one of them: each names the whole experiment")
    layers = [nest(PRESETS[preset], TRAINER)] if preset else []
    saved = None
    if given.get("resume") or config_file:
        resume = given.get("resume")
        saved = runs.read_config(Path(resume, runs.CONFIG_FILE) if resume else config_file)
        layers.append(saved_layer(saved, TRAINER, resume=bool(resume)))
    if recipe:
        layers.append(read_recipe(recipe))
    return merge(*layers, nest(given, TRAINER)), saved


def main(argv=None):
    experiment, saved_config = parse_args(argv)
    serattn.run(experiment, rerun_of=saved_config, report=lambda metrics, title: print(format_report(metrics, title)))
    return 0


if __name__ == "__main__":
    run_main(main)
