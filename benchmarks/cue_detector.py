"""The cue ratio a frame detector reaches when taught where the cue is, or only the utterances' classes.

    python benchmarks/cue_detector.py data/demo/features.npz

An attention model learns where to look from utterance labels alone. How much of the cue
could it find at best from the same frames? This script answers with supervision the
models never get: a gradient-boosted classifier of "this frame lies on the cue", trained on
the frames of the training (and validation) speakers, each frame described by the mean of
the per-speaker normalized frames around it (the width of evidence-attention's regions) and
by nothing of the rest of its utterance (which would tell every frame its utterance's class
where only the class is taught). Its logits, turned into an attention
by a softmax over each test utterance's frames (times each ``--factors`` value), give a cue
ratio per class as ``attention_visualize.py`` measures it; "peak" is the share of test
utterances whose highest logit lies on the cue over the cue's mean share, the limit of an
ever sharper softmax.

Two detectors: one for every class ("any class"), and one per class, trained on that
class's utterances and applied to them ("told the class"), the analogue of a model
attention per class read at the true class. A third is taught only what the attention
models are taught, each utterance's class ("utterance labels only"): per class, a classifier
of "this frame belongs to an utterance of the class", fitted on every training frame and
applied to the class's test utterances. The feature file must carry the corpus
manifest's cue columns (``cue_start_s``, ``cue_end_s``, ``duration_s``, as the demo
corpus's do).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serattn.analysis.attention import CUE_COLUMNS, cue_attention, cue_fractions, peak_in_cue  # noqa: E402
from serattn.errors import InputError, run_main  # noqa: E402
from serattn.features.feature_set import load_feature_set  # noqa: E402
from serattn.features.normalization import Normalization  # noqa: E402
from serattn.models.pooling import EVIDENCE_REGION_WIDTH  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", help="feature file (.npz) of a corpus whose manifest records the cue")
    parser.add_argument("--window", type=int, default=EVIDENCE_REGION_WIDTH,
                        help=f"frames averaged around each frame (default {EVIDENCE_REGION_WIDTH})")
    parser.add_argument("--factors", default="1,4", help="softmax sharpness factors, comma-separated (default 1,4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        args.factors = [float(f) for f in args.factors.split(",")]
    except ValueError:
        parser.error(f"--factors must be numbers, got '{args.factors}'")
    if any(f <= 0 for f in args.factors) or args.window < 1:
        parser.error("--factors and --window must be above 0")
    return args


def centred_means(frames, width):
    """Mean of the ``width`` frames centred on each frame, fewer at the edges: (T, D)."""
    total = np.concatenate([np.zeros((1, frames.shape[1])), np.cumsum(frames, axis=0)])
    window_start = np.arange(len(frames)) - width // 2
    first, stop = np.maximum(window_start, 0), np.minimum(window_start + width, len(frames))
    return (total[stop] - total[first]) / (stop - first)[:, None]


def frame_table(data, width):
    """``(X, on_cue, utterance, (cue_start, cue_stop))``: over every frame of ``data``, its description,
    whether its centre lies on the cue and its utterance's index; then each utterance's cue as fractions
    of its duration."""
    missing = [column for column in CUE_COLUMNS if column not in data.columns]
    if missing:
        raise InputError(f"the feature file has no {', '.join(missing)} column: this benchmark needs a corpus "
                         f"whose manifest records the cue (make_demo_corpus.py)")
    start, stop = cue_fractions({"path": data.ids, **data.columns}, data.ids)
    rows, on_cue = [], []
    for i, frames in enumerate(data.sequences()):
        frames = np.asarray(frames, dtype=np.float64)
        rows.append(centred_means(frames, width))  # what the frame's stretch says, nothing of the rest
        centre = (np.arange(len(frames)) + 0.5) / len(frames)
        on_cue.append((centre >= start[i]) & (centre < stop[i]))
    return np.vstack(rows), np.concatenate(on_cue), np.repeat(np.arange(len(data)), data.lengths), (start, stop)


DETECTORS = ("any class", "told the class", "utterance labels only")


def detector_logits(X, target, fit_rows, apply_rows, seed):
    """Logits of the frames' boolean ``target`` (on the cue, or of a class's utterance) for ``apply_rows``,
    from a classifier fitted on ``fit_rows``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=200, random_state=seed).fit(X[fit_rows], target[fit_rows])
    return model.decision_function(X[apply_rows])


def attention_from(logits, lengths, factor):
    """A softmax of ``factor * logits`` over each utterance's frames."""
    weights = []
    for scores in np.split(logits * factor, np.cumsum(lengths)[:-1]):
        scores = np.exp(scores - scores.max())
        weights.append(scores / scores.sum())
    return np.concatenate(weights)


def cue_ratios(data, width=EVIDENCE_REGION_WIDTH, factors=(1.0, 4.0), seed=0):
    """``{detector: {attention: {class or "all": cue ratio}}}`` over the test utterances."""
    if data.split is None or not np.any(data.split == "test"):
        raise InputError("the feature file has no test split: this benchmark fits on the other speakers")
    data = Normalization.fit(data, "speaker").apply(data)
    X, on_cue, utterance, (start, stop) = frame_table(data, width)
    testing = data.split[utterance] == "test"
    classes = sorted(set(data.labels[data.split == "test"]))
    logits = {detector: np.full(len(X), np.nan) for detector in DETECTORS}
    logits["any class"][testing] = detector_logits(X, on_cue, ~testing, testing, seed)
    for label in classes:
        own = data.labels[utterance] == label
        if not np.any(own & ~testing):
            raise InputError(f"class {label} has no utterances outside the test split to train its detector on")
        logits["told the class"][own & testing] = detector_logits(X, on_cue, own & ~testing, own & testing, seed)
        logits["utterance labels only"][own & testing] = detector_logits(X, own, ~testing, own & testing, seed)

    test = np.flatnonzero(data.split == "test")
    lengths = data.lengths[test]
    groups = {label: data.labels[test] == label for label in classes} | {"all": np.ones(len(test), bool)}
    _, share = cue_attention(np.ones(int(lengths.sum())), lengths, start[test], stop[test])  # (test utterances,)
    results = {}
    for detector, values in logits.items():
        results[detector] = {}
        for factor in factors:
            mass, _ = cue_attention(attention_from(values[testing], lengths, factor), lengths, start[test], stop[test])
            results[detector][f"softmax x{factor:g}"] = {g: mass[s].mean() / share[s].mean() for g, s in groups.items()}
        peak = peak_in_cue(values[testing], lengths, start[test], stop[test])
        results[detector]["peak"] = {g: peak[s].mean() / share[s].mean() for g, s in groups.items()}
    return results


def main(argv=None):
    args = parse_args(argv)
    results = cue_ratios(load_feature_set(args.features), args.window, args.factors, args.seed)
    groups = list(next(iter(next(iter(results.values())).values())))
    print("test cue ratio of frame detectors (1.0: uniform)")
    print("| detector | attention | " + " | ".join(groups) + " |")
    print("|---|---|" + "---:|" * len(groups))
    for detector, rows in results.items():
        for attention, ratios in rows.items():
            print(f"| {detector} | {attention} | " + " | ".join(f"{ratios[g]:.2f}" for g in groups) + " |")
    return 0


if __name__ == "__main__":
    run_main(main)
