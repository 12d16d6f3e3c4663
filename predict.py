"""Predict emotion labels of new recordings with a saved run's model: whole files, timelines, live audio.

A dimensional run (--target arousal,valence) prints its predicted values per file (whole files only).

    python predict.py results/demo data/demo/wav/spk00_0001.wav
    python predict.py results/emodb my_recordings/ --csv predictions.csv --attention-plot plots/
    python predict.py results/emodb long.wav --window 2.0 --hop 0.5 --smooth 3 --out timelines/
    sox -d -t raw -r 16000 -e signed -b 16 -c 1 - | python predict.py results/emodb --stream -
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from serattn.define import SAMPLE_RATE
from serattn.deploy.outputs import (attention_plot_path, check_prediction_outputs, check_timeline_outputs,
                                    timeline_paths)
from serattn.deploy.recognizer import Recognizer, find_audio, read_signal
from serattn.deploy.timeline import check_window_hop
from serattn.errors import ArgumentParser, InputError, run_main


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a finished run folder (results/NAME)")
    parser.add_argument("inputs", nargs="*", help="audio files, or folders searched for audio files")
    parser.add_argument("--csv", help="also write the predictions to this CSV file (not replaced without "
                                      "--overwrite)")
    parser.add_argument("--attention-plot", metavar="DIR",
                        help="save each file's waveform with its attention weights to DIR")
    parser.add_argument("--batch-size", type=int, default=32, help="files (or windows) per forward pass")
    long = parser.add_argument_group("long recordings and live audio")
    long.add_argument("--window", type=float, metavar="SECONDS",
                      help="classify windows of this length (seconds) instead of whole files: writes a timeline "
                           "CSV and plot per file to --out")
    long.add_argument("--hop", type=float, metavar="SECONDS", help="step between windows (seconds; default 0.5)")
    long.add_argument("--smooth", type=int, metavar="N",
                      help="median filter over N windows (odd) of each class probability; 1 = none (default)")
    long.add_argument("--out", help="folder of the timeline CSVs and plots (default: timelines)")
    long.add_argument("--overwrite", action="store_true",
                      help="replace existing timeline files, --csv file and attention plots")
    long.add_argument("--stream", metavar="-", help="read 16 kHz mono s16le PCM from stdin ('-') and print "
                                                      "'start end class probability' per hop (window 2 s by default)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    args = parser.parse_args(argv)
    if args.stream is not None:
        if args.stream != "-":
            raise InputError(f"--stream reads standard input only: give '--stream -', got '{args.stream}'")
        if args.inputs:
            raise InputError("--stream reads audio from standard input; give no input files with it")
        check_unused(args, ("csv", "attention_plot", "smooth", "out"),
                     "--stream prints one line per window to standard output")
        args.window = 2.0 if args.window is None else args.window
    elif not args.inputs:
        raise InputError("give audio files or folders, or --stream - (see --help)")
    elif args.window is None:
        check_unused(args, ("hop", "smooth", "out"),
                     "--hop, --smooth and --out shape the timelines of --window SECONDS")
    else:
        check_unused(args, ("csv", "attention_plot"), "--window writes a timeline CSV and plot per file to --out")
    args.hop = 0.5 if args.hop is None else args.hop
    args.smooth = 1 if args.smooth is None else args.smooth
    args.out = "timelines" if args.out is None else args.out
    if args.window is not None:
        gap = check_window_hop(args.window, args.hop)
        if gap:
            print(f"warning: {gap}", file=sys.stderr)
    if args.smooth < 1 or args.smooth % 2 == 0:
        raise InputError(f"--smooth must be an odd number of windows (1 = none), got {args.smooth}")
    return args


def check_unused(args, names, why):
    """Raise InputError if a flag of ``names`` was given where it would be ignored."""
    given = [name for name in names if getattr(args, name) is not None]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise InputError(f"{flags} would be ignored here: {why}; drop {'it' if len(given) == 1 else 'them'}")


def predict_timelines(recognizer, files, args):
    """--window: each file's features extracted once, windowed, classified; a CSV and a plot per file."""
    from serattn.plots.figures import save_csv, save_figure
    from serattn.plots.timeline import plot_timeline

    check_timeline_outputs(files, args.out, args.overwrite)
    signals = {path: read_signal(path) for path in files}
    frames = {path: recognizer.extract(signal) for path, signal in signals.items()}
    for path in files:
        timeline = recognizer.timeline(frames[path], args.window, args.hop, args.smooth, args.batch_size)
        header, rows = timeline.rows()
        csv_path, plot_path = timeline_paths(path, args.out)
        save_csv(csv_path, header, rows)
        title = (f"{path.name}: {len(rows)} windows of {args.window:g} s every {args.hop:g} s"
                 + (f", median over {args.smooth}" if args.smooth > 1 else ""))
        save_figure(plot_timeline(timeline, signals[path], SAMPLE_RATE, title), plot_path)
        summary = []
        if timeline.classes:
            shares = {c: float(np.mean(timeline.predicted == c)) for c in timeline.classes}
            summary.append("predicted " + ", ".join(f"{c} {100 * v:.0f}%" for c, v in shares.items() if v))
        if timeline.dimensions:
            summary.append("mean " + ", ".join(f"{d} {v:.3f}" for d, v in zip(timeline.dimensions,
                                                                               timeline.values.mean(axis=0))))
        print(f"{path}: {len(rows)} windows, {'; '.join(summary)} -> {csv_path}, {plot_path}")
    return 0


def predict_stream(recognizer, args, source=None, sink=None):
    """--stream -: one line per hop as soon as its window has arrived: start, end, class, probability, and
    DIMENSION=value fields for a dimensional or multi-task run ('-' and 0.000 for its class if it has none)."""
    source = sys.stdin.buffer.fileno() if source is None else source
    sink = sys.stdout if sink is None else sink
    recognizer.warm_up(args.window)
    print(f"reading 16 kHz mono s16le PCM from stdin: one line per {args.hop:g} s hop, windows of {args.window:g} s",
          file=sys.stderr, flush=True)
    chunks = iter(lambda: os.read(source, 1 << 14), b"")
    for start, label, probability, *values in recognizer.stream(chunks, args.window, args.hop):
        fields = [f"{dim}={'-' if value is None else f'{value:.3f}'}" for dim, value in
                  (values[0] or {d: None for d in recognizer.dimensions}).items()] if values else []
        print("\t".join([f"{start:.2f}", f"{start + args.window:.2f}", label or "-", f"{probability:.3f}", *fields]),
              file=sink, flush=True)
    return 0


def main(argv=None):
    args = parse_args(argv)

    # The run: class list, feature settings, normalization and model, all from its folder.
    recognizer = Recognizer.from_run(args.run_dir)
    if args.stream is not None or args.window is not None:
        recognizer.check_windowed()
    if args.stream is not None:
        return predict_stream(recognizer, args)
    files = find_audio(args.inputs)
    if args.window is not None:
        return predict_timelines(recognizer, files, args)
    check_prediction_outputs(files, args.csv, args.attention_plot, args.overwrite)

    # Features of every readable file (unreadable ones are reported and skipped), then their classes.
    kept, sequences, waveforms = recognizer.read_files(files)
    if recognizer.normalization.per_speaker:
        print("note: the run normalizes per speaker; the given files are treated as one speaker"
              + (" (its functionals too: give several of the speaker's files)"
                 if recognizer.functionals_norm == "speaker" else ""), file=sys.stderr)
    predictions = recognizer.predict_frames(sequences, [str(p) for p in kept], batch_size=args.batch_size)

    header = ["file", "predicted", *(f"p_{c}" for c in recognizer.classes)]
    rows = [[str(path), label, *(f"{p:.4f}" for p in probs)]
            for path, label, probs in zip(kept, predictions.labels, predictions.probabilities)]
    if predictions.dimensions:  # a dimensional run's values (after the classes of a multi-task run)
        classes = ["predicted", *(f"p_{c}" for c in predictions.classes)] if predictions.classes else []
        header = ["file", *classes, *predictions.dimensions]
        rows = [[row[0], *(row[1:] if predictions.classes else []), *(f"{v:.4f}" for v in values)]
                for row, values in zip(rows, predictions.values)]
    print("\t".join(header))
    for row in rows:
        print("\t".join(row))
    if args.csv:
        from serattn.plots.figures import save_csv
        save_csv(args.csv, header, rows)
    if args.attention_plot:
        from serattn.plots.figures import plot_utterance_attention, save_figure
        for path, weights, signal, label in zip(kept, predictions.attention, waveforms, predictions.labels):
            what = f"predicted {label}" if label else "attention"
            figure = plot_utterance_attention(weights, recognizer.frame_rate, waveform=signal,
                                              sample_rate=SAMPLE_RATE, title=f"{path.name}: {what}")
            save_figure(figure, attention_plot_path(path, args.attention_plot))
    return 0


if __name__ == "__main__":
    run_main(main)
