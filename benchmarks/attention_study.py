"""Where attention wins: UA and cue ratio against the cue's share of the utterance (issue 29).

For each cue share, one demo corpus (``make_demo_corpus.py --duration D --cue-share S``;
everything but the cue's length is the same across shares: same seed, same labels,
speakers, durations and audio outside the cue), its frame features and its IS09-style
functionals; then, per seed, every model of :data:`MODELS` (each a recipe in recipes/) on its speaker-independent
split (a third of the speakers test), all normalized per speaker (``--norm``). Finished runs are skipped, so the command resumes
where it stopped; ``--report-only`` just collects what is there. The table (UA as the
mean over seeds, with the 95% interval of a speaker bootstrap of the seed-mean counts,
and the mean test cue ratio) and the figure (UA against cue share, one line per model)
go to ``--doc`` and ``--figure``.

    nice -n 10 python benchmarks/attention_study.py                  # everything (resumable)
    python benchmarks/attention_study.py --report-only               # table and figure from the runs so far
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serattn.analysis.statistics import bootstrap_scores, mean_counts, speaker_counts  # noqa: E402
from serattn.runs.folder import is_complete  # noqa: E402
from serattn.runs.reading import open_run  # noqa: E402

SHARES = (1.0, 0.5, 0.25, 0.1, 0.05)
# name -> (script, its recipe: the model at the 25% cue, seed 1); every run gets --data, --seed, --norm, --out
# (and the LSTMs the training budget) on top of the recipe.
MODELS = {
    "functionals (logreg)": ("train_static.py", "recipes/attention_study_functionals.yaml"),
    "mean pooling (basic LSTM)": ("train_attention_lstm.py", "recipes/attention_study_mean_pooling.yaml"),
    "published attention": ("train_attention_lstm.py", "recipes/attention_study_published.yaml"),
    "recommended preset": ("train_attention_lstm.py", "recipes/attention_study_recommended.yaml"),
    "joint functionals (earlier recommended preset)": ("train_attention_lstm.py",
                                                       "recipes/attention_study_joint_functionals.yaml"),
    "fitted functionals with mean pooling": ("train_attention_lstm.py", "recipes/attention_study_fitted_mean.yaml"),
    "region attention": ("train_attention_lstm.py", "recipes/attention_study_region.yaml"),
    "evidence attention": ("train_attention_lstm.py", "recipes/attention_study_evidence.yaml"),
    "guided evidence attention (localizing preset)": ("train_attention_lstm.py", "recipes/attention_study_guided.yaml"),
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="results/attention_study", help="corpora and runs (default: %(default)s)")
    parser.add_argument("--shares", default=",".join(map(str, SHARES)), help="cue shares (default: %(default)s)")
    parser.add_argument("--seeds", default="1,2,3", help="seeds of every LSTM (default: %(default)s)")
    parser.add_argument("--models", default=",".join(MODELS), help="models, comma-separated (default: all)")
    parser.add_argument("--utterances", type=int, default=450, help="utterances per corpus (default: %(default)s)")
    parser.add_argument("--speakers", type=int, default=15, help="speakers per corpus (default: %(default)s)")
    parser.add_argument("--duration", default="3.8:4.2",
                        help="utterance seconds; 5%% of the shortest must last a syllable (default: %(default)s)")
    parser.add_argument("--norm", default="speaker", help="--norm of every model (default: %(default)s)")
    parser.add_argument("--epochs", default="30", help="--epochs of the LSTMs (default: %(default)s)")
    parser.add_argument("--patience", default="8", help="--patience of the LSTMs (default: %(default)s)")
    parser.add_argument("--report-only", action="store_true", help="collect the finished runs, train nothing")
    parser.add_argument("--doc", default="docs/ATTENTION_STUDY.md", help="the page whose table is rewritten")
    parser.add_argument("--figure", default="docs/figures/attention_study.png", help="the figure")
    return parser.parse_args(argv)


def script(name, *args):
    """Run a repository script; stop with its stderr if it fails."""
    done = subprocess.run([sys.executable, str(ROOT / name), *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{name} {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")


def make_corpus(work, share, args):
    """The corpus of one cue share, its frame features and its functionals (skipped when there)."""
    folder = work / f"corpus-{share:g}"
    if not (folder / "manifest.csv").is_file():
        script("make_demo_corpus.py", "--out", folder, "--utterances", args.utterances, "--speakers", args.speakers,
               "--duration", args.duration, "--cue-share", share, "--overwrite")
    for level in ("lld", "functionals"):
        out = folder / f"{level}.npz"
        if not out.is_file():
            script("extract_features.py", "--manifest", folder / "manifest.csv", "--level", level, "--out", out,
                   "--jobs", "1", "--quiet")
    return folder


def run_name(work, share, model, seed):
    return work / f"runs-{share:g}" / f"{model.split(' (')[0].replace(' ', '-')}-seed{seed}"


def train(work, corpus, share, model, seed, args):
    """One run, unless it finished before (an unfinished one is replaced)."""
    out = run_name(work, share, model, seed)
    if is_complete(out):
        return
    name, recipe = MODELS[model]
    recipe = ROOT / recipe
    if name == "train_static.py":
        script(name, "--recipe", recipe, "--data", corpus / "functionals.npz", "--norm", args.norm, "--seed", seed,
               "--quiet", "--overwrite", "--out", out)
    else:
        script(name, "--recipe", recipe, "--data", corpus / "lld.npz", "--norm", args.norm, "--epochs", args.epochs,
               "--patience", args.patience, "--seed", seed, "--quiet", "--overwrite", "--out", out)
    print(f"finished {out}", file=sys.stderr, flush=True)


def collect(work, shares, models, seeds):
    """{(share, model): row} of the finished runs: UA mean over seeds, bootstrap interval, cue ratio."""
    rows = {}
    for share in shares:
        for model in models:
            folders = [run_name(work, share, model, seed) for seed in seeds]
            folders = [folder for folder in folders if is_complete(folder)]
            if not folders:
                continue
            counts, uas, ratios = [], [], []
            for folder in folders:
                run = open_run(folder)
                columns = run.predictions()
                test = columns["split"] == "test"
                counts.append(speaker_counts(columns["true"][test], columns["predicted"][test],
                                             columns["speaker"][test], run.classes))
                metrics = json.loads((folder / "metrics.json").read_text())
                uas.append(metrics["ua"])
                if metrics.get("attention_cue_ratio") is not None:
                    ratios.append(metrics["attention_cue_ratio"])
            scores = bootstrap_scores(mean_counts(counts))
            rows[share, model] = {"runs": len(folders), "ua": float(np.mean(uas)), "ua_sd": float(np.std(uas)),
                                  "low": scores["ua"][1], "high": scores["ua"][2],
                                  "cue_ratio": float(np.mean(ratios)) if ratios else None}
    return rows


def table(rows, shares, models):
    lines = ["| cue share | model | runs | UA % (mean ± sd over seeds) | 95% CI (speaker bootstrap) | cue ratio |",
             "|---:|---|---:|---:|---:|---:|"]
    for share in shares:
        for model in models:
            row = rows.get((share, model))
            if row is None:
                continue
            ratio = "-" if row["cue_ratio"] is None else f"{row['cue_ratio']:.2f}"
            spread = f" ± {100 * row['ua_sd']:.1f}" if row["runs"] > 1 else ""
            lines.append(f"| {share:g} | {model} | {row['runs']} | {100 * row['ua']:.1f}{spread} | "
                         f"{100 * row['low']:.1f}-{100 * row['high']:.1f} | {ratio} |")
    return "\n".join(lines)


def figure(rows, shares, models, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for model in models:
        points = [(share, rows[share, model]) for share in shares if (share, model) in rows]
        if not points:
            continue
        x = np.array([share for share, _ in points])
        ua = np.array([100 * row["ua"] for _, row in points])
        low = np.array([100 * row["low"] for _, row in points])
        high = np.array([100 * row["high"] for _, row in points])
        ax.errorbar(x, ua, yerr=[ua - low, high - ua], marker="o", capsize=3, label=model)
    ax.set_xscale("log")
    ax.set_xticks(list(shares), [f"{share:g}" for share in shares])
    ax.set_xlabel("cue share of the utterance")
    ax.set_ylabel("test UA % (mean of seeds, 95% speaker-bootstrap CI)")
    ax.axhline(20, color="grey", linewidth=0.8, linestyle=":")
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


BEGIN, END = "<!-- study table: begin -->", "<!-- study table: end -->"


def write_doc(path, text):
    """Replace the table between the markers of ``path`` (or append the markers)."""
    path = Path(path)
    page = path.read_text() if path.is_file() else "# Attention study\n"
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in page and END in page:
        page = page[:page.index(BEGIN)] + block + page[page.index(END) + len(END):]
    else:
        page = page.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(page)


def main(argv=None):
    args = parse_args(argv)
    work = Path(args.work)
    shares = [float(share) for share in args.shares.split(",")]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    models = [model for model in args.models.split(",") if model]
    unknown = [model for model in models if model not in MODELS]
    if unknown:
        sys.exit(f"unknown model(s) {', '.join(unknown)}; expected: {', '.join(MODELS)}")
    if not args.report_only:
        for seed in seeds:  # seed-major: every share and model gets seed 1 before any gets seed 2
            for share in shares:
                corpus = make_corpus(work, share, args)
                for model in models:  # the static model too: its inner folds shuffle speakers with the seed
                    train(work, corpus, share, model, seed, args)
    rows = collect(work, shares, models, seeds)
    write_doc(args.doc, table(rows, shares, models))
    figure(rows, shares, models, args.figure)
    print(table(rows, shares, models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
