"""Validation and test UA of cross-validated runs, for choosing settings on validation speakers only.

    python benchmarks/validation_table.py results/emodb-variants/*

Per run folder (a --cv parent): the mean over folds of each fold's ``val_ua`` (the
UA of the validation speakers held out of that fold's training speakers: the
number to choose on), the median best epoch, and, for the record only, the pooled
test UA and the fold mean +- std of the test UA. Rows are sorted by validation UA.
Folders named ``NAME-seedK`` are also summarized over their seeds.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def read_times(path):
    """Run name -> wall-clock seconds, from run_queue.sh's times.tsv (the last entry wins)."""
    times = {}
    if path and Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            name, rc, seconds, *_ = line.split("\t")
            if rc == "0":
                times[name] = int(seconds)
    return times


def summarize(run_dir, times=None):
    run_dir = Path(run_dir)
    folds = sorted(run_dir.glob("fold-*/metrics.json"))
    if not (run_dir / "metrics.json").is_file() or not folds:
        return None
    pooled = json.loads((run_dir / "metrics.json").read_text())
    fold_metrics = [json.loads(path.read_text()) for path in folds]
    val = [m["val_ua"] for m in fold_metrics if m.get("val_ua") is not None]
    epochs = [m["best_epoch"] for m in fold_metrics if m.get("best_epoch") is not None]
    return {
        "run": run_dir.name,
        "val_ua_mean": 100 * float(np.mean(val)) if val else float("nan"),
        "best_epoch_median": float(np.median(epochs)) if epochs else float("nan"),
        "test_ua_pooled": 100 * pooled["ua"],
        "test_ua_fold_mean": 100 * pooled["ua_fold_mean"],
        "test_ua_fold_std": 100 * pooled["ua_fold_std"],
        "width": pooled.get("attention_effective_width"),
        "top10": pooled.get("attention_top10_mass"),
        "minutes": (times or {}).get(run_dir.resolve().name, float("nan")) / 60,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--times", default="logs/times.tsv", help="run_queue.sh's wall-clock log")
    args = parser.parse_args(argv)
    times = read_times(args.times)
    rows = [row for row in (summarize(run_dir, times) for run_dir in args.run_dirs) if row is not None]
    rows.sort(key=lambda row: (np.isnan(row["val_ua_mean"]), -np.nan_to_num(row["val_ua_mean"]), row["run"]))
    print("| run | val UA (mean over folds) | median best epoch | test UA pooled | test UA fold mean ± std "
          "| attention width | top-10% mass | minutes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        width = f"{r['width']:.2f}" if r["width"] is not None else ""
        top = f"{r['top10']:.2f}" if r["top10"] is not None else ""
        val = "–" if np.isnan(r["val_ua_mean"]) else f"{r['val_ua_mean']:.1f}"
        print(f"| {r['run']} | {val} | {r['best_epoch_median']:.0f} | {r['test_ua_pooled']:.1f} "
              f"| {r['test_ua_fold_mean']:.1f} ± {r['test_ua_fold_std']:.1f} | {width} | {top} "
              f"| {r['minutes']:.1f} |")
    groups = {}
    for r in rows:
        stem, _, seed = r["run"].rpartition("-seed")
        if stem and seed.isdigit():
            groups.setdefault(stem, []).append(r)
    if groups:
        print("\n| runs (over seeds) | seeds | test UA pooled, mean ± std | test UA fold mean, mean | "
              "attention width | top-10% mass | minutes per seed |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for stem, group in sorted(groups.items()):
            pooled = np.array([r["test_ua_pooled"] for r in group])
            spread = pooled.std(ddof=1) if len(pooled) > 1 else float("nan")  # sample std, as compare_runs
            width = np.mean([r["width"] for r in group if r["width"] is not None])
            top = np.mean([r["top10"] for r in group if r["top10"] is not None])
            print(f"| {stem} | {len(group)} | {pooled.mean():.1f} ± {spread:.1f} "
                  f"| {np.mean([r['test_ua_fold_mean'] for r in group]):.1f} | {width:.2f} | {top:.2f} "
                  f"| {np.nanmean([r['minutes'] for r in group]):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
