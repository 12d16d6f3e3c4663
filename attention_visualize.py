"""Plot where the attention goes, per class, from a saved run folder (Figure 2(a)(b)).

Each utterance's attention weights are mapped onto --slots equal fractions of its
duration (see serattn.analysis.attention.slot_profiles), averaged per class and split, and
drawn with the published class colors; on a corpus with cue times in its manifest
it also reports how much attention falls on the class cue.

    python attention_visualize.py results/tanh_seed1
    python attention_visualize.py results/tanh_seed1 --split test --published-algorithm
    python attention_visualize.py results/tanh_seed1 --utterance wav/test/A/utt0001.wav
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from serattn.analysis import attention as attn
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.plots import figures as plots
from serattn.plots.attention import (cue_report, cue_peaks_line, manifest_of, plot_class_slots, plot_cue_slots, plot_heads,
                                     plot_utterance, predicted_labels)
from serattn.runs.reading import ATTENTION_FILE, check_splits, open_run


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="run folder written by train_attention_lstm.py")
    analysis = parser.add_argument_group("analysis")
    analysis.add_argument("--slots", type=int, default=attn.DEFAULT_SLOTS,
                          help="time slots per utterance (default: %(default)s, as published)")
    analysis.add_argument("--split", nargs="+", default=["train", "test"],
                          help="splits to plot, one panel each (default: train test)")
    analysis.add_argument("--published-algorithm", action="store_true",
                          help="slot sums with integer-floored intervals exactly as the published "
                               "avg_distribution (empty slots for utterances under --slots frames)")
    analysis.add_argument("--utterance", action="append", metavar="ID",
                          help="plot this utterance's attention over time instead (repeatable)")
    analysis.add_argument("--manifest", help="corpus manifest CSV with cue_start_s/cue_end_s "
                          "(default: the one named in the run's config.json)")
    output = parser.add_argument_group("output")
    output.add_argument("--out-dir", help="folder for figures and tables (default: RUN_DIR/figures)")
    output.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    args = parser.parse_args(argv)
    if args.slots < 1:
        raise InputError(f"--slots must be at least 1, got {args.slots}")
    return args


def main(argv=None):
    args = parse_args(argv)
    run = open_run(args.run_dir)
    attention = run.attention()
    out_dir = Path(args.out_dir) if args.out_dir else run.figures_dir
    manifest, manifest_path = manifest_of(run, args.manifest)

    if args.utterance:
        for utterance_id in args.utterance:
            path, note = plot_utterance(run, attention, utterance_id, manifest, manifest_path, out_dir)
            if note:
                print(note)
            print(f"wrote {path}")
        return 0

    # Class means of the slot profiles per split, then one panel per head.
    check_splits(args.split, attention.split, run.path / ATTENTION_FILE)
    attention = attention.select(np.isin(attention.split, args.split))
    figure, stem, rows, peaks = plot_class_slots(run, attention, args.split, args.slots, args.published_algorithm)
    print("\n".join(peaks))
    out_dir.mkdir(parents=True, exist_ok=True)
    plots.save_figure(figure, out_dir / f"{stem}.png")
    plots.save_csv(out_dir / f"{stem}.csv", ("split", "label", "slot", "mean", "std"), rows)
    print(f"wrote {out_dir / f'{stem}.png'} and {stem}.csv")
    if attention.head_weights is not None and not args.published_algorithm:
        for split in args.split:
            path = plot_heads(run, attention, split, args.slots, out_dir)
            print(f"wrote {path}")

    # Does attention find the class cue? Only where the manifest knows the cue.
    if manifest is not None:
        report, note = cue_report(attention, manifest, manifest_path, run.classes, predicted_labels(run, attention))
        if note:
            print(note)
        if report is not None:
            plots.save_json(out_dir / "attention_cue.json", report)
            for split, values in report["splits"].items():
                print(f"{split}: {values['all']['mean_mass_in_cue']:.1%} of the attention on the cue, "
                      f"which spans {values['all']['mean_cue_share']:.1%} of the duration; "
                      f"{cue_peaks_line(values)}")
            print(f"wrote {out_dir / 'attention_cue.json'}")
        aligned = plot_cue_slots(run, attention, manifest, args.split, args.slots)
        if aligned is not None:
            figure, rows, peaks = aligned
            print("\n".join(peaks))
            plots.save_figure(figure, out_dir / "attention_cue_slots.png")
            plots.save_csv(out_dir / "attention_cue_slots.csv", ("split", "label", "slot", "mean", "std", "n"), rows)
            print(f"wrote {out_dir / 'attention_cue_slots.png'} and attention_cue_slots.csv")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
