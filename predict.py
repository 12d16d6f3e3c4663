"""Predict emotion labels of new recordings with a saved run's model: whole files, timelines, live audio.

    python predict.py results/demo data/demo/wav/spk00_0001.wav
    python predict.py results/emodb my_recordings/ --csv predictions.csv --attention-plot plots/
    python predict.py results/emodb long.wav --window 2.0 --hop 0.5 --smooth 3 --out timelines/
    sox -d -t raw -r 16000 -e signed -b 16 -c 1 - | python predict.py results/emodb --stream -
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import soundfile as sf

from serattn.features import extraction as features
from serattn.features.feature_set import FeatureSet
from serattn.errors import ArgumentParser, InputError, file_kind, run_main
from serattn.runs.folder import KERAS_MODEL_FILE, STATIC_MODEL_FILE
from serattn.runs.reading import open_run
from serattn.deploy.timeline import check_window_hop, check_windowed

# Every format this soundfile reads (mp3 too, with libsndfile 1.1+), but RAW, which needs its rate given.
AUDIO_SUFFIXES = tuple(sorted({f".{name.lower()}" for name in sf.available_formats() if name != "RAW"} | {".aif"}))


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


def find_audio(inputs):
    """Audio files named or found (recursively) under the inputs, in a stable order."""
    files = []
    for item in map(Path, inputs):
        kind = file_kind(item)
        if kind == "a folder":  # regular files only: a FIFO named x.wav would block for ever
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and file_kind(p) is None)
        elif kind is None:
            files.append(item)
        elif kind == "missing":
            raise InputError(f"'{item}' does not exist; give audio files or folders holding them")
        else:
            raise InputError(f"'{item}' is {kind}, not an audio file; give audio files or folders holding them")
    if not files:
        raise InputError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found in {', '.join(inputs)}")
    return files


def check_feature_settings(run):
    """The run's openSMILE settings, refused if this version cannot extract them from audio."""
    meta = run.config.get("feature_meta") or {}
    feature_set, level = meta.get("feature_set"), meta.get("level", "lld")
    if (run.path / STATIC_MODEL_FILE).is_file() and not (run.path / KERAS_MODEL_FILE).is_file():
        raise InputError(f"run '{run.path}' is a static {run.config.get('model', 'scikit-learn')} run "
                         f"(train_static.py); predict.py classifies with the model.keras of "
                         f"train_attention_lstm.py runs: give such a run folder")
    if feature_set not in features.OPENSMILE_SETS or level != "lld":
        raise InputError(f"run '{run.path}' was trained on features '{feature_set}' at level '{level}', "
                         f"which predict.py cannot extract from audio; train on features from "
                         f"extract_features.py (frame level)")
    if run.config.get("feature_names") != features.feature_names(feature_set, level):
        raise InputError(f"run '{run.path}' expects other feature names than openSMILE '{feature_set}' "
                         f"gives here (another openSMILE version?); re-extract and retrain")
    run.keras_model_file(), run.normalization()  # InputError if either is missing
    return feature_set, level


def read_signal(path):
    """16 kHz mono samples of an audio file; InputError if it cannot be used."""
    try:
        signal, rate = features.read_audio(path)
    except Exception as error:  # soundfile raises many types for bad audio
        raise InputError(f"cannot read '{path}': {error}") from None
    problem = features.signal_problem(signal, rate)
    if problem:
        raise InputError(f"'{path}' has {problem}" if problem.startswith(UNUSABLE) else f"'{path}': {problem}")
    return features.to_sample_rate(signal, rate)


UNUSABLE = (features.NON_FINITE, features.OUT_OF_RANGE)  # refused, not skipped: the file needs repair


def check_outputs(files, args):
    """Raise InputError before any work if --csv or an attention plot would replace a file or each other."""
    if args.csv:
        kind = file_kind(args.csv)
        if kind not in (None, "missing"):
            raise InputError(f"--csv '{args.csv}' is {kind}; give a file name")
        if kind is None and not args.overwrite:
            raise InputError(f"--csv '{args.csv}' already exists; choose another file, or pass --overwrite")
    if args.attention_plot:
        plots = [attention_plot_path(path, args.attention_plot) for path in files]
        for first, (path, plot) in enumerate(zip(files, plots)):
            if plot in plots[:first]:
                raise InputError(f"'{files[plots.index(plot)]}' and '{path}' would both be plotted to '{plot}'; "
                                 f"give them one at a time with different --attention-plot folders")
            if (plot.exists() or plot.is_symlink()) and not args.overwrite:
                raise InputError(f"'{plot}' already exists; choose another --attention-plot folder, "
                                 f"or pass --overwrite")


def attention_plot_path(path, folder):
    return Path(folder) / f"{path.stem}_attention.png"


def timeline_paths(path, out):
    return Path(out) / f"{path.stem}_timeline.csv", Path(out) / f"{path.stem}_timeline.png"


def predict_timelines(run, files, args, feature_set):
    """--window: each file's features extracted once, windowed, classified; a CSV and a plot per file."""
    from serattn.deploy.timeline import WindowPredictor, timeline_of_frames
    from serattn.plots.figures import save_csv, save_figure
    from serattn.plots.timeline import plot_timeline

    for path in files:
        for target in timeline_paths(path, args.out):
            if target.exists() and not args.overwrite:
                raise InputError(f"'{target}' already exists; choose another --out, or pass --overwrite")
    stems = [path.stem for path in files]
    repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
    if repeated:
        raise InputError(f"several files are named '{repeated[0]}': their timelines would overwrite each other; "
                         f"give them one at a time with different --out")
    signals = {path: read_signal(path) for path in files}
    frames = {path: features.extract_signal(signal, feature_set) for path, signal in signals.items()}
    predictor = WindowPredictor(run.load_keras_model(), run.normalization(), len(run.config["feature_names"]))
    for path in files:
        timeline = timeline_of_frames(predictor, frames[path], run.classes, args.window, args.hop, args.smooth,
                                      run.frame_rate, args.batch_size)
        header, rows = timeline.rows()
        csv_path, plot_path = timeline_paths(path, args.out)
        save_csv(csv_path, header, rows)
        title = (f"{path.name}: {len(rows)} windows of {args.window:g} s every {args.hop:g} s"
                 + (f", median over {args.smooth}" if args.smooth > 1 else ""))
        save_figure(plot_timeline(timeline, signals[path], features.SAMPLE_RATE, title), plot_path)
        shares = {c: float(np.mean(timeline.predicted == c)) for c in run.classes}
        print(f"{path}: {len(rows)} windows, predicted " + ", ".join(f"{c} {100 * v:.0f}%" for c, v in shares.items()
                                                                     if v) + f" -> {csv_path}, {plot_path}")
    return 0


def predict_stream(run, args, feature_set, source=None, sink=None):
    """--stream -: one line per hop as soon as its window has arrived: start, end, class, probability."""
    from serattn.deploy.timeline import BYTES_PER_SAMPLE, StreamWindows, WindowPredictor

    source = sys.stdin.buffer.fileno() if source is None else source
    sink = sys.stdout if sink is None else sink
    predictor = WindowPredictor(run.load_keras_model(), run.normalization(), len(run.config["feature_names"]))
    windows = StreamWindows(args.window, args.hop)
    # Warm up openSMILE and the traced model, so the first window is not late.
    warm = features.extract_signal(np.random.default_rng(0).normal(0, 0.1, windows.window).astype(np.float32),
                                   feature_set)
    predictor(predictor.normalize(warm)[None])
    classes = np.asarray(run.classes)
    print(f"reading 16 kHz mono s16le PCM from stdin: one line per {args.hop:g} s hop, windows of {args.window:g} s",
          file=sys.stderr, flush=True)
    received, reported = 0, 0
    while True:
        data = os.read(source, 1 << 14)
        if not data:
            break
        received += len(data)
        for start, samples in windows.push(data):
            reported += 1
            frames = features.extract_signal(samples, feature_set) if np.any(samples) else np.zeros((0, 0))
            if len(frames) == 0 or not np.all(np.isfinite(frames)):
                print(f"{start:.2f}\t{start + args.window:.2f}\t-\t0.000", file=sink, flush=True)  # silence
                continue
            probabilities, _ = predictor(predictor.normalize(frames)[None])
            best = int(probabilities[0].argmax())
            print(f"{start:.2f}\t{start + args.window:.2f}\t{classes[best]}\t{probabilities[0, best]:.3f}",
                  file=sink, flush=True)
    if not reported:
        seconds = received / BYTES_PER_SAMPLE / features.SAMPLE_RATE
        got = "no audio" if not received else f"{seconds:.2f} s of audio"
        raise InputError(f"--stream: standard input ended with {got}, less than one --window of {args.window:g} s; "
                         f"nothing was classified (give more audio or a shorter --window)")
    return 0


def main(argv=None):
    args = parse_args(argv)

    # The run: class list, feature settings and normalization, all from its folder.
    run = open_run(args.run_dir)
    feature_set, level = check_feature_settings(run)
    classes = run.classes
    normalization = run.normalization()
    if args.stream is not None or args.window is not None:
        check_windowed(run)
    if args.stream is not None:
        return predict_stream(run, args, feature_set)
    files = find_audio(args.inputs)
    if args.window is not None:
        return predict_timelines(run, files, args, feature_set)
    check_outputs(files, args)

    # Features of every readable file; unreadable ones are reported and skipped.
    sequences, waveforms, kept = [], [], []
    for path in files:
        try:
            signal, rate = features.read_audio(path)
        except Exception as error:  # soundfile raises many types for bad audio
            print(f"{path}: skipped: {error}", file=sys.stderr)
            continue
        problem = features.signal_problem(signal, rate)
        if problem and problem.startswith(UNUSABLE):
            repair = "; repair or remove the file" if problem.startswith(features.NON_FINITE) else ""
            raise InputError(f"'{path}' has {problem}{repair}")
        if problem:
            print(f"{path}: skipped: {problem}", file=sys.stderr)
            continue
        signal = features.to_sample_rate(signal, rate)
        try:
            frames = features.extract_signal(signal, feature_set, level)
        except Exception as error:  # openSMILE raises many types for odd audio
            print(f"{path}: skipped: {error}", file=sys.stderr)
            continue
        if len(frames) == 0 or not np.all(np.isfinite(frames)):
            print(f"{path}: skipped: too short for a single frame", file=sys.stderr)
            continue
        sequences.append(frames)
        waveforms.append(signal)
        kept.append(path)
    if not kept:
        raise InputError("none of the given files could be read; nothing to predict")
    functionals_norm = run.config.get("functionals_norm", "batch")
    if normalization.per_speaker:
        print("note: the run normalizes per speaker; the given files are treated as one speaker"
              + (" (its functionals too: give several of the speaker's files)" if functionals_norm == "speaker"
                 else ""), file=sys.stderr)
    batch = FeatureSet.from_sequences(sequences, ids=[str(p) for p in kept], labels=["?"] * len(kept),
                                      speakers=["new"] * len(kept), feature_names=run.config["feature_names"])
    batch = normalization.apply(batch)

    # Predict, with the padding the run was trained with.
    model = run.load_keras_model()
    from serattn.training.trainer import predict_with_attention, utterance_inputs

    pad_to = run.config.get("max_length_used")
    padding = run.config.get("padding", "post")
    outputs = predict_with_attention(model, batch.sequences(), args.batch_size, pad_to, padding,
                                     utterance_inputs(batch, functionals_norm))
    probabilities = outputs["probabilities"]
    predicted = np.asarray(classes)[probabilities.argmax(1)]

    header = ["file", "predicted", *(f"p_{c}" for c in classes)]
    rows = [[str(path), label, *(f"{p:.4f}" for p in probs)]
            for path, label, probs in zip(kept, predicted, probabilities)]
    print("\t".join(header))
    for row in rows:
        print("\t".join(row))
    if args.csv:
        from serattn.plots.figures import save_csv
        save_csv(args.csv, header, rows)
    if args.attention_plot:
        from serattn.plots.figures import plot_utterance_attention, save_figure
        frame_rate = (run.config.get("feature_meta") or {}).get("frame_rate", 100)
        for path, weights, signal, label in zip(kept, outputs["weights"], waveforms, predicted):
            figure = plot_utterance_attention(weights, frame_rate, waveform=signal,
                                              sample_rate=features.SAMPLE_RATE,
                                              title=f"{path.name}: predicted {label}")
            save_figure(figure, attention_plot_path(path, args.attention_plot))
    return 0


if __name__ == "__main__":
    run_main(main)
