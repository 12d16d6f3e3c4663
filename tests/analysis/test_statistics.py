"""serattn.analysis.statistics and corpus: speaker bootstrap, paired permutation test, Holm, confounding."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from serattn.analysis import statistics as st
from serattn.analysis.corpus import describe_corpus, speaker_normalization_warning
from serattn.analysis.metrics import evaluate_predictions
from serattn.errors import InputError

CLASSES = ("A", "B", "C", "D")
TRUE_RECALL = np.array([0.5, 0.6, 0.7, 0.8])  # the population UA is their mean, 0.65


def simulate(rng, speakers=40, per_class=6, recall=TRUE_RECALL, spread=0.15):
    """(true, predicted, speaker) of a corpus whose speakers differ in how well they are recognized.

    Speaker s's recall of class c is recall[c] + u_s, u_s uniform in +-spread (mean 0), so
    the population recall of class c is exactly recall[c].
    """
    labels = np.tile(np.repeat(np.arange(len(CLASSES)), per_class), speakers)
    speaker = np.repeat(np.arange(speakers), len(CLASSES) * per_class)
    offset = rng.uniform(-spread, spread, speakers)[speaker]
    right = rng.random(len(labels)) < np.clip(recall[labels] + offset, 0, 1)
    predicted = np.where(right, labels, (labels + 1 + rng.integers(0, 3, len(labels))) % len(CLASSES))
    names = np.array(CLASSES)
    return names[labels], names[predicted], np.array([f"s{s:02d}" for s in speaker])


def counts_of(rng, **kwargs):
    return st.speaker_counts(*simulate(rng, **kwargs), CLASSES)


def test_estimates_are_the_run_scores():
    true, predicted, speakers = simulate(np.random.default_rng(0), speakers=7)
    result = st.bootstrap_scores(st.speaker_counts(true, predicted, speakers, CLASSES), resamples=200)
    expected = evaluate_predictions(true, predicted, CLASSES)
    assert result["ua"][0] == pytest.approx(expected["ua"])
    assert result["wa"][0] == pytest.approx(expected["wa"])
    for c in CLASSES:
        assert result["recall"][c][0] == pytest.approx(expected["per_class_recall"][c])
        assert result["recall"][c][1] <= result["recall"][c][0] <= result["recall"][c][2]
    assert result["speakers"] == 7


def test_speaker_bootstrap_interval_covers_the_true_ua_95_percent_of_the_time():
    rng = np.random.default_rng(2026)
    hits = [low <= TRUE_RECALL.mean() <= high
            for _, low, high in (st.bootstrap_scores(counts_of(rng), seed=i)["ua"] for i in range(400))]
    assert 0.93 <= np.mean(hits) <= 0.97


def test_utterance_bootstrap_would_be_too_narrow():
    """Why speakers are the unit: with strong speaker effects, speaker intervals are much wider."""
    rng = np.random.default_rng(5)
    true, predicted, speakers = simulate(rng, speakers=20, spread=0.3)
    by_speaker = st.bootstrap_scores(st.speaker_counts(true, predicted, speakers, CLASSES))["ua"]
    by_utterance = st.bootstrap_scores(st.speaker_counts(true, predicted, np.arange(len(true)).astype(str),
                                                         CLASSES))["ua"]
    assert by_speaker[2] - by_speaker[1] > 1.3 * (by_utterance[2] - by_utterance[1])


def test_paired_p_values_are_uniform_under_the_null():
    rng = np.random.default_rng(7)
    p_values = []
    for i in range(300):
        first = counts_of(rng, speakers=20)  # 2^20 swaps: 1,000 random ones
        second = counts_of(rng, speakers=20)  # same design, independent predictions, same recall
        second = st.SpeakerCounts(first.speakers, first.classes, first.total, second.correct)
        p_values.append(st.paired_test(first, second, seed=i)["p_value"])
    p_values = np.array(p_values)
    assert 0.02 <= np.mean(p_values < 0.05) <= 0.09
    assert 0.15 <= np.mean(p_values < 0.2) <= 0.25
    assert scipy_stats.kstest(p_values, "uniform").pvalue > 0.01


def test_paired_p_value_is_small_for_a_real_difference():
    rng = np.random.default_rng(8)
    first = counts_of(rng, speakers=20)
    better = counts_of(rng, speakers=20, recall=TRUE_RECALL + 0.15)
    better = st.SpeakerCounts(first.speakers, first.classes, first.total, better.correct)
    result = st.paired_test(first, better)
    assert result["p_value"] < 0.01
    assert not result["exact"] and result["permutations"] == st.RESAMPLES
    low, high = result["ua_difference"][1:]
    assert 0.05 < low < result["ua_difference"][0] < high


def test_few_speakers_give_the_exact_permutation_distribution():
    rng = np.random.default_rng(9)
    first = counts_of(rng, speakers=4)
    perfect = st.SpeakerCounts(first.speakers, first.classes, first.total, first.total.copy())
    result = st.paired_test(first, perfect)
    assert result["exact"] and result["permutations"] == 16
    # Even a perfect second run cannot do better than 2 of the 16 swaps (all or none swapped).
    assert result["p_value"] == pytest.approx(2 / 16)


def test_paired_test_refuses_different_utterances():
    rng = np.random.default_rng(10)
    first, second = counts_of(rng, speakers=5), counts_of(rng, speakers=6)
    with pytest.raises(InputError, match="different test utterances"):
        st.paired_test(first, second)


def test_holm_adjustment():
    assert st.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert st.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert len(st.holm([])) == 0


def test_compare_to_first_adjusts_over_the_comparisons():
    rng = np.random.default_rng(11)
    counts = [counts_of(rng, speakers=12)]
    counts += [st.SpeakerCounts(counts[0].speakers, CLASSES, counts[0].total, counts_of(rng, speakers=12).correct)
               for _ in range(2)]
    tests = st.compare_to_first(counts, resamples=300)
    assert [t["p_holm"] for t in tests] == pytest.approx(st.holm([t["p_value"] for t in tests]))


def test_mean_counts_score_the_mean_of_the_runs():
    rng = np.random.default_rng(12)
    runs = [counts_of(rng, speakers=6)]
    runs += [st.SpeakerCounts(runs[0].speakers, CLASSES, runs[0].total, counts_of(rng, speakers=6).correct)]
    ua = [st.scores_of(r.total, r.correct)[0] for r in runs]
    mean = st.mean_counts(runs)
    assert st.scores_of(mean.total, mean.correct)[0] == pytest.approx(np.mean(ua))


def test_cramers_v_measures_speaker_class_confounding():
    assert st.cramers_v([[10, 0], [0, 10]]) == pytest.approx(1.0)
    assert st.cramers_v([[5, 5], [5, 5]]) == pytest.approx(0.0)
    assert np.isnan(st.cramers_v([[3, 4]]))


def test_corpus_description_finds_confounds_duplicates_and_split_leaks():
    frames = np.arange(12, dtype=np.float32).reshape(6, 2)
    frames[4:6] = frames[0:2]  # utterance 2 repeats utterance 0
    description = describe_corpus(
        ids=["a", "b", "c"], labels=["X", "Y", "Y"], speakers=["s1", "s2", "s1"], classes=["X", "Y"],
        split=["train", "test", "test"], lengths=[2, 2, 2], features=frames)
    assert description["duplicates"] == [{"ids": ["a", "c"], "labels": ["X", "Y"], "speakers": ["s1"],
                                          "conflict": True}]
    assert description["single_class_speakers"] == ["s2"]
    assert description["speakers_in_several_splits"] == ["s1"]
    assert description["per_class"][1]["utterances"] == 2
    assert description["total"]["seconds"] == pytest.approx(0.06)


def test_speaker_normalization_warning():
    labels = ["A"] * 12 + ["A", "B"] * 6 + ["B"] * 3
    speakers = ["s1"] * 12 + ["s2"] * 12 + ["s3"] * 3
    warning = speaker_normalization_warning(speakers, labels)
    assert "2 of 3 speakers have a single class (s1, s3)" in warning
    assert "1 have fewer than 10 utterances (s3)" in warning
    assert speaker_normalization_warning(["s1", "s1", "s2", "s2"] * 5, ["A", "B"] * 10) is None


def test_formatting():
    assert st.format_interval((0.5, 0.4, 0.61)) == "50.0 [40.0, 61.0]"
    assert st.format_interval((float("nan"), 0, 1)) == "-"
    assert st.format_p(0.0004) == "<0.001"
    assert st.format_p(0.0312) == "0.031"
