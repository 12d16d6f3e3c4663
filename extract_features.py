"""Extract openSMILE features (IS09 frames by default) of a corpus into one feature-set file.

    python extract_features.py --manifest data/demo/manifest.csv --out data/demo.npz
    python extract_features.py --corpus emodb /path/to/emodb --augment speed=0.9,1.1 --out data/emodb_sp.npz --jobs 2
    python extract_features.py --corpus ravdess /path/to/ravdess --out data/ravdess_func.npz \\
        --level functionals --labels "angry=angry,happy=happy,sad=sad,neutral=neutral,calm=neutral"
    python extract_features.py --corpus iemocap /path/to/IEMOCAP_full_release --classes 4 --out data/iemocap4.npz
    python extract_features.py --manifest big.csv --out data/big.store --shard-size 1000 --dask-scheduler tcp://HOST:8786
    python extract_features.py --convert data/emodb_2s.npz --out data/emodb_2s.store
"""

import argparse
import sys
from pathlib import Path

from serattn.features import corpora
from serattn.define import DEFAULT_FEATURE_SET
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.features.extraction import (FEATURE_LEVELS, MAX_FILE_MB, OPENSMILE_SETS, check_output,
                                        extract_manifest, parse_augment)
from serattn.features.store import SHARD_SIZE, convert


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    source = data.add_mutually_exclusive_group(required=True)
    source.add_argument("--convert", type=Path, metavar="FEATURES",
                        help="no extraction: convert a feature set, .npz -> store or store -> .npz (as --out names)")
    source.add_argument("--manifest", type=Path,
                        help="CSV with columns path,label,speaker[,split]; paths relative to it")
    source.add_argument("--corpus", nargs=2, metavar=("NAME", "ROOT"),
                        help=f"a corpus as distributed: NAME is one of {', '.join(corpora.CORPORA)}, "
                             f"ROOT its folder (for csv: the manifest file)")
    data.add_argument("--labels", default=None,
                      help='keep and rename classes: "OLD=NEW,OLD2=NEW,KEEP" (several OLD may share a '
                           'NEW to merge them, a lone name keeps its class as is); classes not listed '
                           'are dropped (default: keep all)')
    data.add_argument("--allow-outside-root", action="store_true",
                      help="read manifest rows whose path leads out of the manifest's folder (../x.wav, "
                           "absolute paths); refused by default")
    data.add_argument("--max-file-mb", type=float, default=MAX_FILE_MB, metavar="MB",
                      help=f"skip (and list) audio files larger than this many megabytes (default: {MAX_FILE_MB})")
    data.add_argument("--classes", default=None, metavar="SET",
                      help="a corpus's standard class set: '4' for iemocap (neu, hap with exc merged, ang, "
                           "sad; other categories dropped) (default: all categories)")
    data.add_argument("--limit", type=int, default=None,
                      help="extract only this many files, a deterministic spread over the corpus "
                           "(default: all)")

    features = parser.add_argument_group("features")
    features.add_argument("--feature-set", default=DEFAULT_FEATURE_SET, choices=list(OPENSMILE_SETS),
                          help=f"openSMILE feature set: is09 (16 LLDs + 16 deltas), egemaps (25 LLDs), "
                               f"compare (65 LLDs + 65 deltas) (default: {DEFAULT_FEATURE_SET})")
    features.add_argument("--level", default="lld", choices=FEATURE_LEVELS,
                          help="lld: one row per 10 ms frame; functionals: one row per utterance "
                               "(default: lld)")
    features.add_argument("--augment", default=None, metavar="speed=F1,F2",
                          help="also extract a speed-perturbed copy of every file per factor (tempo and pitch "
                               "together, e.g. speed=0.9,1.1; factors 0.5-2), ids ID#speedF; training uses a "
                               "copy only where its source utterance trains, never in validation or test "
                               "(default: none)")

    run = parser.add_argument_group("run")
    run.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    run.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                     help="extract the shards of a store on this Dask cluster (tcp://HOST:8786); the workers "
                          "must see the audio, the cache and --out at the same paths (default: local processes)")
    run.add_argument("--cache", type=Path, default=None,
                     help="folder of cached per-file features (default: .feature_cache beside --out)")
    run.add_argument("--no-cache", action="store_true", help="extract every file again, cache nothing")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    run.add_argument("--debug", action="store_true", help="show tracebacks for input errors")

    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, required=True,
                        help="feature set to write: a .npz file, or any other name for a sharded store (a folder, "
                             "for corpora larger than memory; resumable); skipped files go to OUT.skipped.csv")
    output.add_argument("--shard-size", type=int, default=None, metavar="N",
                        help=f"utterances per shard of a store (default: {SHARD_SIZE})")
    output.add_argument("--overwrite", action="store_true",
                        help="replace --out if it exists (only a feature-set file)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    as_store = args.out.suffix != ".npz"
    if args.out.suffix not in (".npz", "", ".store"):
        raise InputError(f"--out must name a .npz file or a feature store folder, NAME or NAME.store, "
                         f"got '{args.out}'")
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    if args.shard_size is not None and args.shard_size < 1:
        raise InputError(f"--shard-size must be at least 1 utterance, got {args.shard_size}")
    if not as_store and (args.shard_size is not None or args.dask_scheduler is not None):
        raise InputError(f"--shard-size and --dask-scheduler write a sharded store: give --out a folder name "
                         f"without .npz, got '{args.out}'")
    augment = parse_augment(args.augment)
    check_output(args.out, args.overwrite)
    if args.convert is not None:  # .npz <-> store, nothing extracted
        convert(args.convert, args.out, args.shard_size or SHARD_SIZE, args.overwrite)
        return 0

    # Data: a manifest, read from a CSV or prepared from a corpus as distributed.
    if args.manifest is not None:
        if args.classes is not None:
            raise InputError("--classes picks a corpus recipe's class set (--corpus iemocap ROOT); "
                             "for a manifest use --labels")
        manifest = corpora.read_manifest(args.manifest)
    else:
        manifest = corpora.prepare_corpus(*args.corpus, classes=args.classes)
        if "dropped_by_classes" in manifest.meta and not args.quiet:
            print(f"--classes {args.classes}: {manifest.meta['dropped_by_classes']} utterances of other "
                  f"categories dropped, {len(manifest.rows)} kept", file=sys.stderr)
    if args.labels is not None:
        manifest = corpora.relabel(manifest, corpora.parse_label_map(args.labels))
    if args.limit is not None:
        manifest = corpora.limit(manifest, args.limit)

    # Features: extract, skip what cannot be used, save atomically.
    cache = None if args.no_cache else (args.cache or args.out.parent / ".feature_cache")
    extract_manifest(manifest, args.out, feature_set=args.feature_set, level=args.level,
                     jobs=args.jobs, cache_dir=cache, progress=not args.quiet, augment=augment,
                     max_file_mb=args.max_file_mb, allow_outside_root=args.allow_outside_root,
                     shard_size=(args.shard_size or SHARD_SIZE) if as_store else None, scheduler=args.dask_scheduler,
                     overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    run_main(main)
