"""Confidence intervals and paired tests for UA and WA, with speakers as the unit.

Test utterances of one speaker are not independent (voice, microphone, the
speaker's way of acting an emotion), so resampling utterances gives intervals that
are too narrow. Here speakers are resampled (a cluster bootstrap) and, to compare
two runs scored on the same utterances, each speaker's predictions are swapped
between the runs (a paired permutation test): the unit of both is the speaker.

Everything works on per-speaker, per-class counts (:func:`speaker_counts`), so a
resample is a matrix product: 1,000 resamples of a corpus take milliseconds.

    counts = speaker_counts(true, predicted, speakers, classes)
    interval = bootstrap_scores(counts)               # UA, WA and recall, each (estimate, low, high)
    test = paired_test(counts, other_counts)          # UA difference, its interval and p-value
"""

import dataclasses

import numpy as np
from scipy.stats.contingency import association

from serattn.errors import InputError

RESAMPLES = 1000
CONFIDENCE = 0.95
SEED = 0
EXACT_UP_TO = 2 ** 12  # speaker swaps enumerated in full (an exact test) up to this many, e.g. 12 speakers
FEW_SPEAKERS = 10  # below this, speaker-level intervals and p-values are coarse (said in reports)


@dataclasses.dataclass(frozen=True)
class SpeakerCounts:
    """Test utterances per speaker and true class, and how many of them were right.

    ``total`` and ``correct`` are (S, C) in the order of ``speakers`` and ``classes``.
    """

    speakers: tuple
    classes: tuple
    total: np.ndarray
    correct: np.ndarray


def speaker_counts(true_labels, predicted_labels, speakers, classes):
    """:class:`SpeakerCounts` of predictions (one entry per test utterance)."""
    true_labels, predicted_labels = np.asarray(true_labels, str), np.asarray(predicted_labels, str)
    speakers = np.asarray(speakers, str)
    classes = tuple(str(c) for c in classes)
    unknown = sorted(set(true_labels) - set(classes))
    if unknown:
        raise InputError(f"true labels {', '.join(unknown)} are not among the classes {', '.join(classes)}")
    names, speaker_index = np.unique(speakers, return_inverse=True)
    class_index = np.array([classes.index(label) for label in true_labels], dtype=np.int64)
    total = np.zeros((len(names), len(classes)))
    correct = np.zeros_like(total)
    np.add.at(total, (speaker_index, class_index), 1)
    np.add.at(correct, (speaker_index, class_index), true_labels == predicted_labels)
    return SpeakerCounts(tuple(str(s) for s in names), classes, total, correct)


def scores_of(total, correct):
    """UA, WA and per-class recall of (..., S, C) counts summed over speakers.

    A class without utterances (in a resample without its speakers) has no recall
    and UA is the mean over the classes present, as in :func:`evaluate_predictions`.

    Returns:
        ``(ua (...), wa (...), recall (..., C))``, NaN where undefined.
    """
    n, k = total.sum(axis=-2), correct.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
        wa = k.sum(axis=-1) / n.sum(axis=-1)
        ua = np.where(n > 0, recall, 0).sum(axis=-1) / (n > 0).sum(axis=-1)
    return ua, wa, recall


def speaker_resamples(n_speakers, resamples=RESAMPLES, seed=SEED):
    """(resamples, S) weights: how often each speaker is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_speakers, size=(resamples, n_speakers))
    return np.stack([np.bincount(row, minlength=n_speakers) for row in draws]).astype(np.float64)


def _weighted(counts, weights):
    """Counts summed over speakers under resample weights: ((B, 1, C), (B, 1, C))."""
    return (weights @ counts.total)[:, None, :], (weights @ counts.correct)[:, None, :]


def _interval(values, confidence):
    alpha = (1 - confidence) / 2
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [alpha, 1 - alpha], axis=0)
    return float(low), float(high)


def bootstrap_scores(counts, resamples=RESAMPLES, confidence=CONFIDENCE, seed=SEED):
    """UA, WA and per-class recall with percentile intervals of a speaker-level bootstrap.

    Each resample draws S speakers with replacement (S = the test speakers) and
    scores all their utterances; the interval is the central ``confidence`` share
    of the resampled scores.

    Returns:
        dict with ``ua``, ``wa`` (each ``(estimate, low, high)``), ``recall``
        (class -> ``(estimate, low, high)``), ``speakers`` (S), ``resamples``, ``confidence``.
    """
    ua, wa, recall = scores_of(counts.total, counts.correct)
    boot_ua, boot_wa, boot_recall = scores_of(*_weighted(counts, speaker_resamples(len(counts.speakers),
                                                                                    resamples, seed)))
    return {
        "ua": (float(ua), *_interval(boot_ua, confidence)),
        "wa": (float(wa), *_interval(boot_wa, confidence)),
        "recall": {c: (float(recall[j]), *_interval(boot_recall[:, j], confidence))
                   for j, c in enumerate(counts.classes)},
        "speakers": len(counts.speakers),
        "resamples": resamples,
        "confidence": confidence,
    }


def check_paired(first, second, first_name="first run", second_name="second run"):
    """Raise InputError unless two runs' counts are over the same speakers and classes."""
    if first.classes != second.classes:
        raise InputError(f"cannot compare '{first_name}' and '{second_name}': classes "
                         f"{','.join(first.classes)} vs {','.join(second.classes)}")
    if first.speakers != second.speakers or not np.array_equal(first.total, second.total):
        raise InputError(f"cannot compare '{first_name}' and '{second_name}': they were scored on different "
                         f"test utterances")


def paired_test(first, second, resamples=RESAMPLES, confidence=CONFIDENCE, seed=SEED):
    """Is the UA of ``second`` different from that of ``first``? Speakers are the unit.

    Both runs must have scored the same test utterances. The p-value is that of a
    two-sided paired permutation test: under the null hypothesis the two runs are
    exchangeable on every speaker, so each speaker's counts are swapped between them
    at random (all 2^S swaps when there are at most ``max(resamples, EXACT_UP_TO)``,
    an exact test; otherwise ``resamples`` random ones, with the +1 correction that
    keeps the test valid). The interval of the difference comes from a paired speaker bootstrap
    (the same resampled speakers for both runs).

    Returns:
        dict with ``ua_difference``, ``wa_difference`` (second - first, each
        ``(estimate, low, high)``), ``recall_difference`` (class -> the same),
        ``p_value`` (UA), ``p_value_wa``, ``exact`` (bool) and ``permutations``.
    """
    check_paired(first, second)
    n_speakers = len(first.speakers)
    ua_a, wa_a, recall_a = scores_of(first.total, first.correct)
    ua_b, wa_b, recall_b = scores_of(second.total, second.correct)

    # Paired bootstrap: the same resampled speakers for both runs.
    weights = speaker_resamples(n_speakers, resamples, seed)
    boot_a, boot_b = scores_of(*_weighted(first, weights)), scores_of(*_weighted(second, weights))

    # Permutation: swap[b, s] says whether speaker s's counts trade places in permutation b.
    exact = 2 ** n_speakers <= max(resamples, EXACT_UP_TO)
    if exact:
        swap = (np.arange(2 ** n_speakers)[:, None] >> np.arange(n_speakers)) & 1
    else:
        swap = np.random.default_rng(seed + 1).integers(0, 2, size=(resamples, n_speakers))
    swap = swap.astype(np.float64)[:, :, None]  # (B, S, 1)
    perm_a = first.correct * (1 - swap) + second.correct * swap
    perm_b = second.correct * (1 - swap) + first.correct * swap
    ua_pa, wa_pa, _ = scores_of(first.total, perm_a)
    ua_pb, wa_pb, _ = scores_of(first.total, perm_b)

    def p_value(observed, permuted):
        # A tolerance, so that ties computed in another order still count as ties.
        extreme = np.sum(np.abs(permuted) >= abs(observed) - 1e-12)
        return float(extreme / len(permuted)) if exact else float((extreme + 1) / (len(permuted) + 1))

    return {
        "ua_difference": (float(ua_b - ua_a), *_interval(boot_b[0] - boot_a[0], confidence)),
        "wa_difference": (float(wa_b - wa_a), *_interval(boot_b[1] - boot_a[1], confidence)),
        "recall_difference": {c: (float(recall_b[j] - recall_a[j]),
                                  *_interval(boot_b[2][:, j] - boot_a[2][:, j], confidence))
                              for j, c in enumerate(first.classes)},
        "p_value": p_value(ua_b - ua_a, ua_pb - ua_pa),
        "p_value_wa": p_value(wa_b - wa_a, wa_pb - wa_pa),
        "exact": bool(exact),
        "permutations": int(len(swap)),
        "speakers": n_speakers,
    }


def compare_to_first(counts, resamples=RESAMPLES, confidence=CONFIDENCE, seed=SEED):
    """:func:`paired_test` of every run (or group) in ``counts[1:]`` against ``counts[0]``.

    Each result gains ``p_holm``: its UA p-value adjusted by Holm's method over the
    ``len(counts) - 1`` comparisons, so that "any p_holm < 0.05" keeps a 5%
    family-wise error rate.
    """
    tests = [paired_test(counts[0], other, resamples, confidence, seed) for other in counts[1:]]
    for test, adjusted in zip(tests, holm([t["p_value"] for t in tests])):
        test["p_holm"] = float(adjusted)
    return tests


def mean_counts(members):
    """The counts of runs scored on the same utterances (seeds), averaged.

    UA and WA are linear in the correct counts once the totals are fixed, so the
    scores of the averaged counts are the mean of the runs' scores; bootstrapping
    and permuting them gives intervals and tests of the seed-mean.
    """
    first = members[0]
    for other in members[1:]:
        check_paired(first, other)
    return SpeakerCounts(first.speakers, first.classes, first.total,
                         np.mean([m.correct for m in members], axis=0))


def holm(p_values):
    """Holm's step-down adjustment of p-values for several comparisons (family-wise error).

    Returns:
        (m,) adjusted p-values, in the order given.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if len(p) == 0:
        return p
    order = np.argsort(p)
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    result = np.empty_like(p)
    result[order] = np.minimum(adjusted, 1.0)
    return result


def cramers_v(table):
    """Cramér's V of a contingency table (e.g. speakers x classes): 0 independent, 1 one determines the other.

    Rows and columns without counts are dropped; NaN when fewer than 2 remain.
    """
    table = np.asarray(table, dtype=np.int64)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if min(table.shape) < 2:
        return float("nan")
    return float(association(table, method="cramer"))


def format_interval(value, digits=1, scale=100):
    """'62.3 [55.1, 69.0]' of ``(estimate, low, high)``; '-' where undefined."""
    estimate, low, high = value
    if estimate is None or not np.isfinite(estimate):
        return "-"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{scale * estimate:.{digits}f}"
    return f"{scale * estimate:.{digits}f} [{scale * low:.{digits}f}, {scale * high:.{digits}f}]"


def format_p(p_value):
    """A p-value as '0.003', '<0.001' or '-'."""
    if p_value is None or not np.isfinite(p_value):
        return "-"
    return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"


# --- dimensional runs: CCC with speakers as the unit -------------------------------------


@dataclasses.dataclass(frozen=True)
class SpeakerValueSums:
    """Per speaker and dimension the sums the CCC needs: n, Σt, Σp, Σt², Σp², Σtp ((S, K, 6)).

    CCC is a function of sums over utterances, so a speaker resample is a matrix product
    of weights and these sums, as for the counts of UA.
    """

    speakers: tuple
    dimensions: tuple
    sums: np.ndarray


def speaker_value_sums(true, predicted, speakers, dimensions):
    """:class:`SpeakerValueSums` of (N, K) true and predicted values of ``speakers`` (N,)."""
    true, predicted = np.asarray(true, float), np.asarray(predicted, float)
    speakers = np.asarray(speakers, dtype=str)
    order = tuple(sorted(set(speakers)))
    sums = np.zeros((len(order), len(dimensions), 6))
    for s, speaker in enumerate(order):
        t, p = true[speakers == speaker], predicted[speakers == speaker]
        sums[s] = np.stack([np.full(t.shape[1], len(t)), t.sum(0), p.sum(0), (t * t).sum(0), (p * p).sum(0),
                            (t * p).sum(0)], axis=-1)
    return SpeakerValueSums(order, tuple(dimensions), sums)


def ccc_of_sums(sums):
    """CCC of (..., K, 6) sums: (..., K); NaN where the values do not vary."""
    n, t, p, tt, pp, tp = np.moveaxis(sums, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.maximum(n, 1)
        mt, mp = t / n, p / n
        denominator = tt / n - mt ** 2 + pp / n - mp ** 2 + (mt - mp) ** 2
        return np.where(denominator > 0, 2 * (tp / n - mt * mp) / denominator, np.nan)


def bootstrap_ccc(value_sums, resamples=RESAMPLES, confidence=CONFIDENCE, seed=SEED):
    """Each dimension's CCC and their mean, with percentile intervals of a speaker bootstrap.

    Returns:
        dict with ``ccc`` (dimension -> ``(estimate, low, high)``), ``mean`` (the mean CCC over
        dimensions, the same), ``speakers``, ``resamples``, ``confidence``.
    """
    ccc = ccc_of_sums(value_sums.sums.sum(0))  # (K,)
    weights = speaker_resamples(len(value_sums.speakers), resamples, seed)  # (B, S)
    boot = ccc_of_sums(np.einsum("bs,skf->bkf", weights, value_sums.sums))  # (B, K)
    return {"ccc": {d: (float(ccc[k]), *_interval(boot[:, k], confidence)) for k, d in enumerate(value_sums.dimensions)},
            "mean": (float(np.mean(ccc)), *_interval(boot.mean(1), confidence)),
            "speakers": len(value_sums.speakers), "resamples": resamples, "confidence": confidence}


def paired_ccc_test(first, second, resamples=RESAMPLES, confidence=CONFIDENCE, seed=SEED):
    """Is the mean CCC of ``second`` different from that of ``first``? Speakers are the unit.

    As :func:`paired_test`: each speaker's predictions are swapped between the runs at random
    (exact over all 2^S swaps when few), and the interval of the difference is a paired
    speaker bootstrap. Both runs must have scored the same utterances (same n, Σt, Σt²).

    Returns:
        dict with ``ccc_difference`` (second - first, ``(estimate, low, high)``), ``p_value``,
        ``exact``, ``permutations`` and ``speakers``.
    """
    if first.dimensions != second.dimensions or first.speakers != second.speakers or \
            not np.allclose(first.sums[..., [0, 1, 3]], second.sums[..., [0, 1, 3]]):
        raise InputError("cannot compare dimensional runs scored on different test utterances or dimensions")
    n_speakers = len(first.speakers)

    def mean_ccc(sums):  # (..., S, K, 6) -> (...)
        return ccc_of_sums(sums.sum(-3)).mean(-1)

    observed = mean_ccc(second.sums) - mean_ccc(first.sums)
    weights = speaker_resamples(n_speakers, resamples, seed)
    boot = ccc_of_sums(np.einsum("bs,skf->bkf", weights, second.sums)).mean(1) - \
        ccc_of_sums(np.einsum("bs,skf->bkf", weights, first.sums)).mean(1)
    exact = 2 ** n_speakers <= max(resamples, EXACT_UP_TO)
    if exact:
        swap = (np.arange(2 ** n_speakers)[:, None] >> np.arange(n_speakers)) & 1
    else:
        swap = np.random.default_rng(seed + 1).integers(0, 2, size=(resamples, n_speakers))
    swap = swap.astype(np.float64)[:, :, None, None]  # (B, S, 1, 1)
    permuted = mean_ccc(second.sums * (1 - swap) + first.sums * swap) - \
        mean_ccc(first.sums * (1 - swap) + second.sums * swap)
    extreme = np.sum(np.abs(permuted) >= abs(observed) - 1e-12)
    p_value = float(extreme / len(permuted)) if exact else float((extreme + 1) / (len(permuted) + 1))
    return {"ccc_difference": (float(observed), *_interval(boot, confidence)), "p_value": p_value,
            "exact": bool(exact), "permutations": int(len(swap)), "speakers": n_speakers}


def compare_ccc_to_first(sums, resamples=RESAMPLES, confidence=CONFIDENCE, seed=SEED):
    """:func:`paired_ccc_test` of every run in ``sums[1:]`` against ``sums[0]``, with Holm's ``p_holm``."""
    tests = [paired_ccc_test(sums[0], other, resamples, confidence, seed) for other in sums[1:]]
    for test, adjusted in zip(tests, holm([t["p_value"] for t in tests])):
        test["p_holm"] = float(adjusted)
    return tests
