"""UA and cue ratio of finished evidence-attention runs with their class attention sharpened after training.

    python benchmarks/attention_sharpening.py results/demo-localizing-s1 results/demo-localizing-s2 \
        --factors 1,2,4,8,16

``--pooling evidence-attention`` gives each class an attention, the softmax over time of
its evidence times a learned sharpness (``ClassSharpness``). Multiplying that sharpness
by a factor F makes every class's attention sharper without retraining; as F grows the
attention becomes the most evident frame alone, and its cue mass tends to the fraction of
peaks on the cue (``attention_visualize.py``'s ``fraction_peak_in_cue``). For each factor
the runs' validation and test utterances are predicted again, from the feature files and
normalization the runs recorded: UA and cue ratio per split (the cue ratio where the corpus
manifest records the cue), then the mean over the runs. Factor 1 must give each run's own
test predictions back, or the script stops: the numbers are those of the saved model.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serattn.analysis.attention import cue_ratio  # noqa: E402
from serattn.analysis.metrics import evaluate_predictions  # noqa: E402
from serattn.errors import InputError, run_main  # noqa: E402
from serattn.features.feature_set import load_feature_set  # noqa: E402
from serattn.runs.reading import open_run  # noqa: E402

SPLITS = ("val", "test")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished runs of --pooling evidence-attention (--preset localizing)")
    parser.add_argument("--factors", default="1,2,4,8,16", help="sharpness factors, comma-separated (default 1,2,4,8,16)")
    args = parser.parse_args(argv)
    try:
        args.factors = [float(f) for f in args.factors.split(",")]
    except ValueError:
        parser.error(f"--factors must be numbers, got '{args.factors}'")
    if any(f <= 0 for f in args.factors):
        parser.error("--factors must be above 0")
    return args


def split_sets(run):
    """``({split: normalized FeatureSet}, {split: predicted labels})`` of the run's validation and test
    utterances, in predictions.csv's order."""
    rows = run.prediction_rows()
    normalization = run.normalization()
    wanted = {split: [row["id"] for row in rows if row["split"] == split] for split in SPLITS}
    found = {}
    for entry in run.record.data_files.values():
        data = normalization.apply(load_feature_set(entry["path"]))
        position = {utterance: i for i, utterance in enumerate(data.ids)}
        for split, ids in wanted.items():
            if ids and split not in found and all(i in position for i in ids):
                found[split] = data.subset(np.array([position[i] for i in ids]))
    missing = [split for split, ids in wanted.items() if ids and split not in found]
    if missing:
        raise InputError(f"'{run.path}': the {' and '.join(missing)} utterances of its predictions.csv are not in "
                         f"the feature files it recorded ({', '.join(e['path'] for e in run.record.data_files.values())})")
    return found, {split: [row["predicted"] for row in rows if row["split"] == split] for split in SPLITS}


def sharpened_scores(run, factors):
    """``{factor: {split: (UA, cue ratio or None)}}`` of one run."""
    from serattn.training.trainer import predict_with_attention, utterance_inputs

    record = run.record
    model = run.load_keras_model()
    if "class_sharpness" not in [layer.name for layer in model.layers]:  # refused before the features are read
        raise InputError(f"'{run.path}' has no learned attention sharpness: this benchmark is for "
                         f"--pooling evidence-attention (--preset localizing) runs")
    sets, recorded = split_sets(run)
    sharpness = model.get_layer("class_sharpness")
    learned = sharpness.get_weights()[0]
    scores = {}
    for factor in factors:
        sharpness.set_weights([learned + np.log(factor)])
        scores[factor] = {}
        for split, data in sets.items():
            outputs = predict_with_attention(model, data.sequences(), 64, record.max_length_used, record.padding,
                                             utterance_inputs=utterance_inputs(data, record.functionals_norm))
            predicted = [run.classes[i] for i in outputs["probabilities"].argmax(axis=1)]
            if factor == 1 and split == "test" and predicted != recorded["test"]:
                raise InputError(f"'{run.path}': its model does not give back its own test predictions; "
                                 f"were its feature files changed since it was trained?")
            weights = outputs["weights"]
            ratio = cue_ratio(np.concatenate(weights), np.array([len(w) for w in weights]), data.ids, record.manifest)
            scores[factor][split] = (evaluate_predictions(data.labels, predicted, run.classes)["ua"], ratio)
    sharpness.set_weights([learned])
    return scores


def main(argv=None):
    args = parse_args(argv)
    runs = [open_run(path) for path in args.runs]
    table = {factor: {split: [] for split in SPLITS} for factor in args.factors}
    for run in runs:
        for factor, splits in sharpened_scores(run, args.factors).items():
            print(f"{run.name} x{factor:g}: " + "  ".join(
                f"{split} UA {100 * ua:.1f} cue ratio {'-' if ratio is None else f'{ratio:.2f}'}"
                for split, (ua, ratio) in splits.items()))
            for split, score in splits.items():
                table[factor][split].append(score)
    print(f"\nmean over {len(runs)} runs\n| factor | " + " | ".join(f"{s} UA | {s} cue ratio" for s in SPLITS) + " |")
    print("|---:|" + "---:|" * 2 * len(SPLITS))
    for factor, splits in table.items():
        cells = []
        for split in SPLITS:
            uas = [ua for ua, _ in splits[split]]
            ratios = [ratio for _, ratio in splits[split] if ratio is not None]
            cells += [f"{100 * np.mean(uas):.1f}" if uas else "-", f"{np.mean(ratios):.2f}" if ratios else "-"]
        print(f"| {factor:g} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    run_main(main)
