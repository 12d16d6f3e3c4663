"""Time slot averaging: the published per-frame loop vs the vectorized functions.

Random attention weights of FAU-Aibo-like lengths (lognormal, mean ~180 frames);
prints seconds and speedups (see benchmark_slot_averaging below).

    python benchmarks/bench_slots.py
    python benchmarks/bench_slots.py --dim 60 --loop-subset 3000
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serattn.analysis.attention import (DEFAULT_SLOTS, published_avg_distribution,  # noqa: E402
                                        published_avg_distribution_loop, slot_profiles)
from serattn.features.feature_set import offsets_of  # noqa: E402


def random_attention(n_utterances, mean_frames=180, seed=0, dim=None):
    """Random ragged attention of FAU-Aibo-like lengths (lognormal, 10..2,453 frames).

    Returns:
        ``(values, lengths)``: float64 (sum(L),) weights summing to 1 per
        utterance (or (sum(L), dim) vectors), int64 (N,).
    """
    rng = np.random.default_rng(seed)
    lengths = rng.lognormal(np.log(mean_frames) - 0.18, 0.6, n_utterances)
    lengths = np.clip(lengths.round(), 10, 2453).astype(np.int64)
    values = rng.random(int(lengths.sum()) if dim is None else (int(lengths.sum()), dim))
    if dim is None:
        totals = np.add.reduceat(values, offsets_of(lengths)[:-1])
        values = values / np.repeat(totals, lengths)
    return values, lengths


def benchmark_slot_averaging(n_utterances=18_000, slots=DEFAULT_SLOTS, seed=0, loop_subset=None,
                             dim=None):
    """Time the published per-frame loop against the vectorized functions.

    Args:
        n_utterances: utterances of FAU-Aibo-like lengths (the corpus has ~18k).
        slots: slots per utterance.
        seed: for the random weights.
        loop_subset: time the (slow) loop on this many utterances only and
            scale up linearly; None times it on all of them.
        dim: None for scalar weights, 60 for per-frame vectors as the published
            code averaged (weighted LSTM outputs).

    Returns:
        dict of seconds (``loop_s``, ``published_vectorized_s``,
        ``slot_profiles_s``) and speedups over the loop.
    """
    values, lengths = random_attention(n_utterances, seed=seed, dim=dim)
    n_loop = n_utterances if loop_subset is None else min(loop_subset, n_utterances)
    sequences = np.split(values[: offsets_of(lengths)[n_loop]], np.cumsum(lengths[:n_loop])[:-1])

    start = time.perf_counter()
    published_avg_distribution_loop(sequences, slots)
    loop_s = (time.perf_counter() - start) * n_utterances / n_loop

    def best_of(function, repeats=3):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function(values, lengths, slots)
            times.append(time.perf_counter() - start)
        return min(times)

    published_s = best_of(published_avg_distribution)
    profiles_s = best_of(slot_profiles)
    return {
        "n_utterances": n_utterances,
        "frames": int(lengths.sum()),
        "loop_utterances_timed": n_loop,
        "loop_s": loop_s,
        "published_vectorized_s": published_s,
        "slot_profiles_s": profiles_s,
        "speedup_published": loop_s / published_s,
        "speedup_slot_profiles": loop_s / profiles_s,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=18_000, help="utterances (default: %(default)s)")
    parser.add_argument("--slots", type=int, default=100, help="slots per utterance (default: %(default)s)")
    parser.add_argument("--loop-subset", type=int, default=None,
                        help="time the slow loop on this many utterances and scale up (default: all)")
    parser.add_argument("--dim", type=int, default=None,
                        help="per-frame vectors of this size (60: weighted LSTM outputs, as published) "
                             "instead of scalar weights")
    args = parser.parse_args(argv)
    result = benchmark_slot_averaging(args.utterances, args.slots, loop_subset=args.loop_subset,
                                      dim=args.dim)
    print(f"{result['n_utterances']} utterances, {result['frames']} frames"
          f"{'' if args.dim is None else f' of {args.dim}-d vectors'}, {args.slots} slots")
    print(f"published per-frame loop:           {result['loop_s']:8.3f} s"
          + ("" if result["loop_utterances_timed"] == result["n_utterances"]
             else f" (timed on {result['loop_utterances_timed']}, scaled)"))
    print(f"published_avg_distribution (numpy): {result['published_vectorized_s']:8.3f} s "
          f"({result['speedup_published']:.0f}x)")
    print(f"slot_profiles (numpy):              {result['slot_profiles_s']:8.3f} s "
          f"({result['speedup_slot_profiles']:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
