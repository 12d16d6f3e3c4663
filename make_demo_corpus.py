"""Generate the synthetic demo corpus: 16 kHz wavs whose emotion cue sits in one known stretch.

    python make_demo_corpus.py --out data/demo
    python make_demo_corpus.py --out data/demo_small --utterances 100 --speakers 6 --seed 1 --overwrite
    python make_demo_corpus.py --out data/demo_cue10 --duration 4:12 --cue-share 0.1
"""

import time

from serattn.errors import ArgumentParser, InputError, run_main
from serattn.features.demo_corpus import make_demo_corpus, parse_range

DEFAULT_MAX_DURATION_S = 4.0


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder to create (wav/ and manifest.csv)")
    parser.add_argument("--utterances", type=int, default=800, help="number of wav files (default: 800)")
    parser.add_argument("--speakers", type=int, default=12,
                        help="number of speakers, a third of them in the test split (default: 12)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default: 0)")
    parser.add_argument("--max-duration", type=float, default=None,
                        help="longest utterance in seconds (default: 4.0; shortest 0.5)")
    cue = parser.add_argument_group("controlled cue (drawn only when given; without them the corpus "
                                    "is byte for byte as before)")
    cue.add_argument("--duration", metavar="MIN:MAX",
                     help="utterance length in seconds, uniform in MIN:MAX, or one number for a "
                          "fixed length (at least 0.2; default: 0.5-4 s, mean 1.8 s; replaces --max-duration)")
    cue.add_argument("--cue-share", metavar="MIN:MAX",
                     help="the cue's share of its utterance, uniform in MIN:MAX within (0, 1], or one "
                          "number (1: the whole utterance is the cue); the cue's position stays random "
                          "and it must last at least one syllable (0.19 s) (default: 0.3-0.8 s, at most 60%%)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the demo corpus (wav/, manifest.csv) in --out; other files stay")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.duration is not None and args.max_duration is not None:
        raise InputError("--duration: give either --duration or --max-duration, not both")
    duration = None if args.duration is None else parse_range(args.duration, "--duration")
    cue_share = None if args.cue_share is None else parse_range(args.cue_share, "--cue-share")
    start = time.perf_counter()
    manifest = make_demo_corpus(args.out, args.utterances, args.speakers, args.seed,
                                overwrite=args.overwrite,
                                max_duration_s=DEFAULT_MAX_DURATION_S if args.max_duration is None else args.max_duration,
                                duration_s=duration, cue_share=cue_share)
    print(f"wrote {args.utterances} utterances of {args.speakers} speakers in "
          f"{time.perf_counter() - start:.1f} s: {manifest}")
    return 0


if __name__ == "__main__":
    run_main(main)
