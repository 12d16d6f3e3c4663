import collections

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
        "path,speaker,label,split,duration_s,cue_start_s,cue_end_s"
    assert len(rows) == 30
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
