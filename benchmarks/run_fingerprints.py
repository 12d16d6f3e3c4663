"""Fingerprints of a fixed set of runs: do refactorings leave every number as it was?

    python benchmarks/run_fingerprints.py --out before.json          # on the old commit
    python benchmarks/run_fingerprints.py --compare before.json      # on the new one

Runs, each on small data made here (deterministic, a few minutes on 2 cores): the demo
corpus end to end, a LOSO cross-validation of the published model, two recommended-preset
runs (global and per-speaker normalization), a static run, an ensemble of a run and the
static run, and a two-trial search.
Each run's metrics.json (its timing keys left out), predictions.csv and history.csv
are hashed; ``--compare`` lists every file whose hash differs and exits 1 if any does.
The same commit on the same machine gives the same fingerprints (seeded, deterministic
ops), so a difference is a change of behaviour.
"""

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--units", "8", "--attention-units", "4", "--epochs", "3", "--quiet"]
HASHED = ("metrics.json", "predictions.csv", "history.csv")
TIMING_KEYS = ("seconds", "fit_seconds")


def run(*args, cwd):
    """Run a repository script; stop with its stderr if it fails."""
    done = subprocess.run([sys.executable, str(ROOT / args[0]), *map(str, args[1:])], cwd=cwd,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")


def make_runs(work):
    """The fixed set of run folders under ``work``: name -> folder (each with sub-folders of folds)."""
    sys.path.insert(0, str(ROOT))
    from serattn.features.feature_set import save_feature_set
    from serattn.testing import make_feature_set

    save_feature_set(make_feature_set(n=48, speakers=4, seed=3), work / "frames.npz")
    save_feature_set(make_feature_set(n=48, speakers=4, seed=3, min_length=1, max_length=1), work / "static.npz")
    run("make_demo_corpus.py", "--out", "demo", "--utterances", "40", "--speakers", "4", cwd=work)
    run("extract_features.py", "--manifest", "demo/manifest.csv", "--out", "demo/features.npz", "--jobs", "1",
        "--quiet", cwd=work)
    run("train_attention_lstm.py", "--data", "demo/features.npz", "--out", "demo-run", *TINY, cwd=work)
    run("train_attention_lstm.py", "--data", "frames.npz", "--cv", "loso", "--out", "loso", *TINY, cwd=work)
    run("train_attention_lstm.py", "--data", "frames.npz", "--preset", "recommended", "--out", "recommended",
        *TINY, cwd=work)
    run("train_attention_lstm.py", "--data", "frames.npz", "--preset", "recommended", "--norm", "speaker", "--out",
        "recommended-speaker", *TINY, cwd=work)  # per speaker: the functionals' classifier fitted first
    run("train_static.py", "--data", "static.npz", "--model", "logreg", "--grid", "C=0.1,1", "--out", "static",
        "--quiet", cwd=work)
    run("train_attention_lstm.py", "--data", "static.npz", "--out", "lstm-on-static", *TINY, cwd=work)
    run("ensemble.py", "lstm-on-static", "static", "--out", "ensemble", "--quiet", cwd=work)
    (work / "space.yaml").write_text("trainer: attention-lstm\nparams:\n  learning-rate: {low: 0.001, high: 0.01, "
                                     "log: true}\n")
    run("search.py", "--space", "space.yaml", "--trials", "2", "--inner-cv", "kfold-speakers", "2",
        "--data", "frames.npz", "--val-speakers", "0", "--out", "search", *TINY, cwd=work)
    return ["demo-run", "loso", "recommended", "recommended-speaker", "static", "lstm-on-static", "ensemble", "search"]


def fingerprint(path):
    if path.name == "metrics.json":
        metrics = json.loads(path.read_text())
        data = json.dumps(drop_timing(metrics), sort_keys=True).encode()
    else:
        data = path.read_bytes()
    return hashlib.sha256(data).hexdigest()


def drop_timing(value):
    if isinstance(value, dict):
        return {k: drop_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [drop_timing(v) for v in value]
    return value


def fingerprints(work, names):
    return {str(path.relative_to(work)): fingerprint(path)
            for name in names for path in sorted((work / name).rglob("*")) if path.name in HASHED}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the fingerprints to this JSON file")
    parser.add_argument("--compare", help="fingerprints of another commit to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        found = fingerprints(Path(work), make_runs(Path(work)))
    print(f"{len(found)} files fingerprinted", file=sys.stderr)
    if args.out:
        Path(args.out).write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        differ = sorted(name for name in set(before) | set(found) if before.get(name) != found.get(name))
        for name in differ:
            print(f"differs: {name}")
        print(f"{len(found) - len(differ)} of {len(set(before) | set(found))} files identical")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
