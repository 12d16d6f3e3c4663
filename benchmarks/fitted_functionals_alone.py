"""The logistic regression of ``--functionals-fit logreg`` alone, without the network, leave one speaker out.

    python benchmarks/fitted_functionals_alone.py data/emodb_2s.npz

For each speaker, the other speakers' per-speaker-normalized frames give the functionals
that the recommended preset's classifier sees (nine per frame feature, standardized per
speaker), a logistic regression is fitted to them as the preset fits it (C by 5 inner
speaker folds, balanced class weights), and the held-out speaker is scored. What the
preset's network adds is the preset's UA minus the UA printed here.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serattn.analysis.metrics import evaluate_predictions  # noqa: E402
from serattn.features.feature_set import load_feature_set  # noqa: E402
from serattn.features.normalization import Normalization  # noqa: E402
from serattn.models.attention_lstm import build_attention_lstm  # noqa: E402
from serattn.training.functionals_fit import fit_functionals_classifier, fitted_logits  # noqa: E402
from serattn.training.trainer import utterance_inputs  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", help="a frame-level feature set (.npz) with speakers")
    args = parser.parse_args()
    data = Normalization("speaker").apply(load_feature_set(args.features))  # each speaker by its own statistics
    classes = sorted(set(data.labels))
    statistics = utterance_inputs(data, "speaker")["speaker_functionals"]
    model = build_attention_lstm(data.dim, len(classes), units=4, attention_units=2, pooling="attention+functionals",
                                 functionals_norm="speaker", functionals_fit="logreg")  # its functionals only
    speakers = np.asarray(data.speakers)
    predicted = np.empty(len(data), dtype=object)
    per_speaker = []
    for speaker in sorted(set(speakers)):
        train, test = np.flatnonzero(speakers != speaker), np.flatnonzero(speakers == speaker)
        record, _ = fit_functionals_classifier(model, data.subset(train), {"speaker_functionals": statistics[train]},
                                               classes)
        held_out = data.subset(test)
        logits = fitted_logits(model, held_out.sequences(), {"speaker_functionals": statistics[test]})
        predicted[test] = [classes[i] for i in logits.argmax(axis=1)]
        per_speaker.append(evaluate_predictions(held_out.labels, list(predicted[test]), classes)["ua"])
        print(f"speaker {speaker}: C={record['C']:g}, UA {100 * per_speaker[-1]:.1f}")
    pooled = evaluate_predictions(data.labels, list(predicted), classes)
    print(f"UA pooled {100 * pooled['ua']:.1f}, per speaker {100 * np.mean(per_speaker):.1f} "
          f"+- {100 * np.std(per_speaker):.1f}, WA {100 * pooled['wa']:.1f}")


if __name__ == "__main__":
    main()
