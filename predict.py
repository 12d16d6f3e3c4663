"""Predict emotion labels of new recordings with a saved run's model.

    python predict.py results/demo data/demo/wav/spk00_0001.wav
    python predict.py results/emodb my_recordings/ --csv predictions.csv --attention-plot plots/
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import soundfile as sf

from serattn.features import extraction as features
from serattn.features.feature_set import FeatureSet
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.runs.reading import open_run

# Every format this soundfile reads (mp3 too, with libsndfile 1.1+), but RAW, which needs its rate given.
AUDIO_SUFFIXES = tuple(sorted({f".{name.lower()}" for name in sf.available_formats() if name != "RAW"} | {".aif"}))


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a finished run folder (results/NAME)")
    parser.add_argument("inputs", nargs="+", help="audio files, or folders searched for audio files")
    parser.add_argument("--csv", help="also write the predictions to this CSV file")
    parser.add_argument("--attention-plot", metavar="DIR",
                        help="save each file's waveform with its attention weights to DIR")
    parser.add_argument("--batch-size", type=int, default=32, help="files per forward pass")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    return parser.parse_args(argv)


def find_audio(inputs):
    """Audio files named or found (recursively) under the inputs, in a stable order."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"'{item}' does not exist; give audio files or folders holding them")
    if not files:
        raise InputError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found in {', '.join(inputs)}")
    return files


def check_feature_settings(run):
    """The run's openSMILE settings, refused if this version cannot extract them from audio."""
    meta = run.config.get("feature_meta") or {}
    feature_set, level = meta.get("feature_set"), meta.get("level", "lld")
    if feature_set not in features.OPENSMILE_SETS or level != "lld":
        raise InputError(f"run '{run.path}' was trained on features '{feature_set}' at level '{level}', "
                         f"which predict.py cannot extract from audio; train on features from "
                         f"extract_features.py (frame level)")
    if run.config.get("feature_names") != features.feature_names(feature_set, level):
        raise InputError(f"run '{run.path}' expects other feature names than openSMILE '{feature_set}' "
                         f"gives here (another openSMILE version?); re-extract and retrain")
    run.keras_model_file(), run.normalization()  # InputError if either is missing
    return feature_set, level


def main(argv=None):
    args = parse_args(argv)

    # The run: class list, feature settings and normalization, all from its folder.
    run = open_run(args.run_dir)
    feature_set, level = check_feature_settings(run)
    classes = run.classes
    normalization = run.normalization()
    files = find_audio(args.inputs)

    # Features of every readable file; unreadable ones are reported and skipped.
    sequences, waveforms, kept = [], [], []
    for path in files:
        try:
            signal, rate = features.read_audio(path)
        except Exception as error:  # soundfile raises many types for bad audio
            print(f"{path}: skipped: {error}", file=sys.stderr)
            continue
        problem = features.signal_problem(signal, rate)
        if problem and problem.startswith(features.NON_FINITE):
            raise InputError(f"'{path}' has {problem}; repair or remove the file")
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
    if normalization.per_speaker:
        print("note: the run normalizes per speaker; the given files are treated as one speaker",
              file=sys.stderr)
    batch = FeatureSet.from_sequences(sequences, ids=[str(p) for p in kept], labels=["?"] * len(kept),
                                      speakers=["new"] * len(kept), feature_names=run.config["feature_names"])
    batch = normalization.apply(batch)

    # Predict, with the padding the run was trained with.
    model = run.load_keras_model()
    from serattn.training.trainer import predict_with_attention

    pad_to = run.config.get("max_length_used")
    padding = run.config.get("padding", "post")
    outputs = predict_with_attention(model, batch.sequences(), args.batch_size, pad_to, padding)
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
            save_figure(figure, Path(args.attention_plot) / f"{path.stem}_attention.png")
    return 0


if __name__ == "__main__":
    run_main(main)
