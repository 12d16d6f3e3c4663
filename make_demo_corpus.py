"""Generate the synthetic demo corpus: 16 kHz wavs whose emotion cue sits in one known stretch.

    python make_demo_corpus.py --out data/demo
    python make_demo_corpus.py --out data/demo_small --utterances 100 --speakers 6 --seed 1 --overwrite
"""

import time

from serattn.features.demo_corpus import make_demo_corpus
from serattn.errors import ArgumentParser, run_main


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder to create (wav/ and manifest.csv)")
    parser.add_argument("--utterances", type=int, default=800, help="number of wav files (default: 800)")
    parser.add_argument("--speakers", type=int, default=12,
                        help="number of speakers, a third of them in the test split (default: 12)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default: 0)")
    parser.add_argument("--max-duration", type=float, default=4.0,
                        help="longest utterance in seconds (default: 4.0; shortest 0.5)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the demo corpus (wav/, manifest.csv) in --out; other files stay")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    manifest = make_demo_corpus(args.out, args.utterances, args.speakers, args.seed,
                                overwrite=args.overwrite, max_duration_s=args.max_duration)
    print(f"wrote {args.utterances} utterances of {args.speakers} speakers in "
          f"{time.perf_counter() - start:.1f} s: {manifest}")
    return 0


if __name__ == "__main__":
    run_main(main)
