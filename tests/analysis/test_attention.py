"""Slot profiles, the published avg_distribution, padded/ragged conversion, cue mass."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bench_slots import benchmark_slot_averaging, random_attention
from serattn.analysis import attention as attn
from serattn.features.feature_set import offsets_of, padded_from_ragged, ragged_from_padded


def ragged(*utterances):
    """(values, lengths) of a few hand-made utterances."""
    return np.concatenate(utterances).astype(np.float64), np.array([len(u) for u in utterances])


# --- slot profiles ---------------------------------------------------------------


def test_three_frames_into_six_slots_repeat_each_frame():
    values, lengths = ragged([0.2, 0.5, 0.3])
    profile = attn.slot_profiles(values, lengths, slots=6)
    # Each slot lies inside one frame: that frame's weight, times L = 3.
    np.testing.assert_allclose(profile, [[0.6, 0.6, 1.5, 1.5, 0.9, 0.9]])


def test_three_frames_into_two_slots_weigh_the_straddling_frame_by_overlap():
    values, lengths = ragged([0.6, 0.3, 0.1])
    profile = attn.slot_profiles(values, lengths, slots=2)
    # Slot 0 = [0, 1/2): all of frame 0 (1/3) and half of frame 1 (1/6).
    first = (0.6 / 3 + 0.3 / 6) / 0.5 * 3
    second = (0.3 / 6 + 0.1 / 3) / 0.5 * 3
    np.testing.assert_allclose(profile, [[first, second]])


def test_two_hundred_frames_into_hundred_slots_average_frame_pairs():
    weights = np.arange(200.0) / np.arange(200.0).sum()
    profile = attn.slot_profiles(weights, [200], slots=100)
    np.testing.assert_allclose(profile[0], (weights[0::2] + weights[1::2]) / 2 * 200)


@pytest.mark.parametrize("length", [1, 3, 7, 99, 100, 101, 250, 2453])
def test_uniform_attention_gives_a_flat_profile_at_one(length):
    profile = attn.slot_profiles(np.full(length, 1 / length), [length], slots=100)
    np.testing.assert_allclose(profile, 1.0, rtol=1e-9)
    assert attn.uniform_level(100) == 1.0


def test_one_hot_weight_lands_in_known_slots():
    weights = np.zeros(50)
    weights[10] = 1.0  # frame 10 of 50 covers [0.20, 0.22): slots 20 and 21 of 100
    profile = attn.slot_profiles(weights, [50], slots=100)[0]
    np.testing.assert_allclose(profile[[20, 21]], 50.0)
    assert np.count_nonzero(profile) == 2

    weights = np.zeros(200)
    weights[37] = 1.0  # frames 36 and 37 share slot 18
    profile = attn.slot_profiles(weights, [200], slots=100)[0]
    assert np.flatnonzero(profile).tolist() == [18]
    np.testing.assert_allclose(profile[18], 0.5 * 200)


def test_scale_none_is_the_mean_frame_weight():
    values, lengths = ragged([0.2, 0.5, 0.3], [0.25, 0.25, 0.25, 0.25])
    raw = attn.slot_profiles(values, lengths, slots=6, scale="none")
    np.testing.assert_allclose(raw[0], [0.2, 0.2, 0.5, 0.5, 0.3, 0.3])
    np.testing.assert_allclose(raw[1], 0.25)


def test_utterances_do_not_leak_into_each_other():
    values, lengths = ragged([1.0, 0.0], [0.0, 0.0, 1.0])
    profile = attn.slot_profiles(values, lengths, slots=2)
    np.testing.assert_allclose(profile, [[2.0, 0.0], [0.0, 3.0 * 2 / 3 * 1.0]])


def test_vector_frames_are_profiled_per_dimension():
    rng = np.random.default_rng(0)
    lengths = np.array([5, 130, 40])
    vectors = rng.random((lengths.sum(), 3))
    profiles = attn.slot_profiles(vectors, lengths, slots=20)
    assert profiles.shape == (3, 20, 3)
    for d in range(3):
        np.testing.assert_allclose(profiles[..., d], attn.slot_profiles(vectors[:, d], lengths, 20))


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 300), min_size=1, max_size=6), slots=st.integers(1, 120),
       seed=st.integers(0, 2**16))
def test_a_profile_averages_to_the_utterance_mass(lengths, slots, seed):
    rng = np.random.default_rng(seed)
    values = rng.random(sum(lengths))
    profiles = attn.slot_profiles(values, lengths, slots)
    totals = np.add.reduceat(values, offsets_of(lengths)[:-1])
    assert profiles.shape == (len(lengths), slots)
    assert np.all(profiles >= -1e-9)
    np.testing.assert_allclose(profiles.mean(axis=1), totals, rtol=1e-9)


def test_class_statistics_average_per_class():
    profiles = np.array([[1.0, 3.0], [3.0, 5.0], [10.0, 10.0]])
    mean, std, counts = attn.class_statistics(profiles, ["A", "A", "N"], ["A", "E", "N"])
    np.testing.assert_allclose(mean[[0, 2]], [[2.0, 4.0], [10.0, 10.0]])
    np.testing.assert_allclose(std[[0, 2]], [[1.0, 1.0], [0.0, 0.0]])
    assert np.all(np.isnan(mean[1])) and counts.tolist() == [2, 0, 1]


# --- padded <-> ragged -----------------------------------------------------------------


def test_post_padded_rows_keep_their_leading_frames():
    padded = np.array([[1, 2, 3, 0], [4, 0, 0, 0], [5, 6, 7, 8]], dtype=float)
    values = ragged_from_padded(padded, [3, 1, 4], padding="post")
    assert values.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]


def test_pre_padded_rows_keep_their_trailing_frames():
    padded = np.array([[0, 1, 2, 3], [0, 0, 0, 4], [5, 6, 7, 8]], dtype=float)
    values = ragged_from_padded(padded, [3, 1, 4], padding="pre")
    assert values.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_padding_round_trip_with_vectors(padding):
    rng = np.random.default_rng(1)
    lengths = np.array([3, 7, 1, 5])
    values = rng.random((lengths.sum(), 2))
    padded = padded_from_ragged(values, lengths, padding, t_max=9)
    assert padded.shape == (4, 9, 2)
    zeros = padded[0, :6] if padding == "pre" else padded[0, 3:]
    assert not zeros.any()
    np.testing.assert_array_equal(ragged_from_padded(padded, lengths, padding), values)


def test_ragged_from_padded_rejects_lengths_past_the_padding():
    with pytest.raises(ValueError, match="0..4"):
        ragged_from_padded(np.zeros((2, 4)), [2, 5])
    with pytest.raises(ValueError, match="unknown padding 'middle'"):
        ragged_from_padded(np.zeros((2, 4)), [2, 3], padding="middle")


# --- the published algorithm --------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 260), min_size=1, max_size=5), slots=st.integers(1, 120),
       dim=st.sampled_from([None, 1, 4]), seed=st.integers(0, 2**16))
def test_vectorized_published_algorithm_matches_the_literal_loop(lengths, slots, dim, seed):
    rng = np.random.default_rng(seed)
    values = rng.random(sum(lengths) if dim is None else (sum(lengths), dim))
    sequences = np.split(values, np.cumsum(lengths)[:-1])
    expected = attn.published_avg_distribution_loop(sequences, slots)
    np.testing.assert_allclose(attn.published_avg_distribution(values, lengths, slots), expected,
                               rtol=1e-10, atol=1e-12)
    sums = attn.published_slot_sums(values, lengths, slots)
    for sequence, row in zip(sequences, sums):  # per utterance too, empty slots exactly 0
        loop = attn.published_avg_distribution_loop([sequence], slots)
        np.testing.assert_array_equal(loop == 0, row == 0)
        np.testing.assert_allclose(row, loop, rtol=1e-10, atol=1e-12)


def test_published_slots_of_a_short_utterance_are_partly_empty():
    weights = np.arange(1.0, 51.0)  # 50 frames, interval 0.5: every other slot is empty
    sums = attn.published_slot_sums(weights, [50], slots=100)[0]
    assert np.all(sums[0::2] == 0)
    np.testing.assert_array_equal(sums[1::2], weights)


def test_published_float_walk_drops_a_frame_like_the_original():
    # 10 frames in 100 slots: j += 0.1 reaches 0.9999999999999999 where 1.0 was meant.
    weights = np.arange(1.0, 11.0)
    sums = attn.published_slot_sums(weights, [10], slots=100)[0]
    loop = attn.published_avg_distribution_loop([weights], 100)
    np.testing.assert_array_equal(sums, loop)
    assert sums.sum() < weights.sum()


def test_published_sums_equal_default_profile_over_slots_when_length_divides():
    rng = np.random.default_rng(2)
    weights = rng.random(300)
    published = attn.published_slot_sums(weights, [300], slots=100)
    # Intervals of exactly 3 frames: sum = mean x 3, and the default scales mean by L=300.
    np.testing.assert_allclose(published * 100, attn.slot_profiles(weights, [300], 100))
    assert attn.uniform_level(100, published=True) == pytest.approx(0.01)


# --- cue mass -------------------------------------------------------------------------------


def test_uniform_attention_puts_the_cue_share_on_the_cue():
    lengths = np.array([10, 37])
    values = np.concatenate([np.full(10, 0.1), np.full(37, 1 / 37)])
    mass, share = attn.cue_attention(values, lengths, np.array([0.2, 0.1]), np.array([0.5, 0.35]))
    np.testing.assert_allclose(mass, [0.3, 0.25])
    np.testing.assert_allclose(share, [0.3, 0.25])


def test_cue_mass_ignores_attention_on_padding():
    values = np.array([0.0, 0.4, 0.0, 0.0])  # 0.6 of the mass went to padding
    mass, share = attn.cue_attention(values, np.array([4]), np.array([0.25]), np.array([0.5]))
    np.testing.assert_allclose(mass, [1.0])
    np.testing.assert_allclose(share, [0.25])


def test_cue_summary_per_split_and_class():
    mass, share = np.array([0.5, 0.3, 0.1]), np.array([0.2, 0.2, 0.2])
    report = attn.summarize_cue_attention(mass, share, ["A", "A", "N"], ["test"] * 3, ["A", "N"])
    assert report["test"]["all"]["n"] == 3
    assert report["test"]["per_class"]["A"]["mean_mass_in_cue"] == pytest.approx(0.4)
    assert report["test"]["per_class"]["A"]["ratio"] == pytest.approx(2.0)
    assert report["test"]["per_class"]["N"]["fraction_above_share"] == 0.0


def test_peak_in_cue_finds_each_utterances_most_attended_frame():
    lengths = np.array([10, 4, 5])
    values = np.concatenate([
        np.eye(10)[3],  # frame 3 of 10: centre 0.35, inside [0.3, 0.5)
        [0.1, 0.2, 0.3, 0.4],  # frame 3 of 4: centre 0.875, outside [0.0, 0.5)
        [0.3, 0.3, 0.1, 0.1, 0.2],  # a tie: the first maximum, frame 0 (centre 0.1), counts
    ])
    peak = attn.peak_in_cue(values, lengths, np.array([0.3, 0.0, 0.0]), np.array([0.5, 0.5, 0.2]))
    np.testing.assert_array_equal(peak, [True, False, True])
    # A frame belongs to the cue by its centre: [0.36, 0.5) misses frame 3 of 10.
    assert not attn.peak_in_cue(np.eye(10)[3], [10], [0.36], [0.5])[0]


def test_cue_summary_with_peaks_and_outcomes():
    mass, share = np.array([0.5, 0.3, 0.1, 0.2]), np.array([0.25, 0.25, 0.25, 0.25])
    peak = np.array([True, True, False, False])
    recognized = np.array([True, True, True, False])
    report = attn.summarize_cue_attention(mass, share, ["A", "A", "N", "N"], ["test"] * 4, ["A", "N"],
                                          peak, recognized)
    assert report["test"]["all"]["fraction_peak_in_cue"] == 0.5
    assert report["test"]["all"]["peak_ratio"] == pytest.approx(2.0)
    assert report["test"]["per_class"]["A"]["peak_ratio"] == pytest.approx(4.0)
    outcome = report["test"]["by_outcome"]
    assert outcome["recognized"]["n"] == 3 and outcome["missed"]["n"] == 1
    assert outcome["recognized"]["fraction_peak_in_cue"] == pytest.approx(2 / 3, abs=1e-4)
    assert outcome["missed"]["fraction_peak_in_cue"] == 0.0
    assert "by_outcome" not in attn.summarize_cue_attention(mass, share, ["A"] * 4, ["test"] * 4, ["A"])["test"]


def test_benchmark_reports_speedups():
    result = benchmark_slot_averaging(n_utterances=20, loop_subset=5)
    assert result["loop_utterances_timed"] == 5
    assert result["speedup_published"] > 0 and result["speedup_slot_profiles"] > 0


def test_float32_weights_of_many_utterances_keep_float64_precision():
    # A float32 running sum over a million frames would drift by ~1e-4 of a slot's mass.
    values, lengths = random_attention(5000, seed=3)
    single = values.astype(np.float32)
    np.testing.assert_allclose(attn.slot_profiles(single, lengths),
                               attn.slot_profiles(single.astype(np.float64), lengths), atol=1e-9)
