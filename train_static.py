"""Train a static scikit-learn model (linear or RBF SVM, logistic regression, MLP) on utterance functionals.

    python train_static.py --data data/emodb_2s_func.npz --cv loso --model linear-svm --out results/emodb/lsvm
    python train_static.py --data data/emodb_2s_func.npz --cv loso --model mlp --seeds 1,2,3 --out results/mlp
    python train_static.py --train train_func.npz --test test_func.npz --model logreg --val-speakers 0
    python train_static.py --recipe recipes/emodb_2s_static_linear_svm.yaml --out results/lsvm
"""

import serattn
from serattn import config
from serattn.analysis.metrics import format_report
from serattn.config import CALIBRATIONS, FRAME_POOLS, NORMALIZATIONS, STATIC_MODELS, describe_grids
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.experiment import Experiment, merge, nest, read_recipe, saved_layer
from serattn.runs import folder as runs

TRAINER = "static"


def build_parser():
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument("--data", help="one feature set (.npz) whose 'split' says train/test (any split with --cv)")
    data.add_argument("--train", help="training feature set (.npz)")
    data.add_argument("--test", help="test feature set (.npz)")
    config.add_speaker_fold_flags(data)
    config.add_label_map_flags(data)
    data.add_argument("--val-speakers", default="0.2",
                      help="validation speakers held out of training to choose hyper-parameters (and give "
                           "the val predictions ensemble.py tunes on): a fraction, a count, comma-separated "
                           "ids, or 0 for none (then an inner speaker-group CV chooses, and the final model "
                           "trains on every training speaker) (default: %(default)s, as train_attention_lstm.py)")

    features = parser.add_argument_group("features")
    features.add_argument("--pool", default="none", choices=FRAME_POOLS,
                          help="frame-level (LLD) input: refuse it (none), or use mean and std over each "
                               "utterance's frames (mean) (default: %(default)s)")
    features.add_argument("--norm", default="global", choices=NORMALIZATIONS,
                          help="z-normalization: statistics of the training speakers (global), of each "
                               "speaker itself (speaker; uses unlabelled test audio), or none "
                               "(default: %(default)s)")

    model = parser.add_argument_group("model")
    model.add_argument("--model", default="linear-svm", choices=STATIC_MODELS,
                       help="linear-svm (the IS09 challenge baseline kind), rbf-svm, logreg or mlp "
                            "(default: %(default)s)")
    model.add_argument("--grid", default=None,
                       help=f"hyper-parameter values to choose from, 'NAME=V1,V2;NAME2=...' "
                            f"(default per model: {describe_grids()})")
    model.add_argument("--hidden", default=None,
                       help="mlp only: hidden layer sizes, comma-separated units (default: 128)")
    model.add_argument("--max-iter", type=int, default=None,
                       help="most solver iterations; mlp: epochs (default: 10000; mlp 300)")
    model.add_argument("--calibration", default="auto", choices=CALIBRATIONS,
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
    output.add_argument("--recipe", help="a recipe file (YAML, see recipes/): the experiment to run (flags given "
                                         "here win)")
    output.add_argument("--config", help="rerun with the flags of a run's config.json (or a search's "
                                         "best/config.json); flags given here win")
    return parser


def parse_args(argv):
    """The flags as a checked :class:`~serattn.experiment.Experiment` of a static model."""
    return Experiment.from_dict(experiment_spec(argv)[0])


def experiment_spec(argv):
    """``(experiment dict, saved config.json or None)`` of a command line, not yet resolved or checked.

    Layers, later ones winning: ``--recipe`` or the run of ``--config``, then the flags given.
    search.py adds each trial's values on top of this dict.
    """
    parser = build_parser()
    given = parser.parse_given(argv)
    recipe, config_file = given.pop("recipe", None), given.pop("config", None)
    given.pop("debug", None)
    if recipe and config_file:
        raise InputError("give --recipe or --config, not both: each names the whole experiment")
    layers, saved = [], None
    if config_file:
        saved = runs.read_config(config_file)
        layers.append(saved_layer(saved, TRAINER))
    if recipe:
        layers.append(read_recipe(recipe))
    return merge(*layers, nest(given, TRAINER)), saved


def main(argv=None):
    experiment = parse_args(argv)
    serattn.run(experiment, report=lambda metrics, title: print(format_report(metrics, title)))
    return 0


if __name__ == "__main__":
    run_main(main)
