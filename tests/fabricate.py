"""Fabricate tiny audio files, manifests and corpus trees for tests (no real data needed)."""

import csv
from pathlib import Path

import numpy as np
import soundfile as sf


def write_wav(path, duration_s=1.0, rate=16_000, channels=1, subtype="PCM_16", seed=0, f0=140.0):
    """A voiced-like test signal (harmonics of a gliding f0, syllable-rate envelope).

    Returns:
        The path written; its shape is (round(duration_s * rate), channels).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * rate))
    t = np.arange(n) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * t))) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    signal = 0.1 * envelope * voice + 1e-4 * rng.normal(size=n)
    signal = np.repeat(signal[:, None], channels, axis=1) * np.linspace(1, 0.8, channels)
    sf.write(path, signal, rate, subtype=subtype)
    return path


def write_manifest(path, rows, columns=("path", "label", "speaker", "split")):
    """Write ``rows`` (dicts) as a manifest CSV with ``columns``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def fabricate_wavs(root, names, duration_s=0.3, rate=16_000):
    """Write a short test wav at each relative path in ``names`` under ``root``."""
    for i, name in enumerate(names):
        write_wav(Path(root) / name, duration_s, rate=rate, seed=i, f0=110.0 + 7 * (i % 15))
    return Path(root)


# --- corpus trees in their distributed layouts -------------------------------------------


def fabricate_fau_aibo(root):
    """FAU Aibo (IS 2009 challenge): 2 Ohm children (train), 1 Mont child (test), 9 chunks.

    Returns:
        ``{file stem: label}`` of the chunk label file; one extra wav has no label.
    """
    labels = {
        "Ohm_01_000_00": "N", "Ohm_01_000_01": "A", "Ohm_01_001_00": "E",
        "Ohm_02_010_00": "P", "Ohm_02_010_01": "R", "Ohm_02_011_00": "N",
        "Mont_03_000_00": "N", "Mont_03_001_00": "A", "Mont_03_002_00": "E",
    }
    fabricate_wavs(Path(root) / "wav", [f"{stem}.wav" for stem in labels] + ["Ohm_02_099_00.wav"])
    label_file = Path(root) / "labels" / "IS2009EmotionChallenge" / "chunk_labels_5cl_corpus.txt"
    label_file.parent.mkdir(parents=True)
    label_file.write_text("".join(f"{stem} {label} 0.{i + 5}\n" for i, (stem, label)
                                  in enumerate(labels.items())))
    return labels


def fabricate_emodb(root):
    """EmoDB: 3 speakers x 7 emotions (one sentence each), plus a non-EmoDB wav name.

    Returns:
        The list of EmoDB file names written.
    """
    names = [f"{speaker}a01{emotion}a.wav" for speaker in ("03", "08", "10") for emotion in "WLEAFTN"]
    fabricate_wavs(Path(root) / "wav", names + ["notes.wav"])
    return names


def fabricate_ravdess(root):
    """RAVDESS: 2 actors, speech in all 8 emotions (audio-only), plus song and video files.

    Returns:
        The relative paths of the audio-only speech files.
    """
    speech = [f"Actor_{actor:02d}/03-01-{emotion:02d}-01-01-01-{actor:02d}.wav"
              for actor in (1, 2) for emotion in range(1, 9)]
    song = [f"Actor_{actor:02d}/03-02-03-01-01-01-{actor:02d}.wav" for actor in (1, 2)]
    video = [f"Actor_{actor:02d}/01-01-03-01-01-01-{actor:02d}.mp4" for actor in (1, 2)]
    fabricate_wavs(root, speech + song)
    for name in video:
        (Path(root) / name).write_bytes(b"not audio")
    return speech
