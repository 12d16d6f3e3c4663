"""Time slot averaging: the published per-frame loop vs the vectorized functions.

Random attention weights of FAU-Aibo-like lengths (lognormal, mean ~180 frames);
prints seconds and speedups (see serattn.analysis.attention.benchmark_slot_averaging).

    python benchmarks/bench_slots.py
    python benchmarks/bench_slots.py --dim 60 --loop-subset 3000
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serattn.analysis.attention import benchmark_slot_averaging  # noqa: E402


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
