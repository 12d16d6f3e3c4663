"""What utterance statistics of the IS09 frames carry, and what the LSTM's training schedule learns from them.

    python benchmarks/pooled_statistics.py data/emodb_2s.npz data/emodb_2s_func.npz [--keras]

A diagnostic for docs/ATTENTION_VARIANTS.md, not a model to report: leave-one-speaker-out
UA (pooled, balanced class weights) of

1. logistic regression (scikit-learn, standardized inputs, C on a fixed grid, each column
   of the table one C) on statistics of the per-speaker z-normalized frames: mean and std,
   then the functionals that ``--pooling attention+functionals`` computes in the network
   (mean, std, skewness, kurtosis, min, max, their positions, slope);
2. the same statistics z-normalized per speaker once more, at the level of the statistics
   (what ``train_static.py --norm speaker`` does with openSMILE's functionals);
3. openSMILE's IS09 functionals themselves, per-speaker normalized;
4. with ``--keras``, one Dense softmax on the mean and std trained the way the attention
   LSTM is (Adam, batch 32, balanced class weights, fixed epochs): how many epochs and
   which learning rate a linear path of the network needs to learn what (1) learns.

It reads the test speaker's frames only to score them; every C is reported, none chosen.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, like bench.py
from serattn.features.feature_set import load_feature_set  # noqa: E402
from serattn.features.normalization import Normalization  # noqa: E402

C_GRID = (0.003, 0.01, 0.03, 0.1)


def per_speaker_z(values, speakers):
    """Rows z-normalized per speaker: the statistics of (2) and (3), one row per utterance."""
    values = values.astype(np.float64).copy()
    for speaker in np.unique(speakers):
        rows = speakers == speaker
        values[rows] = (values[rows] - values[rows].mean(0)) / (values[rows].std(0) + 1e-8)
    return values


def frame_statistics(frames, lengths, functionals):
    """Per utterance: mean and std, or the nine functionals of serattn.models.pooling.MaskedFunctionals."""
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    rows = []
    for start, end in zip(offsets[:-1], offsets[1:]):
        f = frames[start:end]
        centred = f - f.mean(0)
        std = f.std(0)
        parts = [f.mean(0), std]
        if functionals:
            z = centred / np.sqrt(std ** 2 + 1e-6)
            time = np.linspace(0, 1, len(f))
            slope = ((time - time.mean())[:, None] * centred).sum(0) / max(((time - time.mean()) ** 2).sum(), 1e-6)
            parts += [(z ** 3).mean(0), (z ** 4).mean(0) - 3, f.min(0), f.max(0), time[f.argmin(0)],
                      time[f.argmax(0)], slope]
        rows.append(np.concatenate(parts))
    return np.array(rows)


def loso_logreg(inputs, labels, speakers, c):
    predicted = np.empty(len(labels), dtype=labels.dtype)
    for speaker in np.unique(speakers):
        test = speakers == speaker
        scaler = StandardScaler().fit(inputs[~test])
        model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
        model.fit(scaler.transform(inputs[~test]), labels[~test])
        predicted[test] = model.predict(scaler.transform(inputs[test]))
    return 100 * balanced_accuracy_score(labels, predicted)


def loso_keras_softmax(inputs, labels, speakers, learning_rate, epochs, seed=1):
    import keras
    from sklearn.utils.class_weight import compute_class_weight

    classes, targets = np.unique(labels, return_inverse=True)
    predicted = np.zeros(len(labels), int)
    for speaker in np.unique(speakers):
        test = speakers == speaker
        scaler = StandardScaler().fit(inputs[~test])
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((inputs.shape[1],)), keras.layers.Dense(len(classes), "softmax")])
        model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
        weights = compute_class_weight("balanced", classes=np.arange(len(classes)), y=targets[~test])
        model.fit(scaler.transform(inputs[~test]), targets[~test], batch_size=32, epochs=epochs, verbose=0,
                  class_weight=dict(enumerate(weights)))
        predicted[test] = model.predict(scaler.transform(inputs[test]), verbose=0).argmax(1)
    return 100 * balanced_accuracy_score(targets, predicted)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("frames", help="IS09 LLD + delta frames (.npz of extract_features.py)")
    parser.add_argument("functionals", help="IS09 functionals of the same utterances (--level functionals)")
    parser.add_argument("--keras", action="store_true", help="also train the Dense softmax of (4)")
    args = parser.parse_args()

    # the frames normalized per speaker exactly as train_attention_lstm.py --norm speaker does
    frame_set = Normalization.fit(load_feature_set(args.frames), "speaker").apply(load_feature_set(args.frames))
    frames, lengths = frame_set.features, frame_set.lengths
    labels, speakers, ids = frame_set.labels, frame_set.speakers, frame_set.ids
    with np.load(args.functionals) as data:
        assert (data["ids"] == ids).all(), "the two feature sets must list the same utterances in order"
        opensmile = data["features"]

    rows = {
        "mean + std of frames (64)": frame_statistics(frames, lengths, functionals=False),
        "9 functionals of frames (288)": frame_statistics(frames, lengths, functionals=True),
    }
    rows["9 functionals of frames, speaker-normalized (288)"] = per_speaker_z(
        rows["9 functionals of frames (288)"], speakers)
    rows["openSMILE IS09 functionals, speaker-normalized (384)"] = per_speaker_z(opensmile, speakers)
    print("| inputs | " + " | ".join(f"C={c}" for c in C_GRID) + " |")
    print("|---|" + "---:|" * len(C_GRID))
    for name, inputs in rows.items():
        print(f"| {name} | " + " | ".join(f"{loso_logreg(inputs, labels, speakers, c):.1f}" for c in C_GRID) + " |",
              flush=True)
    if args.keras:
        print("\n| Dense softmax on mean + std | 15 epochs | 30 epochs | 50 epochs |\n|---|---:|---:|---:|")
        for learning_rate in (0.001, 0.01):
            scores = [loso_keras_softmax(rows["mean + std of frames (64)"], labels, speakers, learning_rate, epochs)
                      for epochs in (15, 30, 50)]
            print(f"| Adam {learning_rate} | " + " | ".join(f"{s:.1f}" for s in scores) + " |", flush=True)


if __name__ == "__main__":
    main()
