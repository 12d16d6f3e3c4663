"""Attention weights over relative time: slot profiles, class averages, cue mass.

Utterances differ in length, so the published Figure 2(a)(b) maps each one's
frame-level attention onto a fixed number of time slots (100) and averages the
profiles per class. Everything here works on the ragged layout of a run folder's
``attention.npz``: ``weights`` of shape (sum(L),) holding each utterance's weights
over its own frames, concatenated, and ``lengths`` (N,). Per-frame vectors work
too, e.g. weighted LSTM outputs of shape (sum(L), D).

Two ways to make the profiles:

* :func:`slot_profiles` (default): fractional overlap. Frame ``i`` of an
  utterance of ``L`` frames covers ``[i/L, (i+1)/L)`` of its duration, slot ``s``
  of ``S`` covers ``[s/S, (s+1)/S)``; a slot's value is the overlap-weighted mean
  of the frames it covers, times ``L``. Every slot gets a value even when
  ``L < S``, and uniform attention (``1/L`` per frame) is 1.0 everywhere, so
  utterances of any length are comparable.
* :func:`published_slot_sums`: the published ``avg_distribution``, kept exact for
  reproduction (integer-floored intervals, sums, empty slots for short
  utterances). :func:`published_avg_distribution_loop` is its literal
  transcription; the tests pin the vectorized form to it.

numpy only: no per-utterance Python loop on the main path.
"""

import math
import warnings
from pathlib import Path

import numpy as np

from serattn.errors import InputError
from serattn.features.feature_set import offsets_of

DEFAULT_SLOTS = 100


# --- slot profiles (default) ------------------------------------------------------


def check_ragged(values, lengths, slots=None):
    """Raise InputError unless ``values`` are ``lengths`` utterances of finite frames."""
    values, lengths = np.asarray(values), np.asarray(lengths)
    if lengths.ndim != 1 or (lengths.size and lengths.dtype.kind not in "iu"):
        raise InputError(f"lengths must be a 1-d integer array, got {lengths.dtype} of shape {lengths.shape}")
    if np.any(lengths < 1):
        raise InputError(f"every utterance needs at least one frame; got lengths down to {lengths.min()}")
    if values.ndim not in (1, 2) or len(values) != lengths.sum():
        raise InputError(f"attention weights hold {len(values)} frames but the lengths add up to "
                         f"{int(lengths.sum())}")
    if not np.all(np.isfinite(values)):
        raise InputError("attention weights contain NaN or infinite values")
    if slots is not None and (int(slots) != slots or slots < 1):
        raise InputError(f"--slots must be a positive integer, got {slots}")


def _cumulative(values):
    """Running sum of frames with a leading zero: (sum(L) + 1, ...) float64."""
    values = np.asarray(values)
    cumulative = np.zeros((len(values) + 1,) + values.shape[1:])
    np.cumsum(values, axis=0, dtype=np.float64, out=cumulative[1:])  # float32 sums drift
    return cumulative


def _mass_before(values, cumulative, frame, fraction):
    """Mass up to ``fraction`` into global frame index ``frame`` (same shapes).

    ``frame`` may be sum(L) (the end of the last utterance) only with
    ``fraction == 0``; clipping keeps that index valid.
    """
    inside = np.take(values, frame, axis=0, mode="clip")
    fraction = fraction.reshape(fraction.shape + (1,) * (inside.ndim - fraction.ndim))
    return cumulative[frame] + fraction * inside


def slot_profiles(values, lengths, slots=DEFAULT_SLOTS, scale="length"):
    """Each utterance's attention on ``slots`` equal fractions of its duration.

    Frame ``i`` of an utterance with ``L`` frames covers ``[i/L, (i+1)/L)`` of
    its duration and slot ``s`` covers ``[s/S, (s+1)/S)``. A slot's value is the
    mean of the frame weights it covers, each weighted by its overlap with the
    slot, so a slot inside one frame takes that frame's value (``L < S``) and a
    slot over many frames their average (``L > S``).

    With ``scale="length"`` that mean is multiplied by ``L``: uniform attention
    (``1/L`` per frame) gives 1.0 in every slot whatever the length, a profile
    averages to the utterance's total attention mass over its frames (1.0 for
    masked runs, less when an unmasked model put mass on padding), and a value
    of 3 means "three times the uniform share". ``scale="none"`` keeps the raw
    mean frame weight.

    Computed from the running sum of the weights: the mass up to relative time
    ``x`` is exact at the slot edges ``s/S`` (integer arithmetic for the frame
    index), and a slot's mass is the difference of two of them.

    Args:
        values: (sum(L),) attention weights, or (sum(L), D) per-frame vectors.
        lengths: (N,) frames per utterance, all > 0.
        slots: number of slots S.
        scale: ``"length"`` or ``"none"``, see above.

    Returns:
        float64 (N, S) profiles, or (N, S, D) for per-frame vectors.
    """
    if scale not in ("length", "none"):
        raise InputError(f"unknown scale '{scale}'; expected one of: length, none")
    check_ragged(values, lengths, slots)
    lengths = np.asarray(lengths, dtype=np.int64)
    cumulative = _cumulative(values)
    # Slot edge s/S of utterance n lies in frame (s * L) // S, a fraction
    # (s * L % S) / S into it.
    edge = np.arange(slots + 1, dtype=np.int64)[None, :] * lengths[:, None]  # (N, S + 1)
    frame = offsets_of(lengths)[:-1, None] + edge // slots
    mass_before_edge = _mass_before(values, cumulative, frame, (edge % slots) / slots)  # (N, S + 1, ...)
    slot_mass = np.diff(mass_before_edge, axis=1)  # (N, S, ...)
    # Mean frame weight in a slot = slot mass / (L / S) frames.
    profiles = slot_mass * slots
    if scale == "none":
        profiles = profiles / lengths.reshape((-1,) + (1,) * (profiles.ndim - 1))
    return profiles


def cue_aligned_profiles(values, lengths, cue_start, cue_stop, slots=DEFAULT_SLOTS, context=1.0):
    """Each utterance's attention on ``slots`` equal stretches of an axis aligned on its cue.

    The axis runs from ``context`` cue lengths before the cue's start to ``context`` cue lengths
    after its end (with ``context=1``, the cue is the middle third), so that utterances whose
    cues sit in different places and last differently can be averaged: where a class's mean
    peaks says whether its attention lands on the cue, before it or after it. A slot's value is
    its attention mass over its share of the duration (1.0: uniform attention, as in
    :func:`slot_profiles`); slots that reach outside the utterance are NaN.

    Args:
        values: (sum(L),) attention weights.
        lengths: (N,) frames per utterance, all > 0.
        cue_start, cue_stop: (N,) the cue as fractions of the duration, ``cue_stop > cue_start``.
        slots: number of slots S.
        context: cue lengths of axis on each side of the cue.

    Returns:
        float64 (N, S) profiles.
    """
    check_ragged(values, lengths, slots)
    lengths = np.asarray(lengths, dtype=np.int64)
    cue_start, cue_stop = np.asarray(cue_start, np.float64), np.asarray(cue_stop, np.float64)
    if np.any(~(cue_stop > cue_start)):
        raise InputError("every cue must end after it starts")
    cumulative = _cumulative(values)
    span = cue_stop - cue_start
    edges = np.linspace(-context, 1.0 + context, slots + 1)[None, :]  # in cue lengths from its start
    x = cue_start[:, None] + edges * span[:, None]  # (N, S + 1) fractions of the duration
    inside = (x >= 0.0) & (x <= 1.0)
    position = np.clip(x, 0.0, 1.0) * lengths[:, None]  # frames from the utterance's start
    frame = np.minimum(np.floor(position).astype(np.int64), lengths[:, None])
    mass_before_edge = _mass_before(values, cumulative, offsets_of(lengths)[:-1, None] + frame, position - frame)
    slot_mass = np.diff(mass_before_edge, axis=1)
    profiles = slot_mass / np.diff(x, axis=1)  # mass over the slot's share of the duration
    return np.where(inside[:, :-1] & inside[:, 1:], profiles, np.nan)


def uniform_level(slots=DEFAULT_SLOTS, published=False):
    """Where uniform attention lies on the profile scale (the reference line).

    1.0 for :func:`slot_profiles`; ``1/S`` for the published slot sums of an
    utterance with at least ``S`` frames (shorter ones have empty slots).
    """
    return 1.0 / slots if published else 1.0


def class_statistics(profiles, labels, classes):
    """Mean and spread of the profiles of each class.

    Args:
        profiles: (N, S) profiles.
        labels: (N,) class labels.
        classes: class labels in output order.

    Returns:
        ``(mean, std, counts)``: float64 (C, S), float64 (C, S) (population
        std, NaN for a class without utterances) and int64 (C,). A NaN slot of
        an utterance (:func:`cue_aligned_profiles` past its ends) is left out of
        that slot's statistics.
    """
    labels = np.asarray(labels).astype(str)
    profiles = np.asarray(profiles, dtype=np.float64)
    mean = np.full((len(classes),) + profiles.shape[1:], np.nan)
    std = np.full_like(mean, np.nan)
    counts = np.zeros(len(classes), dtype=np.int64)
    for c, label in enumerate(classes):  # a handful of classes; vectorized over utterances
        members = profiles[labels == str(label)]
        counts[c] = len(members)
        if len(members):
            with warnings.catch_warnings():  # a slot no utterance reaches is NaN, as for an absent class
                warnings.simplefilter("ignore", RuntimeWarning)
                mean[c], std[c] = np.nanmean(members, axis=0), np.nanstd(members, axis=0)
    return mean, std, counts


# --- the published algorithm ---------------------------------------------------------


def published_avg_distribution_loop(data, max_slot=100):
    """The published ``avg_distribution``, transcribed line by line (reference only).

    Kept as published, per-frame Python loops and all, so that
    :func:`published_slot_sums` can be tested against it. The one change:
    ``np.zeros(60)`` (the published LSTM size) became zeros of one frame's shape,
    so it also runs on scalar weights and other sizes.

    Args:
        data: list of N arrays, each (L_i, D) or (L_i,): one utterance's frames.
        max_slot: number of slots.

    Returns:
        (max_slot, D) or (max_slot,): the per-slot sums averaged over utterances.
    """
    seq_slot_value = []
    for i in range(len(data)):  # each sequence
        frame_shape = np.shape(data[i][0])
        interval = len(data[i]) / max_slot
        temp = []
        slot_count = 0
        j = 0.0
        while slot_count < max_slot:  # each slot
            slot_sum = np.zeros(frame_shape)
            count = 0
            if math.floor(j) != math.floor(j + interval):
                for k in range(math.floor(j), math.floor(j + interval)):
                    if k >= len(data[i]):
                        break
                    count += 1
                    slot_sum += data[i][k]
            else:
                slot_sum = np.zeros(frame_shape)
            temp.append(slot_sum)
            slot_count += 1
            j += interval
        seq_slot_value.append(temp)
    seq_slot_value = np.asarray(seq_slot_value)
    # calculate the average by each column
    seq_slot_avg = []
    for i in range(seq_slot_value.shape[1]):
        col_sum = np.sum(seq_slot_value[:, i], axis=0)
        col_sum_avg = col_sum / (seq_slot_value.shape[0])
        seq_slot_avg.append(col_sum_avg)
    seq_slot_avg = np.asarray(seq_slot_avg)
    return seq_slot_avg


def published_slot_sums(values, lengths, slots=DEFAULT_SLOTS):
    """Per-utterance slot values exactly as the published ``avg_distribution``.

    The published code walks a float ``j`` in steps of ``L / S`` and sums the
    frames ``floor(j) .. floor(j + L/S) - 1`` into each slot; in exact arithmetic
    interval ``k`` is frames ``[floor(k L / S), floor((k+1) L / S))``. It differs
    from :func:`slot_profiles` in two ways:

    * Integer flooring: an utterance shorter than ``S`` frames has intervals
      with no frame, so some of its slots are 0 and the class average dips
      wherever short utterances have their gaps.
    * Sums, not means: an interval of 3 frames weighs three times one of 1, and
      a long utterance's slots hold more frames than a short one's, so profiles
      of different lengths are not on one scale (uniform attention gives
      ``1/S`` only for ``L >= S``, up to the flooring).

    To match the published slot edges bit for bit, ``j`` is accumulated the
    same way (``np.cumsum`` adds sequentially, like ``j += interval``), which
    occasionally puts an edge one frame off the exact ``k L / S``.

    Args:
        values: (sum(L),) attention weights, or (sum(L), D) per-frame vectors
            (the published code used attention-weighted LSTM outputs, D=60).
        lengths: (N,) frames per utterance, all > 0.
        slots: number of slots S.

    Returns:
        float64 (N, S) or (N, S, D) slot sums; their mean over utterances is
        the published ``avg_distribution``.
    """
    check_ragged(values, lengths, slots)
    values = np.asarray(values)
    lengths = np.asarray(lengths, dtype=np.int64)
    interval = lengths / slots  # (N,) float64, the published `len(data[i]) / max_slot`
    steps = np.repeat(interval[:, None], slots + 1, axis=1)
    steps[:, 0] = 0.0
    j = np.cumsum(steps, axis=1)  # (N, S + 1): j before slot k, and after the last
    edge = np.minimum(np.floor(j).astype(np.int64), lengths[:, None])  # `if k >= len: break`
    empty = edge[:, 1:] <= edge[:, :-1]  # (N, S): no frame in the interval
    # np.add.reduceat sums frames from each index to the next one, so with the
    # S + 1 edges of every utterance as indices, column k < S is slot k and the
    # extra column (the frames a short float walk leaves past the last slot) is
    # dropped. An empty interval returns one frame instead of 0: zeroed below.
    # Indices must stay below sum(L); those equal to it (the end of the last
    # utterance) start empty intervals, which stay 0.
    index = (offsets_of(lengths)[:-1, None] + edge).ravel()
    n_valid = np.searchsorted(index, len(values))
    sums = np.zeros((len(index),) + values.shape[1:])
    if n_valid:
        sums[:n_valid] = np.add.reduceat(values, index[:n_valid], axis=0, dtype=np.float64)
    sums = sums.reshape(edge.shape + values.shape[1:])[:, :-1]
    sums[empty] = 0.0
    return sums


def published_avg_distribution(values, lengths, slots=DEFAULT_SLOTS):
    """The published ``avg_distribution`` of one group of utterances, vectorized."""
    return published_slot_sums(values, lengths, slots).mean(axis=0)


# --- where attention goes: the class cue ------------------------------------------------


def mass_between(values, lengths, start, stop):
    """Attention mass of each utterance between two relative times.

    Frames count with their overlap, as in :func:`slot_profiles`.

    Args:
        values: (sum(L),) attention weights.
        lengths: (N,) frames per utterance.
        start, stop: (N,) relative times in 0..1 (fractions of the duration).

    Returns:
        float64 (N,) mass in ``[start, stop)``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    values = np.asarray(values)
    cumulative = _cumulative(values)
    offsets = offsets_of(lengths)[:-1]

    def mass_before(position):
        frames = np.clip(np.asarray(position, dtype=np.float64), 0.0, 1.0) * lengths
        whole = np.minimum(np.floor(frames).astype(np.int64), lengths)
        return _mass_before(values, cumulative, offsets + whole, frames - whole)

    return mass_before(stop) - mass_before(start)


def cue_attention(values, lengths, cue_start, cue_stop):
    """Share of each utterance's attention that falls on its class cue.

    Args:
        values: (sum(L),) attention weights.
        lengths: (N,) frames per utterance.
        cue_start, cue_stop: (N,) the cue stretch as fractions of the duration.

    Returns:
        ``(mass, share)``, float64 (N,) each: the fraction of the attention on
        the utterance's own frames that lies inside the cue (normalized by that
        attention, so mass put on padding by an unmasked model does not count),
        and the cue's fraction of the duration. ``mass > share`` means the
        model looks at the cue more than uniform attention would.
    """
    total = mass_between(values, lengths, np.zeros(len(lengths)), np.ones(len(lengths)))
    inside = mass_between(values, lengths, cue_start, cue_stop)
    with np.errstate(invalid="ignore", divide="ignore"):
        mass = inside / total
    share = np.clip(cue_stop, 0, 1) - np.clip(cue_start, 0, 1)
    return mass, share


def peak_in_cue(values, lengths, cue_start, cue_stop):
    """Whether each utterance's most-attended frame lies on its cue, (N,) bool.

    The cue mass of :func:`cue_attention` counts how much weight a soft attention spreads
    over the cue; this counts where it points. Sharpened towards its peak, an attention's
    cue mass tends to the fraction of peaks on the cue, so that fraction over the mean cue
    share is the cue ratio that a sharper attention with the same peaks would reach.

    Args:
        values: (sum(L),) attention weights.
        lengths: (N,) frames per utterance.
        cue_start, cue_stop: (N,) the cue stretch as fractions of the duration; a frame is
            on the cue when its centre is in ``[start, stop)``.
    """
    values = np.asarray(values, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    check_ragged(values, lengths)
    starts = offsets_of(lengths)[:-1]
    peak = descending_within_utterances(values, lengths)[starts] - starts  # each utterance's first maximum
    centre = (peak + 0.5) / lengths
    return (centre >= np.asarray(cue_start)) & (centre < np.asarray(cue_stop))


CUE_COLUMNS = ("cue_start_s", "cue_end_s", "duration_s")


def cue_seconds(manifest, ids):
    """Each utterance's cue and duration in seconds, from a manifest with cue columns.

    Args:
        manifest: ``{column: (M,) str array}`` (``Manifest.columns()``) with ``path``,
            ``cue_start_s``, ``cue_end_s`` and ``duration_s``.
        ids: (N,) utterance ids (the manifest's ``path`` values).

    Returns:
        ``(start, stop, duration)``, float64 (N,) each; NaN where the manifest lacks
        the utterance, the column or the value.
    """
    paths = manifest["path"]
    order = np.argsort(paths)
    position = np.minimum(np.searchsorted(paths, ids, sorter=order), len(paths) - 1)
    row = order[position]
    found = paths[row] == np.asarray(ids)
    return tuple(np.where(found, _seconds(manifest[column])[row], np.nan) if column in manifest
                 else np.full(len(found), np.nan) for column in CUE_COLUMNS)


def cue_fractions(manifest, ids):
    """Each utterance's cue as fractions of its duration (see :func:`cue_seconds`)."""
    start, stop, duration = cue_seconds(manifest, ids)
    return start / duration, stop / duration


def _seconds(column):
    """Manifest times as floats; empty or malformed cells become NaN."""
    values = np.full(len(column), np.nan)
    filled = np.char.str_len(column) > 0
    try:
        values[filled] = column[filled].astype(np.float64)
    except ValueError:
        raise InputError(f"manifest times must be numbers in seconds, got e.g. "
                         f"'{column[filled][0]}'") from None
    return values


def cue_ratio(values, lengths, ids, manifest_path):
    """Mean attention mass on the cue over the cue's mean share of the duration (1.0: no
    better than uniform attention), for corpora whose manifest records the cue; None otherwise."""
    from serattn.features.corpora import read_manifest

    if not manifest_path or not Path(manifest_path).is_file():
        return None
    manifest = read_manifest(manifest_path).columns()
    if any(column not in manifest for column in CUE_COLUMNS):
        return None
    start, stop = cue_fractions(manifest, ids)
    usable = np.isfinite(start) & np.isfinite(stop) & (stop > start)
    if not np.any(usable):
        return None
    keep = np.repeat(usable, lengths)
    mass, share = cue_attention(np.asarray(values)[keep], np.asarray(lengths)[usable], start[usable], stop[usable])
    return float(np.mean(mass) / np.mean(share))


def summarize_cue_attention(mass, share, labels, split, classes, peak=None, recognized=None):
    """Mean cue mass vs mean cue share, per split and per class within each split.

    Args:
        mass, share: (N,) from :func:`cue_attention`.
        labels, split: (N,) each utterance's class and split.
        classes: the class order of the report.
        peak: optional (N,) bool from :func:`peak_in_cue`.
        recognized: optional (N,) bool, whether the run predicted the utterance's class;
            the attention of a model that was right and of one that was wrong then appear apart.

    Returns:
        A JSON-ready dict ``{split: {"all": {...}, "per_class": {label: {...}}}}``
        where each ``{...}`` holds ``n``, ``mean_mass_in_cue``,
        ``mean_cue_share``, ``ratio`` (mass / share) and
        ``fraction_above_share`` (utterances with mass > share); with ``peak`` also
        ``fraction_peak_in_cue`` and ``peak_ratio`` (that fraction / the mean share); with
        ``recognized`` each split also has ``by_outcome``: ``{"recognized": {...}, "missed": {...}}``.
    """
    labels = np.asarray(labels).astype(str)
    split = np.asarray(split).astype(str)

    def summary(selection):
        m, s = mass[selection], share[selection]
        if len(m) == 0:
            return {"n": 0}
        mean_mass, mean_share = float(np.mean(m)), float(np.mean(s))
        values = {
            "n": int(len(m)),
            "mean_mass_in_cue": round(mean_mass, 4),
            "mean_cue_share": round(mean_share, 4),
            "ratio": round(mean_mass / mean_share, 3) if mean_share > 0 else None,
            "fraction_above_share": round(float(np.mean(m > s)), 4),
        }
        if peak is not None:
            on_cue = float(np.mean(peak[selection]))
            values["fraction_peak_in_cue"] = round(on_cue, 4)
            values["peak_ratio"] = round(on_cue / mean_share, 3) if mean_share > 0 else None
        return values

    report = {}
    for name in np.unique(split):
        in_split = split == name
        report[str(name)] = {
            "all": summary(in_split),
            "per_class": {str(c): summary(in_split & (labels == c)) for c in classes
                          if np.any(in_split & (labels == c))},
        }
        if recognized is not None:
            report[str(name)]["by_outcome"] = {"recognized": summary(in_split & recognized),
                                               "missed": summary(in_split & ~recognized)}
    return report


# --- sharpness ------------------------------------------------------------------------------

TOP_FRACTION = 0.1


def descending_within_utterances(values, lengths):
    """Indices that order ragged ``values`` by utterance, each utterance's from its highest down (a stable
    sort: equal weights keep their frame order), in one sort for all utterances."""
    utterance = np.repeat(np.arange(len(lengths)), lengths)
    return np.lexsort((-values, utterance))


def attention_diagnostics(values, lengths, top_fraction=TOP_FRACTION):
    """How spread out each utterance's attention is, averaged over utterances.

    Args:
        values: (sum(L),) weights, each utterance's summing to 1 (ragged layout).
        lengths: (N,) frames per utterance.
        top_fraction: share of an utterance's frames (rounded up) whose mass is reported.

    Returns:
        dict with ``attention_effective_width``: the mean over utterances of
        exp(entropy) / L (1.0 for uniform weights, 1/L for one frame);
        ``attention_top10_mass``: the mean share of the weight held by the
        ``ceil(top_fraction * L)`` highest-weighted frames (``top_fraction`` for
        uniform weights); ``attention_utterances``: N.
    """
    values = np.asarray(values, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    check_ragged(values, lengths)
    starts = offsets_of(lengths)[:-1]
    plogp = np.where(values > 0, values * np.log(np.where(values > 0, values, 1.0)), 0.0)
    entropy = -np.add.reduceat(plogp, starts)  # (N,)
    width = np.exp(entropy) / lengths
    order = descending_within_utterances(values, lengths)
    rank = np.arange(len(values)) - np.repeat(starts, lengths)  # position within its utterance
    top = np.ceil(top_fraction * lengths).astype(np.int64)
    in_top = rank < np.repeat(top, lengths)
    top_mass = np.add.reduceat(np.where(in_top, values[order], 0.0), starts)
    return {"attention_effective_width": float(width.mean()), "attention_top10_mass": float(top_mass.mean()),
            "attention_utterances": int(len(lengths))}


def attention_metrics(values, lengths, ids, manifest_path=None):
    """The attention keys of metrics.json: :func:`attention_diagnostics`, and
    ``attention_cue_ratio`` (:func:`cue_ratio`) where the corpus manifest records the cue."""
    metrics = attention_diagnostics(values, lengths)
    ratio = cue_ratio(values, lengths, ids, manifest_path)
    if ratio is not None:
        metrics["attention_cue_ratio"] = ratio
    return metrics
