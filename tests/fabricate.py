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


# IEMOCAP turns of the miniature: (session folder, dialog, turn, times, category, [V, A, D]).
IEMOCAP_TURNS = [
    ("Session1", "Ses01F_impro01", "Ses01F_impro01_F000", "6.2901 - 8.2357", "neu", ("2.5000", "2.5000", "2.5000")),
    ("Session1", "Ses01F_impro01", "Ses01F_impro01_M000", "8.9000 - 10.5000", "fru", ("2.0000", "3.5000", "3.5000")),
    ("Session1", "Ses01F_impro01", "Ses01F_impro01_F001", "10.0100 - 11.3925", "exc", ("4.0000", "4.0000", "3.0000")),
    ("Session1", "Ses01M_script01_1", "Ses01M_script01_1_M012", "120.1234 - 123.4567", "ang",
     ("1.5000", "4.5000", "4.0000")),
    ("Session1", "Ses01M_script01_1", "Ses01M_script01_1_F000", "1.0000 - 2.5000", "xxx", ("3.0000", "2.6667", "3.3333")),
    ("Session2", "Ses02F_impro02", "Ses02F_impro02_M003", "30.0000 - 33.2500", "sad", ("1.6667", "2.0000", "2.3333")),
    ("Session2", "Ses02F_impro02", "Ses02F_impro02_F001", "12.5000 - 14.0000", "hap", ("4.5000", "3.5000", "3.0000")),
]


def fabricate_iemocap(root):
    """IEMOCAP_full_release: 2 sessions, 3 dialogs, 7 turns, EmoEvaluation files with evaluator lines.

    Returns:
        :data:`IEMOCAP_TURNS`.
    """
    root = Path(root)
    fabricate_wavs(root, [f"{s}/sentences/wav/{d}/{t}.wav" for s, d, t, *_ in IEMOCAP_TURNS])
    texts = {}
    for session, dialog, turn, times, category, (v, a, d) in IEMOCAP_TURNS:
        texts.setdefault((session, dialog), "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n")
        texts[session, dialog] += (f"[{times}]\t{turn}\t{category}\t[{v}, {a}, {d}]\n"
                                   f"C-E2:\tNeutral;\t()\nC-E3:\tFrustration; Anger;\t(annoyed)\n"
                                   f"A-E3:\tval 3; act 2; dom  2;\t()\nA-F1:\tval 2; act 1; dom  3;\t()\n\n")
    for (session, dialog), text in texts.items():
        folder = root / session / "dialog" / "EmoEvaluation"
        (folder / "Categorical").mkdir(parents=True, exist_ok=True)
        (folder / f"{dialog}.txt").write_text(text)
        (folder / "Categorical" / f"{dialog}_e2_cat.txt").write_text(f"{dialog}_F000 :Neutral state; ()\n")
    (root / "Session1" / "dialog" / "transcriptions").mkdir(parents=True)
    return IEMOCAP_TURNS


MSP_PODCAST_ROWS = [  # FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
    ("MSP-PODCAST_0001_0008.wav", "N", "4.2", "4.0", "4.6", "127", "Female", "Train"),
    ("MSP-PODCAST_0001_0019.wav", "H", "5.4", "6.0", "5.2", "127", "Female", "Train"),
    ("MSP-PODCAST_0002_0033.wav", "A", "6.0", "2.2", "5.8", "22", "Male", "Train"),
    ("MSP-PODCAST_0003_0001.wav", "S", "2.6", "2.8", "3.0", "45", "Male", "Development"),
    ("MSP-PODCAST_0004_0012.wav", "N", "3.8", "4.4", "4.0", "Unknown", "Unknown", "Development"),
    ("MSP-PODCAST_0005_0002.wav", "C", "4.0", "3.0", "4.8", "310", "Female", "Test1"),
    ("MSP-PODCAST_0006_0044.wav", "X", "3.5", "4.25", "3.75", "Unknown", "Unknown", "Test1"),
    ("MSP-PODCAST_0007_0003.wav", "U", "5.0", "5.5", "4.5", "1023", "Male", "Test2"),
    ("MSP-PODCAST_0008_0010.wav", "", "", "", "", "Unknown", "Unknown", "Test3"),
]


def fabricate_msp_podcast(root):
    """MSP-Podcast 1.11: Audios/ and Labels/labels_consensus.csv over Train, Development, Test1-3.

    Returns:
        :data:`MSP_PODCAST_ROWS` (the Test3 row has its labels withheld, as in the release).
    """
    root = Path(root)
    fabricate_wavs(root / "Audios", [row[0] for row in MSP_PODCAST_ROWS])
    labels = root / "Labels" / "labels_consensus.csv"
    labels.parent.mkdir(parents=True)
    labels.write_text("FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n"
                      + "".join(",".join(row) + "\n" for row in MSP_PODCAST_ROWS))
    (root / "Labels" / "labels_detailed.csv").write_text("FileName,Worker,EmoClass\n")
    return MSP_PODCAST_ROWS


CREMA_D_FILES = ["1001_DFA_ANG_XX.wav", "1001_IEO_HAP_HI.wav", "1002_DFA_NEU_XX.wav", "1002_ITS_SAD_LO.wav",
                 "1091_WSI_FEA_MD.wav", "1091_TAI_DIS_XX.wav"]


def fabricate_crema_d(root):
    """CREMA-D: 3 actors, 6 clips in AudioWAV/, VideoDemographics.csv, and files that are not clips.

    Returns:
        :data:`CREMA_D_FILES`.
    """
    root = Path(root)
    fabricate_wavs(root / "AudioWAV", CREMA_D_FILES)
    (root / "AudioWAV" / "readme.txt").write_text("not a clip")
    (root / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n"
        "1002,21,Female,Caucasian,Not Hispanic\n1003,21,Female,Caucasian,Not Hispanic\n"
        "1091,29,Female,Asian,Not Hispanic\n")
    (root / "processedResults").mkdir()
    (root / "processedResults" / "summaryTable.csv").write_text("FileName,VoiceVote\n")
    return CREMA_D_FILES
