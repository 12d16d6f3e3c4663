"""Attention on an axis aligned on each utterance's cue (attention_visualize.py's attention_cue_slots)."""

import numpy as np
import pytest

from serattn.analysis.attention import cue_aligned_profiles
from serattn.errors import InputError


def test_attention_on_the_cue_alone_fills_the_middle_third():
    weights = np.zeros(100)
    weights[40:60] = 1 / 20  # all of it on frames 40-59, the cue 0.4-0.6 of the duration
    profile = cue_aligned_profiles(weights, [100], [0.4], [0.6], slots=30)[0]
    np.testing.assert_allclose(profile[10:20], 5.0)  # 1 / (cue share 0.2): five times uniform
    np.testing.assert_allclose(profile[:10], 0.0, atol=1e-12)
    np.testing.assert_allclose(profile[20:], 0.0, atol=1e-12)


def test_uniform_attention_is_one_and_slots_outside_the_utterance_are_nan():
    lengths = np.array([50, 80])
    weights = np.concatenate([np.full(n, 1 / n) for n in lengths])
    profiles = cue_aligned_profiles(weights, lengths, [0.0, 0.5], [0.25, 0.7], slots=12)
    assert np.isnan(profiles[0, :4]).all()  # before the first utterance's start
    np.testing.assert_allclose(profiles[0, 4:], 1.0)
    np.testing.assert_allclose(profiles[1], 1.0)  # 0.3 to 0.9: inside the second


def test_a_slot_inside_one_frame_takes_that_frames_density():
    weights = np.array([0.1, 0.6, 0.3])  # frame 1 spans 1/3-2/3 of the duration
    profile = cue_aligned_profiles(weights, [3], [0.4], [0.6], slots=3, context=0.0)[0]
    np.testing.assert_allclose(profile, 0.6 * 3)


def test_a_cue_that_does_not_end_after_its_start_is_refused():
    with pytest.raises(InputError, match="every cue must end after it starts"):
        cue_aligned_profiles(np.full(10, 0.1), [10], [0.5], [0.5])
