"""Compare saved runs: UA/WA per configuration (Table 1) and a confusion matrix (Table 2).

Dimensional runs (--target arousal,valence) get a CCC table instead (CCC, Pearson r and MSE per
dimension, speaker-bootstrap interval and paired speaker permutation test on the mean CCC);
multi-task runs get both tables.

Runs are grouped by config keys (--by), or by every key that differs between them
(seeds, paths, data hashes, versions and commits excepted, so repeated seeds are
what gets averaged). Numbers are percentages with one decimal, as in the paper. Runs
are averaged only if they have the same classes and test utterances;
--separate-test-sets puts runs on different ones in groups of their own.

    python compare_runs.py results/tanh_seed* results/relu_seed* --by activation
    python compare_runs.py results/*_seed* --markdown --confusion-group --out results/paper/tables.md
    python compare_runs.py results/tanh_seed1 --confusion results/tanh_seed1 --csv
"""

import argparse
import sys
from pathlib import Path

from serattn.analysis import statistics as stats
from serattn.atomic import write_atomically
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.report.tables import (TEST_SET_KEY, check_dimensional, check_same_test_sets, confusion_table, describe,
                                   label_map_table, test_sets_table,
                                   flatten_config, group_runs, grouping_keys, interval_columns, load_runs, render,
                                   summary_table, summed_confusion, test_set_numbers, value_summary_table)
from serattn.runs.reading import open_run

def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run folders written by train_attention_lstm.py")
    grouping = parser.add_argument_group("grouping")
    grouping.add_argument("--by", action="append", metavar="KEY",
                          help="group by this config key (repeatable or comma list; nested keys "
                               "as feature_meta.level; default: every key that differs)")
    grouping.add_argument("--separate-test-sets", action="store_true",
                          help="group runs by their classes and test utterances too, instead of refusing "
                               "to average runs that differ in them")
    confusion = grouping.add_mutually_exclusive_group()
    confusion.add_argument("--confusion", metavar="RUN_DIR",
                           help="also print this run's confusion matrix (Table 2)")
    confusion.add_argument("--confusion-group", action="store_true",
                           help="also print each group's confusion matrix, summed over its runs")
    statistics = parser.add_argument_group("statistics")
    statistics.add_argument("--resamples", type=int, default=stats.RESAMPLES,
                            help="speaker bootstrap resamples and random permutations (default: %(default)s)")
    statistics.add_argument("--seed", type=int, default=stats.SEED,
                            help="seed of the resampling (default: %(default)s)")
    output = parser.add_argument_group("output")
    style = output.add_mutually_exclusive_group()
    style.add_argument("--markdown", dest="format", action="store_const", const="markdown",
                       help="markdown tables (default for --out)")
    style.add_argument("--csv", dest="format", action="store_const", const="csv",
                       help="comma-separated tables")
    output.add_argument("--out", metavar="FILE",
                        help="also write the tables to FILE (markdown unless --csv)")
    output.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    args = parser.parse_args(argv)
    if args.resamples < 100:
        parser.error(f"--resamples must be at least 100, got {args.resamples}")
    return args


def main(argv=None):
    args = parse_args(argv)
    runs = load_runs(args.run_dirs)

    # Table 1: groups of runs, mean ± std over each group's runs (seeds).
    configs = [flatten_config(run.record.values) for run, _ in runs]
    keys = grouping_keys(args.by, configs)
    if args.separate_test_sets:
        for config, number in zip(configs, test_set_numbers(runs)):
            config[TEST_SET_KEY] = number
        keys = [TEST_SET_KEY, *keys]
    groups = group_runs(runs, configs, keys)
    check_same_test_sets(groups)
    dims = check_dimensional(runs)
    tables = [value_summary_table(groups, keys, dims, args.resamples, args.seed)] if dims else []
    if not dims or all("confusion" in metrics for _, metrics in runs):  # categorical, or multi-task: UA too
        tables.append(summary_table(groups, keys, interval_columns(groups, args.resamples, args.seed)))
    elif args.confusion or args.confusion_group:
        raise InputError("--confusion and --confusion-group need runs that predict classes; these are dimensional")
    tables += [table for table in (test_sets_table(groups, keys), label_map_table(runs)) if table]

    # Table 2: confusion matrices, of one run or summed per group.
    if args.confusion:
        run = open_run(args.confusion)
        metrics = run.metrics()
        tables.append(confusion_table(metrics.confusion, list(metrics.classes),
                                      f"Confusion matrix of {run.name} (test)"))
    elif (args.confusion_group or len(runs) == 1) and not (dims and "confusion" not in runs[0][1]):
        for values, members in groups:
            confusion, classes = summed_confusion(members)
            name = members[0][0].name if len(members) == 1 else \
                f"{describe(keys, values)}, summed over {len(members)} runs"
            tables.append(confusion_table(confusion, classes, f"Confusion matrix of {name} (test)"))

    print(render(tables, args.format or "text"))
    if args.out:
        out = Path(args.out)
        text = render(tables, args.format or "markdown") + "\n"
        write_atomically(out, lambda temporary: temporary.write_text(text))
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
