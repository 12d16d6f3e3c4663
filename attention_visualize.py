"""Plot where the attention goes, per class, from a saved run folder (Figure 2(a)(b)).

Each utterance's attention weights are mapped onto --slots equal fractions of its
duration (see serattn.analysis.attention.slot_profiles), averaged per class and split, and
drawn with the published class colors; on a corpus with cue times in its manifest
it also reports how much attention falls on the class cue.

    python attention_visualize.py results/tanh_seed1
    python attention_visualize.py results/tanh_seed1 --split test --published-algorithm
    python attention_visualize.py results/tanh_seed1 --utterance wav/test/A/utt0001.wav
"""

import argparse
import re
import sys
import wave
from pathlib import Path

import numpy as np

from serattn.analysis import attention as attn
from serattn.plots import figures as plots
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.features.corpora import confined_path, read_manifest
from serattn.runs.reading import (ATTENTION_FILE, PREDICTIONS_FILE, check_splits,
                                open_run)



def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="run folder written by train_attention_lstm.py")
    analysis = parser.add_argument_group("analysis")
    analysis.add_argument("--slots", type=int, default=attn.DEFAULT_SLOTS,
                          help="time slots per utterance (default: %(default)s, as published)")
    analysis.add_argument("--split", nargs="+", default=["train", "test"],
                          help="splits to plot, one panel each (default: train test)")
    analysis.add_argument("--published-algorithm", action="store_true",
                          help="slot sums with integer-floored intervals exactly as the published "
                               "avg_distribution (empty slots for utterances under --slots frames)")
    analysis.add_argument("--utterance", action="append", metavar="ID",
                          help="plot this utterance's attention over time instead (repeatable)")
    analysis.add_argument("--manifest", help="corpus manifest CSV with cue_start_s/cue_end_s "
                          "(default: the one named in the run's config.json)")
    output = parser.add_argument_group("output")
    output.add_argument("--out-dir", help="folder for figures and tables (default: RUN_DIR/figures)")
    output.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    args = parser.parse_args(argv)
    if args.slots < 1:
        raise InputError(f"--slots must be at least 1, got {args.slots}")
    return args


def main(argv=None):
    args = parse_args(argv)
    run = open_run(args.run_dir)
    attention = run.attention()
    out_dir = Path(args.out_dir) if args.out_dir else run.figures_dir
    manifest, manifest_path = _manifest(run, args.manifest)

    if args.utterance:
        for utterance_id in args.utterance:
            path = plot_utterance(run, attention, utterance_id, manifest, manifest_path, out_dir)
            print(f"wrote {path}")
        return 0

    # Profiles of the requested splits, then class means per split.
    check_splits(args.split, attention.split, run.path / ATTENTION_FILE)
    attention = attention.select(np.isin(attention.split, args.split))
    if args.published_algorithm:
        profiles = attn.published_slot_sums(attention.weights, attention.lengths, args.slots)
        ylabel, stem = "attention mass per slot (sum)", "attention_slots_published"
        method = "published slot sums"
    else:
        profiles = attn.slot_profiles(attention.weights, attention.lengths, args.slots)
        ylabel, stem = "attention relative to uniform (1 = uniform)", "attention_slots"
        method = "overlap-weighted slot means"
    panels, rows = [], []
    for split in args.split:
        in_split = attention.split == split
        mean, std, counts = attn.class_statistics(profiles[in_split], attention.labels[in_split],
                                                  run.classes)
        panels.append((split, mean, std, counts))
        rows += [(split, label, slot, f"{mean[c, slot]:.6g}", f"{std[c, slot]:.6g}")
                 for c, label in enumerate(run.classes) if counts[c]
                 for slot in range(args.slots)]
        _print_peaks(split, mean, counts, run.classes)

    reference = attn.uniform_level(args.slots, published=args.published_algorithm)
    figure = plots.plot_attention_slots(
        panels, run.classes, reference, ylabel,
        title=f"{run.name}: attention over {args.slots} time slots, class means ± standard error ({method})")
    out_dir.mkdir(parents=True, exist_ok=True)
    plots.save_figure(figure, out_dir / f"{stem}.png")
    plots.save_csv(out_dir / f"{stem}.csv", ("split", "label", "slot", "mean", "std"), rows)
    print(f"wrote {out_dir / f'{stem}.png'} and {stem}.csv")
    if attention.head_weights is not None and not args.published_algorithm:
        for split in args.split:
            path = plot_heads(run, attention, split, args.slots, out_dir)
            print(f"wrote {path}")

    # Does attention find the class cue? Only where the manifest knows the cue.
    if manifest is not None:
        report = cue_report(attention, manifest, manifest_path, run.classes)
        if report is not None:
            plots.save_json(out_dir / "attention_cue.json", report)
            for split, values in report["splits"].items():
                print(f"{split}: {values['all']['mean_mass_in_cue']:.1%} of the attention on the cue, "
                      f"which spans {values['all']['mean_cue_share']:.1%} of the duration")
            print(f"wrote {out_dir / 'attention_cue.json'}")
    return 0


def _print_peaks(split, mean, counts, classes):
    slots = mean.shape[1]
    peaks = ", ".join(f"{label} {100 * (np.nanargmax(mean[c]) + 0.5) / slots:.0f}%"
                      for c, label in enumerate(classes) if counts[c])
    print(f"{split}: n={int(counts.sum())}, attention peak per class at {peaks} of the duration")


def _manifest(run, path):
    """(columns, path) of the manifest given by flag (must exist) or named in
    config.json (used if present); (None, None) without one."""
    if path is not None:
        return read_manifest(path).columns(), Path(path)
    if run.manifest_path is not None and run.manifest_path.is_file():
        return read_manifest(run.manifest_path).columns(), run.manifest_path
    return None, None


def cue_report(attention, manifest, manifest_path, classes):
    """Attention mass on the cue vs the cue's share of the duration (dict for JSON).

    Cue times are turned into fractions of ``duration_s`` and placed on the
    utterance's frames by relative position, so a few frames more or fewer than
    duration x frame rate do not shift the cue. None when the manifest has no
    cue columns or none of the run's utterances.
    """
    if any(column not in manifest for column in attn.CUE_COLUMNS):
        print(f"no cue columns in '{manifest_path}'; skipping the cue report")
        return None
    start, stop = attn.cue_fractions(manifest, attention.ids)
    usable = np.isfinite(start) & np.isfinite(stop) & (stop > start)
    if not np.any(usable):
        print(f"no utterance of the run has a cue in '{manifest_path}'; skipping the cue report")
        return None
    attention = attention.select(usable)
    mass, share = attn.cue_attention(attention.weights, attention.lengths, start[usable], stop[usable])
    return {
        "manifest": str(manifest_path),
        "n_without_cue": int(np.sum(~usable)),
        "mass_in_cue": "fraction of the attention on the utterance's own frames inside the cue",
        "cue_share": "fraction of the utterance's duration covered by the cue",
        "mean_padding_mass": float(np.mean(attention.padding_mass)),
        "splits": attn.summarize_cue_attention(mass, share, attention.labels, attention.split,
                                               classes),
    }


def plot_heads(run, attention, split, slots, out_dir):
    """A multi-head run's attention profiles of one split, one panel per head."""
    in_split = attention.split == split
    panels = []
    for head in range(attention.head_weights.shape[1]):
        profiles = attn.slot_profiles(attention.head_weights[:, head], attention.lengths, slots)
        mean, std, counts = attn.class_statistics(profiles[in_split], attention.labels[in_split], run.classes)
        panels.append((f"head {head + 1}, {split}", mean, std, counts))
    figure = plots.plot_attention_slots(
        panels, run.classes, attn.uniform_level(slots), "attention relative to uniform (1 = uniform)",
        title=f"{run.name}: each head's attention over {slots} time slots ({split}), class means ± standard error")
    path = out_dir / f"attention_slots_heads_{split}.png"
    plots.save_figure(figure, path)
    return path


def plot_utterance(run, attention, utterance_id, manifest, manifest_path, out_dir):
    """Figure of one utterance's attention (over its waveform if the wav is found)."""
    i = attention.index_of(utterance_id, run.path / ATTENTION_FILE)
    weights = attention.utterance(i)
    cue = None
    audio_root = manifest_path.parent if manifest_path is not None else run.audio_root
    waveform, sample_rate = _read_wav(audio_root, utterance_id) if audio_root else (None, None)
    if manifest is not None and all(c in manifest for c in attn.CUE_COLUMNS[:2]):
        start, stop, _ = attn.cue_seconds(manifest, np.array([utterance_id]))
        cue = (start[0], stop[0]) if np.isfinite(start[0]) and np.isfinite(stop[0]) else None
    if waveform is None:
        where = f"under '{audio_root}'" if audio_root else "(no manifest or corpus root in config.json)"
        print(f"audio of '{utterance_id}' not found {where}; plotting attention only")
    title = f"{utterance_id} ({attention.split[i]}): class {attention.labels[i]}"
    predicted = _prediction(run, utterance_id)
    if predicted:
        title += f", predicted {predicted}"
    title += f", {len(weights)} frames"
    if attention.padding_mass[i] > 0:
        title += f", {attention.padding_mass[i]:.0%} of attention on padding"
    figure = plots.plot_utterance_attention(weights, run.frame_rate, waveform, sample_rate, cue, title)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"utterance_{safe_name(utterance_id)}.png"
    plots.save_figure(figure, path)
    return path


def _prediction(run, utterance_id):
    """'N (p=0.81)' from predictions.csv, or None when the run has no such row."""
    if not (run.path / PREDICTIONS_FILE).is_file():
        return None
    predictions = run.predictions()
    rows = np.flatnonzero(predictions["id"] == utterance_id)
    if len(rows) == 0:
        return None
    label = predictions["predicted"][rows[0]]
    probability = predictions.get(f"p_{label}")
    return label if probability is None else f"{label} (p={probability[rows[0]]:.2f})"


def safe_name(text):
    """A file-name-safe version of an utterance id (``wav/A/x.wav`` -> ``wav_A_x.wav``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "utterance"


def _read_wav(base, relative):
    """(samples, sample_rate) of a PCM wav found relative to ``base``, or (None, None)."""
    path = confined_path(base, relative)  # never a file outside the corpus folder (../x.wav, /abs.wav)
    if path is None:
        return None, None
    try:
        with wave.open(str(path), "rb") as handle:
            width, channels = handle.getsampwidth(), handle.getnchannels()
            frames = handle.readframes(handle.getnframes())
            rate = handle.getframerate()
    except (OSError, EOFError, wave.Error):
        return None, None
    if width not in (1, 2, 4):
        return None, None
    dtype = {1: np.uint8, 2: "<i2", 4: "<i4"}[width]
    samples = np.frombuffer(frames, dtype=dtype).astype(np.float64).reshape(-1, channels).mean(axis=1)
    samples = (samples - 128) / 128 if width == 1 else samples / float(2 ** (8 * width - 1))
    return samples, rate


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
