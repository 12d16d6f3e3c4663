"""Fabricate complete run folders with numpy, so figure tests need no training.

Like ``audformat.testing.create_db``: :func:`make_fake_run` writes everything
``train_attention_lstm.py`` writes (config, metrics, predictions, attention
arrays, placeholders for the model files) through the trainer's own writer,
:class:`serattn.runs.folder.RunFolder`, so the figure tests break when the run
folder's format changes. The content has realistic structure: each class
puts its attention peak and its cue at its own relative position, and each class
has its own centre in the 60-d attention representation.
"""

import csv
import wave
from pathlib import Path

import numpy as np

from serattn.runs.folder import HISTORY_FILE, KERAS_MODEL_FILE, NORMALIZATION_FILE, RUN_FORMAT, RunFolder
from serattn.runs.record import RunMetrics

FAU = ("A", "E", "N", "P", "R")


def make_fake_run(root, name="run", classes=FAU, counts=None, activation="tanh", seed=1,
                  masked=True, accuracy=0.6, units=60, frame_rate=100, manifest=True,
                  audio=False, incomplete=False, min_frames=40, max_frames=400, config=None):
    """Write a finished (or unfinished) run folder ``root/name`` and return its path.

    Args:
        root: folder to create the run (and the shared manifest/audio) in.
        name: run folder name.
        classes: class labels in model order.
        counts: utterances per class per split, e.g. ``{"train": 30, "test": 20}``.
        activation: written to config.json (and used to group runs).
        seed: random seed, also written to config.json.
        masked: False imitates a published unmasked run (some attention mass on
            padding, weights summing to less than 1).
        accuracy: chance that a prediction is the true class.
        units: size of the attention representation ``z``.
        frame_rate: frames per second, written to ``feature_meta``.
        manifest: write ``root/<name>_corpus/manifest.csv`` with cue columns and
            name it in ``feature_meta``.
        audio: also write 16 kHz wav files the manifest points to.
        incomplete: leave an ``INCOMPLETE`` marker, as a run still training does.
        min_frames, max_frames: utterance length range in frames.
        config: extra or overriding config.json keys.
    """
    root, rng = Path(root), np.random.default_rng(seed)
    counts = counts or {"train": 30, "test": 20}
    root.mkdir(parents=True, exist_ok=True)
    folder = RunFolder.create(root / name, overwrite=True)
    run = folder.path

    # Utterances: class, split, length, cue position.
    label_index = np.concatenate([np.repeat(np.arange(len(classes)), n) for n in counts.values()])
    split = np.concatenate([np.repeat(s, n * len(classes)) for s, n in counts.items()])
    labels = np.array(classes)[label_index]
    n = len(labels)
    lengths = rng.integers(min_frames, max_frames + 1, n).astype(np.int64)
    ids = np.array([f"wav/{s}/{label}/utt{i:04d}.wav" for i, (s, label) in enumerate(zip(split, labels))])
    speakers = np.array([f"spk{i % 4}" for i in range(n)])
    centre = (label_index + 0.5) / len(classes) + rng.normal(0, 0.03, n)  # relative time
    cue_start, cue_end = np.clip(centre - 0.08, 0, 1), np.clip(centre + 0.08, 0, 1)

    # Attention: a bump on the cue over a flat floor, normalized per utterance.
    frame_utterance = np.repeat(np.arange(n), lengths)
    relative = (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 0.5) \
        / np.repeat(lengths, lengths)
    weights = 0.3 + np.exp(-0.5 * ((relative - centre[frame_utterance]) / 0.05) ** 2)
    weights *= rng.uniform(0.7, 1.3, len(weights))
    weights /= np.bincount(frame_utterance, weights)[frame_utterance]
    padding_mass = np.zeros(n) if masked else rng.uniform(0.0, 0.2, n)
    weights *= (1 - padding_mass)[frame_utterance]

    # Representations: one centre per class plus noise.
    centres = rng.normal(0, 0.35, (len(classes), units))
    z = centres[label_index] + rng.normal(0, 1.0, (n, units))

    folder.write_attention(np.split(weights, np.cumsum(lengths)[:-1]), z, ids, labels, speakers, split,
                           padding_mass)

    # Predictions and test metrics.
    correct = rng.random(n) < accuracy
    other = (label_index + rng.integers(1, len(classes), n)) % len(classes)
    predicted_index = np.where(correct, label_index, other)
    logits = rng.normal(0, 1, (n, len(classes)))
    logits[np.arange(n), predicted_index] += 3
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    folder.write_predictions(ids, speakers, split, labels, np.array(classes)[predicted_index], probabilities,
                             classes)
    test = split == "test"
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (label_index[test], predicted_index[test]), 1)
    recall = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    metrics = {
        "ua": float(recall.mean()), "wa": float(confusion.trace() / max(confusion.sum(), 1)),
        "classes": list(classes), "per_class_recall": dict(zip(classes, recall.tolist())),
        "confusion": confusion.tolist(), "n_test": int(test.sum()), "best_epoch": 7,
        "val_ua": None,
    }
    folder.write_metrics(RunMetrics.of(metrics))  # a made-up record, as a test needs it

    # Manifest and optional audio (a tone on the cue), ids relative to the manifest.
    feature_meta = {"feature_set": "is09", "level": "lld", "frame_rate": frame_rate,
                    "sample_rate": 16000}
    if manifest:
        manifest_path = root / f"{name}_corpus" / "manifest.csv"
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        duration = lengths / frame_rate
        with open(manifest_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "speaker", "label", "split", "duration_s", "cue_start_s",
                             "cue_end_s"])
            for i in range(n):
                writer.writerow([ids[i], speakers[i], labels[i], split[i], f"{duration[i]:.3f}",
                                 f"{cue_start[i] * duration[i]:.3f}", f"{cue_end[i] * duration[i]:.3f}"])
        feature_meta["manifest"] = str(manifest_path.resolve())
        if audio:
            for i in range(n):
                write_tone_wav(manifest_path.parent / ids[i], duration[i], cue_start[i] * duration[i],
                               cue_end[i] * duration[i], rng)

    resolved = {
        "train": "data/demo/train.npz", "test": "data/demo/test.npz", "out": str(run),
        "activation": activation, "units": units, "attention_units": 50, "seed": seed,
        "learning_rate": 0.001, "batch_size": 32, "epochs": 50, "mask": masked,
        "norm": "global", "classes": list(classes),
        "data_files": {"train": {"path": "data/demo/train.npz", "sha256": f"{seed:064x}"},
                       "test": {"path": "data/demo/test.npz", "sha256": f"{seed + 1:064x}"}},
        "versions": {"python": "3.11", "tensorflow": "2.21.0", "numpy": np.__version__},
        "git_commit": f"{seed:040x}", "feature_meta": feature_meta, "run_format": RUN_FORMAT,
        **(config or {}),
    }
    folder.write_config(resolved)
    for placeholder in (KERAS_MODEL_FILE, NORMALIZATION_FILE, HISTORY_FILE):
        (run / placeholder).write_text("")
    if not incomplete:
        folder.mark_complete()
    return run


def write_tone_wav(path, duration_s, cue_start_s, cue_end_s, rng, sample_rate=16000):
    """A 16-bit mono wav: quiet noise with a 300 Hz tone during the cue."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    time = np.arange(int(duration_s * sample_rate)) / sample_rate
    signal = 0.03 * rng.normal(size=len(time))
    on_cue = (time >= cue_start_s) & (time < cue_end_s)
    signal[on_cue] += 0.5 * np.sin(2 * np.pi * 300 * time[on_cue])
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())
