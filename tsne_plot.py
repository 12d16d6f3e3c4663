"""t-SNE maps of the attention representations per class (Figure 2(c)(d)) from a run folder.

Embeds the 60-d attention representation z of each utterance in 2-d with
scikit-learn's t-SNE (perplexity 40 as published), one panel per split in the
published class colors, and measures how well the classes separate in the 60-d
space itself (silhouette score, cross-validated 5-nearest-neighbour accuracy).

    python tsne_plot.py results/tanh_seed1
    python tsne_plot.py results/tanh_seed1 --max-points 2000 --split test
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from serattn.analysis.representations import class_separation, stratified_subsample, tsne_map
from serattn.plots import figures as plots
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.runs.reading import ATTENTION_FILE, check_splits, open_run

MIN_POINTS = 4  # t-SNE and the separation scores need a few points per split


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="run folder written by train_attention_lstm.py")
    analysis = parser.add_argument_group("t-SNE")
    analysis.add_argument("--perplexity", type=float, default=40.0,
                          help="t-SNE perplexity (default: %(default)s, as published); clipped "
                               "below the number of points of a split")
    analysis.add_argument("--max-points", type=int,
                          help="at most this many utterances per split, drawn stratified by class "
                               "(default: all; t-SNE time grows with the count)")
    analysis.add_argument("--split", nargs="+", default=["train", "test"],
                          help="splits to map, one panel each (default: train test)")
    analysis.add_argument("--seed", type=int, default=0,
                          help="seed of the subsampling, t-SNE and cross-validation (default: 0)")
    output = parser.add_argument_group("output")
    output.add_argument("--out-dir", help="folder for figures and tables (default: RUN_DIR/figures)")
    output.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    args = parser.parse_args(argv)
    if args.perplexity <= 0:
        raise InputError(f"--perplexity must be positive, got {args.perplexity:g}")
    if args.max_points is not None and args.max_points < MIN_POINTS:
        raise InputError(f"--max-points must be at least {MIN_POINTS}, got {args.max_points}")
    return args


def main(argv=None):
    args = parse_args(argv)
    run = open_run(args.run_dir)
    attention = run.attention()
    check_splits(args.split, attention.split, run.path / ATTENTION_FILE)
    out_dir = Path(args.out_dir) if args.out_dir else run.figures_dir
    rng = np.random.default_rng(args.seed)

    panels, rows, separation = [], [], {}
    for split in args.split:
        # Points of this split, subsampled per class when asked.
        index = np.flatnonzero(attention.split == split)
        if args.max_points is None and len(index) > 3000:
            print(f"{split}: t-SNE of {len(index)} points takes minutes; "
                  f"--max-points 2000 gives a quick look", file=sys.stderr)
        if args.max_points is not None and len(index) > args.max_points:
            index = index[stratified_subsample(attention.labels[index], args.max_points, rng)]
        if len(index) < MIN_POINTS:
            raise InputError(f"split '{split}' of '{run.path / ATTENTION_FILE}' has {len(index)} "
                             f"utterances; t-SNE needs at least {MIN_POINTS}")
        z, labels = attention.z[index].astype(np.float64), attention.labels[index]

        # Separation in the 60-d space, then the 2-d map.
        separation[split] = class_separation(z, labels, args.seed)
        perplexity = clip_perplexity(args.perplexity, len(index), split)
        separation[split]["perplexity"] = perplexity
        points = tsne_map(z, perplexity, args.seed)
        title = f"{split} (n={len(index)}, perplexity {perplexity:g})"
        if separation[split]["knn5_ua"] is not None:
            title += f"\n5-NN UA in {z.shape[1]}-d: {100 * separation[split]['knn5_ua']:.1f}%"
        panels.append((title, points, labels))
        rows += [(attention.ids[i], split, attention.labels[i], f"{x:.4f}", f"{y:.4f}")
                 for i, (x, y) in zip(index, points)]
        _print_separation(split, separation[split])

    title = f"{run.name}: t-SNE of the attention representations z"
    out_dir.mkdir(parents=True, exist_ok=True)
    plots.save_figure(plots.plot_tsne(panels, run.classes, title), out_dir / "tsne.png")
    plots.save_csv(out_dir / "tsne.csv", ("id", "split", "label", "x", "y"), rows)
    plots.save_json(out_dir / "tsne_separation.json", {
        "space": f"attention representation z ({attention.z.shape[1]}-d)",
        "max_points": args.max_points, "seed": args.seed, "splits": separation})
    print(f"wrote {out_dir / 'tsne.png'}, tsne.csv and tsne_separation.json")
    return 0


def clip_perplexity(perplexity, n_points, split):
    """t-SNE needs perplexity < number of points; clip with a warning."""
    if perplexity < n_points:
        return float(perplexity)
    clipped = float(max(1, n_points - 1))
    print(f"warning: --perplexity {perplexity:g} is not below the {n_points} points of split "
          f"'{split}'; using {clipped:g}", file=sys.stderr)
    return clipped


def _print_separation(split, values):
    def show(value, percent=True):
        if value is None:
            return "n/a"
        return f"{100 * value:.1f}%" if percent else f"{value:.3f}"

    print(f"{split}: n={values['n']}, silhouette {show(values['silhouette'], False)}, "
          f"5-NN accuracy {show(values['knn5_accuracy'])} (majority class "
          f"{show(values['majority_accuracy'])}), 5-NN UA {show(values['knn5_ua'])} "
          f"(chance {show(values['chance_ua'])})")


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
