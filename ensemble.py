"""Combine the class probabilities of runs on the same test utterances into a run folder of its own.

    python ensemble.py results/emodb/att-tanh-seed1 results/emodb/linear-svm --out results/emodb/ens
    python ensemble.py results/tanh_seed1 results/mlp-seed1 --method mean --out results/ens-mean
"""

import argparse
from pathlib import Path

from serattn.training import fusion as ensemble
from serattn.training.ensemble_run import write_ensemble
from serattn.runs import folder as runs
from serattn.errors import ArgumentParser, run_main
from serattn.analysis.metrics import format_report


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
    return args


def main(argv=None):
    args = parse_args(argv)
    metrics, title = write_ensemble(args.run_dirs, args.out, args.method, args.step, args.overwrite, args.quiet)
    print(format_report(metrics, title))
    return 0


if __name__ == "__main__":
    run_main(main)
