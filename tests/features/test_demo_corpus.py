import collections
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import make_demo_corpus as script
from serattn.features import demo_corpus
from serattn.define import FAU_CLASSES, SAMPLE_RATE
from serattn.errors import InputError
from serattn.features.extraction import extract_signal
from tests.fabricate import read_csv


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """30 short utterances of 3 speakers (2 train, 1 test)."""
    out = tmp_path_factory.mktemp("demo")
    manifest = demo_corpus.make_demo_corpus(out, n_utterances=30, n_speakers=3, seed=3,
                                            max_duration_s=1.5)
    return manifest, read_csv(manifest)


def test_manifest_has_the_documented_columns_and_one_wav_per_row(tiny_corpus):
    manifest, rows = tiny_corpus
    assert manifest.read_text().splitlines()[0] == \
        "path,speaker,label,split,duration_s,cue_start_s,cue_end_s,arousal,valence"
    assert len(rows) == 30
    for row in rows:  # the class's point scaled by a cue strength in 0.45-1.25 (demo_corpus.DIMENSIONS)
        for value, base in zip((row["arousal"], row["valence"]), demo_corpus.DIMENSIONS[row["label"]]):
            assert 0.45 * abs(base) - 5e-4 <= abs(float(value)) <= 1.25 * abs(base) + 5e-4
            assert float(value) * base >= 0
    assert sorted(p.name for p in (manifest.parent / "wav").iterdir()) == \
        sorted(row["path"].removeprefix("wav/") for row in rows)
    for row in rows:
        info = sf.info(manifest.parent / row["path"])
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
        assert info.frames == round(float(row["duration_s"]) * SAMPLE_RATE)


def test_every_class_is_in_both_splits_and_speakers_are_disjoint(tiny_corpus):
    _, rows = tiny_corpus
    for split in ("train", "test"):
        assert {row["label"] for row in rows if row["split"] == split} == set(FAU_CLASSES)
    train = {row["speaker"] for row in rows if row["split"] == "train"}
    test = {row["speaker"] for row in rows if row["split"] == "test"}
    assert train == {"spk01", "spk02"} and test == {"spk03"}


def test_default_sizes_follow_fau_proportions_and_durations():
    rng = np.random.default_rng(0)
    speakers = demo_corpus.draw_speakers(rng, 12)
    rows = demo_corpus._draw_utterances(rng, speakers, 800, 0.5, 4.0)
    counts = collections.Counter(row["label"] for row in rows)
    for label, share in demo_corpus.FAU_PROPORTIONS.items():
        assert counts[label] / 800 == pytest.approx(share, abs=0.01)
    assert len({row["speaker"] for row in rows if row["split"] == "test"}) == 4
    durations = np.array([row["duration_s"] for row in rows])
    assert durations.min() >= 0.5 and durations.max() <= 4.0
    assert durations.mean() == pytest.approx(1.8, abs=0.1)
    female = [s.f0 for s in speakers if s.female]
    male = [s.f0 for s in speakers if not s.female]
    assert min(female) >= 180 and max(male) <= 140


def test_cue_lies_inside_the_utterance_and_covers_at_most_60_percent(tiny_corpus):
    _, rows = tiny_corpus
    for row in rows:
        start, end, duration = (float(row[k]) for k in ("cue_start_s", "cue_end_s", "duration_s"))
        assert 0 <= start < end <= duration + 1e-9
        assert end - start <= 0.6 * duration + 1e-3
        assert end - start <= 0.8 + 1e-3


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path, tiny_corpus):
    manifest, _ = tiny_corpus
    again = demo_corpus.make_demo_corpus(tmp_path / "again", 30, 3, seed=3, max_duration_s=1.5)
    other = demo_corpus.make_demo_corpus(tmp_path / "other", 30, 3, seed=4, max_duration_s=1.5)
    assert again.read_bytes() == manifest.read_bytes()
    for path in (manifest.parent / "wav").iterdir():
        assert (again.parent / "wav" / path.name).read_bytes() == path.read_bytes()
    assert other.read_bytes() != manifest.read_bytes()


def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    (tmp_path / "features.npz").write_text("kept")
    with pytest.raises(InputError, match="is not empty.*--overwrite"):
        demo_corpus.make_demo_corpus(tmp_path, 15, 3)
    demo_corpus.make_demo_corpus(tmp_path, 30, 3, overwrite=True, max_duration_s=0.6)
    demo_corpus.make_demo_corpus(tmp_path, 15, 3, overwrite=True, max_duration_s=0.6)
    assert (tmp_path / "features.npz").read_text() == "kept"
    assert len(read_csv(tmp_path / "manifest.csv")) == 15
    assert len(list((tmp_path / "wav").iterdir())) == 15  # no stale wavs of the first corpus


def test_overwrite_never_deletes_a_wav_folder_of_another_corpus(tmp_path):
    (tmp_path / "wav").mkdir()
    (tmp_path / "wav" / "03a01Fa.wav").write_bytes(b"precious")
    with pytest.raises(InputError, match="has a wav/ folder but no demo-corpus manifest.csv"):
        demo_corpus.make_demo_corpus(tmp_path, 15, 3, overwrite=True)
    assert (tmp_path / "wav" / "03a01Fa.wav").read_bytes() == b"precious"


def test_overwrite_replaces_the_wavs_of_an_interrupted_run(tmp_path):
    demo_corpus.make_demo_corpus(tmp_path, 15, 3, max_duration_s=0.6)
    (tmp_path / "manifest.csv").unlink()  # as if stopped before the manifest was written
    demo_corpus.make_demo_corpus(tmp_path, 15, 3, overwrite=True, max_duration_s=0.6)
    assert len(read_csv(tmp_path / "manifest.csv")) == 15


@pytest.mark.parametrize("utterances, speakers, message", [
    (30, 2, "at least 3 speakers"),
    (12, 3, "every class in both splits"),
    (16, 4, "every class in both splits"),  # spk03 gets only 4 utterances
])
def test_rejects_sizes_that_cannot_hold_every_class(tmp_path, utterances, speakers, message):
    with pytest.raises(InputError, match=message):
        demo_corpus.make_demo_corpus(tmp_path / "out", utterances, speakers)


def test_signal_before_the_cue_does_not_depend_on_the_class():
    speaker = demo_corpus.draw_speakers(np.random.default_rng(1), 2)[1]
    signals = {label: demo_corpus.synthesize(np.random.default_rng(7), speaker, label, 2.0, 1.0, 1.6)
               for label in FAU_CLASSES}
    before = slice(0, int(0.99 * SAMPLE_RATE))
    cue = slice(int(1.1 * SAMPLE_RATE), int(1.5 * SAMPLE_RATE))
    for label in FAU_CLASSES:
        np.testing.assert_array_equal(signals[label][before], signals["N"][before])
        if label != "N":
            assert not np.allclose(signals[label][cue], signals["N"][cue])


def _cue_and_rest_statistics(n_per_class=16, duration_s=1.5):
    """Mean and std of IS09 frames inside and well outside the cue of balanced utterances."""
    rng = np.random.default_rng(0)
    speakers = demo_corpus.draw_speakers(rng, 4)
    inside, outside, labels = [], [], []
    for i in range(n_per_class * len(FAU_CLASSES)):
        label = FAU_CLASSES[i % len(FAU_CLASSES)]
        length = rng.uniform(*demo_corpus.CUE_LENGTH_S) * 0.75
        start = rng.uniform(0, duration_s - length)
        signal = demo_corpus.synthesize(np.random.default_rng([9, i]), speakers[i % 4], label,
                                        duration_s, start, start + length,
                                        rng.uniform(*demo_corpus.CUE_STRENGTH))
        frames = extract_signal(signal)
        t = np.arange(len(frames)) / 100
        in_cue = (t >= start) & (t <= start + length - 0.025)
        far = (t < start - 0.1) | (t > start + length + 0.1)
        inside.append(np.r_[frames[in_cue].mean(0), frames[in_cue].std(0)])
        outside.append(np.r_[frames[far].mean(0), frames[far].std(0)])
        labels.append(label)
    speaker = np.arange(len(labels)) % 4
    return _per_speaker_z(inside, speaker), _per_speaker_z(outside, speaker), np.array(labels)


def _per_speaker_z(values, speaker):
    values = np.array(values)
    for s in np.unique(speaker):
        rows = speaker == s
        values[rows] = (values[rows] - values[rows].mean(0)) / (values[rows].std(0) + 1e-6)
    return values


def test_is09_features_separate_classes_inside_the_cue_only():
    inside, outside, labels = _cue_and_rest_statistics()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=3000))
    folds = StratifiedKFold(4, shuffle=True, random_state=0)
    score_inside = cross_val_score(model, inside, labels, cv=folds, scoring="balanced_accuracy").mean()
    score_outside = cross_val_score(model, outside, labels, cv=folds, scoring="balanced_accuracy").mean()
    assert score_inside > 0.5  # chance is 0.2; about 0.64 with these seeds
    assert score_outside < 0.35


def test_script_writes_a_corpus_and_reports_it(tmp_path, capsys):
    assert script.main(["--out", str(tmp_path / "d"), "--utterances", "15", "--speakers", "3",
                        "--max-duration", "0.8"]) == 0
    assert "wrote 15 utterances" in capsys.readouterr().out
    assert len(read_csv(tmp_path / "d" / "manifest.csv")) == 15
    with pytest.raises(InputError, match="not empty"):
        script.main(["--out", str(tmp_path / "d"), "--utterances", "15", "--speakers", "3"])


def _corpus_sha256(folder):
    """One hash of manifest.csv and every wav (name and bytes, in name order).

    Only the manifest's columns of commit 50f159a count: arousal and valence were added after them
    (derived, no random draws), and everything before them must stay byte for byte."""
    width = len(demo_corpus.CUE_COLUMNS)
    lines = (folder / "manifest.csv").read_bytes().split(b"\r\n")
    digest = hashlib.sha256(b"\r\n".join(b",".join(line.split(b",")[:width]) for line in lines))
    for path in sorted((folder / "wav").iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


# Computed with the generator before --duration and --cue-share existed (commit 50f159a):
# without those flags a corpus must not change by one byte.
@pytest.mark.parametrize("argv, expected", [
    (["--seed", "3", "--max-duration", "1.0"], "ac4c6ca83db2b0a5fd84df656ce4356c4a618d166b5ca7f4b45e914e4ff6e3ce"),
    ([], "e214f2a9f945231aa480cb54734c8225935aee560a316c5430800d9d00a24369"),  # seed 0, 0.5-4 s
], ids=["seed3-1s", "defaults"])
def test_default_corpus_is_byte_identical_to_the_one_before_the_cue_options(tmp_path, argv, expected):
    assert script.main(["--out", str(tmp_path / "d"), "--utterances", "15", "--speakers", "3", *argv]) == 0
    assert _corpus_sha256(tmp_path / "d") == expected
    settings = json.loads((tmp_path / "d" / demo_corpus.SETTINGS_NAME).read_text())
    assert settings["cue_share"] is None and settings["cue_length_s"] == [0.3, 0.8]


def _cue_corpus(folder, duration, share, seed=5):
    script.main(["--out", str(folder), "--utterances", "15", "--speakers", "3", "--seed", str(seed),
                 "--duration", duration, "--cue-share", share])
    rows = read_csv(folder / "manifest.csv")
    return [{k: float(row[k]) for k in ("duration_s", "cue_start_s", "cue_end_s")} for row in rows]


@pytest.mark.parametrize("duration, share", [("2:4", "0.1"), ("2.5", "0.4"), ("0.8:2", "0.25:0.6")])
def test_cue_share_and_duration_options_give_exact_cues_in_range(tmp_path, duration, share):
    rows = _cue_corpus(tmp_path / "d", duration, share)
    low, high = demo_corpus.parse_range(duration, "--duration")
    share_low, share_high = demo_corpus.parse_range(share, "--cue-share")
    for row in rows:
        start, end, length = row["cue_start_s"], row["cue_end_s"], row["duration_s"]
        assert low <= length <= high
        assert 0 <= start < end <= length
        if share_low == share_high:  # fixed share: the cue is exactly that share, within a frame
            assert end - start == pytest.approx(share_low * length, abs=0.010)
        else:
            assert share_low * length - 0.010 <= end - start <= share_high * length + 0.010
    wav = sf.info(tmp_path / "d" / "wav" / "spk01_0000.wav")
    assert wav.frames == round(rows[0]["duration_s"] * SAMPLE_RATE)
    settings = json.loads((tmp_path / "d" / demo_corpus.SETTINGS_NAME).read_text())
    assert (settings["duration_s"], settings["cue_share"]) == ([low, high], [share_low, share_high])
    assert settings["duration_distribution"] == "uniform"


def test_cue_position_stays_random_within_the_utterance(tmp_path):
    rows = _cue_corpus(tmp_path / "d", "2:4", "0.2")
    # Where the cue starts, as a fraction of the room it leaves: spread over [0, 1].
    places = [row["cue_start_s"] / (0.8 * row["duration_s"]) for row in rows]
    assert min(places) < 0.25 and max(places) > 0.75


def test_a_cue_share_of_one_spans_the_whole_utterance(tmp_path):
    for row in _cue_corpus(tmp_path / "d", "0.5:1.5", "1"):
        assert (row["cue_start_s"], row["cue_end_s"]) == (0.0, row["duration_s"])


def test_corpora_of_one_seed_differ_only_in_the_cue_share():
    """A study varies the share alone: labels, durations and strengths stay put."""
    def draw(share):
        rng = np.random.default_rng(4)
        return demo_corpus._draw_utterances(rng, demo_corpus.draw_speakers(rng, 3), 30, 0.5, 4.0,
                                            (4.0, 12.0), share)
    wide, narrow = draw((0.5, 0.5)), draw((0.05, 0.05))
    for key in ("label", "duration_s", "strength", "speaker"):
        assert [row[key] for row in wide] == [row[key] for row in narrow]


@pytest.mark.parametrize("flags, message", [
    (["--duration", "3:2"], "--duration: expected MIN <= MAX, got 3.0:2.0"),
    (["--duration", "0.1"], "--duration: expected at least 0.2 s"),
    (["--duration", "abc"], "--duration: expected a number or MIN:MAX, got 'abc'"),
    (["--duration", "1:2:3"], "--duration: expected a number or MIN:MAX"),
    (["--duration", "inf"], "--duration: expected finite numbers"),
    (["--duration", "2", "--max-duration", "3"], "--duration: give either"),
    (["--cue-share", "0"], r"--cue-share: expected shares in \(0, 1\]"),
    (["--cue-share", "0.5:1.2"], r"--cue-share: expected shares in \(0, 1\]"),
    (["--cue-share=-0.1:0.5"], r"--cue-share: expected shares in \(0, 1\]"),
    (["--cue-share", "0.3:0.1"], "--cue-share: expected MIN <= MAX"),
    (["--cue-share", "nan"], "--cue-share: expected finite numbers, got 'nan'"),
    (["--cue-share", ":"], "--cue-share: expected a number or MIN:MAX"),
    (["--duration", "1", "--cue-share", "0.1"], "--cue-share: the shortest cue would last 0.100 s"),
    (["--cue-share", "0.2"], "--cue-share: the shortest cue would last 0.100 s"),  # 0.5 s utterances
])
def test_rejects_bad_cue_options_naming_the_flag(tmp_path, flags, message):
    with pytest.raises(InputError, match=message):
        script.main(["--out", str(tmp_path / "d"), "--utterances", "15", "--speakers", "3", *flags])
    assert not (tmp_path / "d").exists()


def test_bad_cue_share_is_one_line_and_exit_status_2(tmp_path):
    result = subprocess.run([sys.executable, script.__file__, "--out", str(tmp_path / "d"),
                             "--cue-share", "1.5"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "make_demo_corpus.py: error: --cue-share: expected shares in (0, 1], got 1.5:1.5"]


def test_overwrite_keeps_a_settings_file_it_did_not_write(tmp_path):
    demo_corpus.make_demo_corpus(tmp_path, 15, 3, max_duration_s=0.6)
    (tmp_path / demo_corpus.SETTINGS_NAME).write_text("my notes")
    with pytest.raises(InputError, match="demo_corpus.json' was not written by make_demo_corpus.py"):
        demo_corpus.make_demo_corpus(tmp_path, 15, 3, overwrite=True, max_duration_s=0.6)
    assert (tmp_path / demo_corpus.SETTINGS_NAME).read_text() == "my notes"
