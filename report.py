"""One self-contained HTML page of a run, a comparison of runs, or a corpus.

Scores with speaker-bootstrap confidence intervals, paired speaker-level tests
between runs (Holm-corrected), confusion matrices, learning curves, attention
figures, a gallery of test utterances to listen to, and what the corpus holds.

    python report.py results/demo                                   # -> results/demo/report.html
    python report.py results/tanh-seed1 results/relu-seed1 --out tanh-vs-relu.html
    python report.py --data data/demo/features.npz --out corpus.html
"""

import argparse
import sys
from pathlib import Path

from serattn.analysis import statistics as stats
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.report.page import ReportOptions, build_report, check_replaceable, write_report
from serattn.runs.folder import REPORT_FILE


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="*", metavar="RUN_DIR",
                        help="finished run folders; several are compared with the first (same test utterances)")
    parser.add_argument("--data", metavar="FEATURES.npz", help="also (or only) describe this feature file")
    content = parser.add_argument_group("content")
    content.add_argument("--gallery", type=int, default=3, metavar="K",
                         help="test utterances per class shown predicted right and wrong (0: no gallery; "
                              "default: %(default)s)")
    content.add_argument("--max-audio-mb", type=float, default=20.0,
                         help="audio embedded in the page, in MB in all; the rest is linked relative to the page "
                              "(default: %(default)s)")
    content.add_argument("--resamples", type=int, default=stats.RESAMPLES,
                         help="bootstrap resamples and random permutations (default: %(default)s)")
    content.add_argument("--seed", type=int, default=stats.SEED, help="seed of the resampling (default: %(default)s)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="FILE.html",
                        help=f"page to write (default: RUN_DIR/{REPORT_FILE} for one run; required otherwise)")
    output.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    output.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    args = parser.parse_args(argv)
    if not args.run_dirs and not args.data:
        parser.error("give RUN_DIR(s), --data FEATURES.npz, or both")
    if args.gallery < 0 or args.max_audio_mb < 0:
        parser.error("--gallery and --max-audio-mb must not be negative")
    if args.resamples < 100:
        parser.error(f"--resamples must be at least 100, got {args.resamples}")
    if args.out is None:
        if len(args.run_dirs) != 1:
            parser.error("--out FILE.html is needed unless the report is of exactly one run")
        args.out = str(Path(args.run_dirs[0]) / REPORT_FILE)
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        parser.error(f"--out must name an .html file, got '{args.out}'")
    if out.is_dir():
        raise InputError(f"--out '{out}' is a folder; name an .html file")
    if out.exists() and not args.overwrite:
        raise InputError(f"'{out}' already exists; choose another --out, or pass --overwrite to replace it")
    if out.exists():
        check_replaceable(out)
    return args


def main(argv=None):
    args = parse_args(argv)
    options = ReportOptions(gallery=args.gallery, max_audio_mb=args.max_audio_mb, resamples=args.resamples,
                            seed=args.seed)
    # Read and check every run, compute the statistics and figures, then write the page at once.
    html = build_report(args.run_dirs, args.out, options, data=args.data)
    write_report(html, args.out)
    print(f"wrote {args.out} ({len(html.encode()) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
