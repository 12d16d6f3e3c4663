"""benchmarks/cue_detector.py: how much of the cue a detector finds when it is taught where the cue is."""

import re

import numpy as np
import pytest

from benchmarks import cue_detector
from serattn.errors import InputError
from serattn.features.feature_set import FeatureSet, save_feature_set


def corpus_with_a_cue(path, shift, columns=True):
    """40 utterances of 4 speakers (the last one tested), classes A and B, whose class shows only in a stretch of
    a quarter of the frames (feature 0 for A, feature 1 for B, raised by ``shift``); 100 frames a second."""
    rng = np.random.default_rng(0)
    sequences, labels, table = [], [], {"duration_s": [], "cue_start_s": [], "cue_end_s": []}
    for i in range(40):
        length = int(rng.integers(40, 80))
        cue = length // 4
        start = int(rng.integers(0, length - cue + 1))
        frames = rng.normal(size=(length, 3))
        frames[start:start + cue, i % 2] += shift
        sequences.append(frames)
        labels.append("AB"[i % 2])
        for name, frame in (("duration_s", length), ("cue_start_s", start), ("cue_end_s", start + cue)):
            table[name].append(f"{frame / 100:.3f}")
    speakers = [f"s{(i // 2) % 4}" for i in range(40)]
    save_feature_set(FeatureSet.from_sequences(
        sequences, ids=[f"u{i:02d}.wav" for i in range(40)], labels=labels, speakers=speakers,
        feature_names=["f0", "f1", "f2"], split=["test" if s == "s3" else "train" for s in speakers],
        meta={"feature_set": "synthetic", "level": "lld", "frame_rate": 100}, columns=table if columns else None), path)
    return path


def printed_ratios(out, detector, attention):
    line = next(line for line in out.splitlines() if line.startswith(f"| {detector} | {attention} |"))
    return [float(value) for value in re.findall(r"\d+\.\d+", line)]  # A, B, all


def test_a_cue_that_stands_out_is_found_and_a_missing_one_is_not(tmp_path, capsys):
    assert cue_detector.main([str(corpus_with_a_cue(tmp_path / "cue.npz", shift=4.0)), "--window", "5"]) == 0
    out = capsys.readouterr().out
    # The cue is a quarter of each utterance: attention all on it gives 4.0, uniform attention 1.0.
    assert min(printed_ratios(out, "told the class", "peak")) > 3.0
    assert min(printed_ratios(out, "any class", "softmax x4")) > 2.5
    # Taught only each utterance's class, frame by frame, it finds the cue too: only there do the classes differ.
    assert min(printed_ratios(out, "utterance labels only", "softmax x1")) > 3.0
    assert cue_detector.main([str(corpus_with_a_cue(tmp_path / "none.npz", shift=0.0)), "--window", "5"]) == 0
    out = capsys.readouterr().out
    for detector in cue_detector.DETECTORS:
        assert max(printed_ratios(out, detector, "softmax x1")) < 1.5


def test_a_feature_file_without_the_cue_is_refused(tmp_path):
    with pytest.raises(InputError, match="no cue_start_s, cue_end_s, duration_s column"):
        cue_detector.main([str(corpus_with_a_cue(tmp_path / "plain.npz", shift=4.0, columns=False))])


def test_centred_means_average_the_frames_around_each_frame():
    frames = np.arange(6.0)[:, None]
    assert cue_detector.centred_means(frames, 3).ravel().tolist() == [0.5, 1, 2, 3, 4, 4.5]
    assert cue_detector.centred_means(frames, 1).ravel().tolist() == list(range(6))
