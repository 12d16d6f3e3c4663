"""Figures of where the attention goes, from a run folder (attention_visualize.py's logic).

Each utterance's attention weights are mapped onto equal fractions of its duration
(:func:`serattn.analysis.attention.slot_profiles`) and averaged per class and split;
on a corpus with cue times in its manifest, the attention on the class cue is measured.
"""

import re
import wave
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from serattn.analysis import attention as attn
from serattn.features.corpora import confined_path, read_manifest
from serattn.plots import figures
from serattn.runs.reading import ATTENTION_FILE, PREDICTIONS_FILE, Run


def plot_class_slots(run: Run, attention, splits: list[str], slots: int, published: bool = False
                     ) -> tuple[Figure, str, list[tuple], list[str]]:
    """Figure 2(a)(b): each class's attention over ``slots`` time slots, one panel per split.

    Returns:
        ``(figure, file stem, CSV rows (split, label, slot, mean, std), a peaks line per split)``.
    """
    if published:
        profiles = attn.published_slot_sums(attention.weights, attention.lengths, slots)
        ylabel, stem = "attention mass per slot (sum)", "attention_slots_published"
        method = "published slot sums"
    else:
        profiles = attn.slot_profiles(attention.weights, attention.lengths, slots)
        ylabel, stem = "attention relative to uniform (1 = uniform)", "attention_slots"
        method = "overlap-weighted slot means"
    panels, rows, lines = [], [], []
    for split in splits:
        in_split = attention.split == split
        mean, std, counts = attn.class_statistics(profiles[in_split], attention.labels[in_split], run.classes)
        panels.append((split, mean, std, counts))
        rows += [(split, label, slot, f"{mean[c, slot]:.6g}", f"{std[c, slot]:.6g}")
                 for c, label in enumerate(run.classes) if counts[c]
                 for slot in range(slots)]
        lines.append(peaks_line(split, mean, counts, run.classes))
    reference = attn.uniform_level(slots, published=published)
    figure = figures.plot_attention_slots(
        panels, run.classes, reference, ylabel,
        title=f"{run.name}: attention over {slots} time slots, class means ± standard error ({method})")
    return figure, stem, rows, lines


def peaks_line(split: str, mean: np.ndarray, counts: np.ndarray, classes: tuple[str, ...]) -> str:
    """Where each class's mean attention peaks, as a share of the duration (one line)."""
    slots = mean.shape[1]
    peaks = ", ".join(f"{label} {100 * (np.nanargmax(mean[c]) + 0.5) / slots:.0f}%"
                      for c, label in enumerate(classes) if counts[c])
    return f"{split}: n={int(counts.sum())}, attention peak per class at {peaks} of the duration"


def manifest_of(run: Run, path: str | None) -> tuple[dict | None, Path | None]:
    """(columns, path) of the manifest given by flag (must exist) or named in
    config.json (used if present); (None, None) without one."""
    if path is not None:
        return read_manifest(path).columns(), Path(path)
    if run.manifest_path is not None and run.manifest_path.is_file():
        return read_manifest(run.manifest_path).columns(), run.manifest_path
    return None, None


def cue_report(attention, manifest: dict, manifest_path: Path, classes: tuple[str, ...],
               predicted: np.ndarray | None = None) -> tuple[dict | None, str | None]:
    """Attention mass on the cue vs the cue's share of the duration, and how often the attention's
    peak is on the cue (dict for JSON), and a note.

    Cue times are turned into fractions of ``duration_s`` and placed on the
    utterance's frames by relative position, so a few frames more or fewer than
    duration x frame rate do not shift the cue. With ``predicted`` ((N,) labels, ``""`` where
    unknown: :func:`predicted_labels`) the utterances the run recognized and those it missed are
    also summarized apart. The report is None, and the note says why, when the manifest has no
    cue columns or none of the run's utterances.
    """
    if any(column not in manifest for column in attn.CUE_COLUMNS):
        return None, f"no cue columns in '{manifest_path}'; skipping the cue report"
    start, stop = attn.cue_fractions(manifest, attention.ids)
    usable = np.isfinite(start) & np.isfinite(stop) & (stop > start)
    if not np.any(usable):
        return None, f"no utterance of the run has a cue in '{manifest_path}'; skipping the cue report"
    attention = attention.select(usable)
    start, stop = start[usable], stop[usable]
    mass, share = attn.cue_attention(attention.weights, attention.lengths, start, stop)
    peak = attn.peak_in_cue(attention.weights, attention.lengths, start, stop)
    recognized = None
    if predicted is not None and np.all(np.asarray(predicted)[usable] != ""):
        recognized = np.asarray(predicted)[usable] == attention.labels
    return {
        "manifest": str(manifest_path),
        "n_without_cue": int(np.sum(~usable)),
        "mass_in_cue": "fraction of the attention on the utterance's own frames inside the cue",
        "cue_share": "fraction of the utterance's duration covered by the cue",
        "peak_in_cue": "whether the utterance's most-attended frame lies inside the cue",
        "mean_padding_mass": float(np.mean(attention.padding_mass)),
        "splits": attn.summarize_cue_attention(mass, share, attention.labels, attention.split,
                                               classes, peak, recognized),
    }, None


def cue_peaks_line(split_summary: dict) -> str:
    """'the attention's peak on the cue in 73.1% of the utterances (89.0% of those recognized, 21.0% of
    those missed)' from a split of :func:`cue_report`'s ``splits``."""
    line = f"the attention's peak on the cue in {split_summary['all']['fraction_peak_in_cue']:.1%} of the utterances"
    outcome = split_summary.get("by_outcome")
    if outcome and outcome["recognized"]["n"] and outcome["missed"]["n"]:
        line += (f" ({outcome['recognized']['fraction_peak_in_cue']:.1%} of those recognized, "
                 f"{outcome['missed']['fraction_peak_in_cue']:.1%} of those missed)")
    return line


def predicted_labels(run: Run, attention) -> np.ndarray | None:
    """(N,) the label predictions.csv gives each utterance of ``attention`` (by split and id), ``""``
    where it has none; None when the run has no class predictions (dimensional runs)."""
    if not (run.path / PREDICTIONS_FILE).is_file():
        return None
    rows = run.prediction_rows()
    if not rows or "predicted" not in rows[0]:
        return None
    by_utterance = {(row["split"], row["id"]): row["predicted"] for row in rows}
    return np.array([by_utterance.get((split, utterance), "")
                     for split, utterance in zip(attention.split.astype(str), attention.ids.astype(str))])


def plot_cue_slots(run: Run, attention, manifest: dict, splits: list[str], slots: int
                   ) -> tuple[Figure, list[tuple], list[str]] | None:
    """Each class's attention on an axis aligned on its cue (one cue length of context on each side),
    one panel per split: where the mean peaks says whether the attention lands on the cue. None when
    the manifest has no cue for the run's utterances.

    Returns:
        ``(figure, CSV rows (split, label, slot, mean, std, n), a peaks line per split)``.
    """
    if any(column not in manifest for column in attn.CUE_COLUMNS):
        return None
    start, stop = attn.cue_fractions(manifest, attention.ids)
    usable = np.isfinite(start) & np.isfinite(stop) & (stop > start)
    if not np.any(usable):
        return None
    attention = attention.select(usable)
    profiles = attn.cue_aligned_profiles(attention.weights, attention.lengths, start[usable], stop[usable], slots)
    centres = -1.0 + 3.0 * (np.arange(slots) + 0.5) / slots  # in cue lengths from the cue's start
    panels, rows, lines = [], [], []
    for split in splits:
        in_split = attention.split == split
        mean, std, counts = attn.class_statistics(profiles[in_split], attention.labels[in_split], run.classes)
        for c, label in enumerate(run.classes):
            if counts[c]:
                seen = np.isfinite(profiles[in_split & (attention.labels == label)]).sum(axis=0)
                rows += [(split, label, slot, f"{mean[c, slot]:.6g}", f"{std[c, slot]:.6g}", int(seen[slot]))
                         for slot in range(slots)]
        panels.append((split, mean, std, counts))
        peaks = [(label, centres[np.nanargmax(mean[c])]) for c, label in enumerate(run.classes)
                 if counts[c] and np.isfinite(mean[c]).any()]
        inside = sum(0.0 <= peak <= 1.0 for _, peak in peaks)
        lines.append(f"{split}: attention peak per class at " + ", ".join(f"{label} {peak:+.2f}" for label, peak in peaks)
                     + f" cue lengths from the cue's start (0 to 1: inside it); {inside} of {len(peaks)} inside")
    figure = figures.plot_attention_slots(
        panels, run.classes, 1.0, "attention relative to uniform (1 = uniform)",
        title=f"{run.name}: attention around the class cue, {slots} slots, class means ± standard error",
        axis=(centres, "position relative to the cue (cue lengths from its start)", (-1.0, 2.0), (0.0, 1.0)))
    return figure, rows, lines


def plot_heads(run: Run, attention, split: str, slots: int, out_dir: Path) -> Path:
    """A multi-head run's attention profiles of one split, one panel per head."""
    in_split = attention.split == split
    panels = []
    for head in range(attention.head_weights.shape[1]):
        profiles = attn.slot_profiles(attention.head_weights[:, head], attention.lengths, slots)
        mean, std, counts = attn.class_statistics(profiles[in_split], attention.labels[in_split], run.classes)
        panels.append((f"head {head + 1}, {split}", mean, std, counts))
    figure = figures.plot_attention_slots(
        panels, run.classes, attn.uniform_level(slots), "attention relative to uniform (1 = uniform)",
        title=f"{run.name}: each head's attention over {slots} time slots ({split}), class means ± standard error")
    path = out_dir / f"attention_slots_heads_{split}.png"
    figures.save_figure(figure, path)
    return path


def plot_utterance(run: Run, attention, utterance_id: str, manifest: dict | None, manifest_path: Path | None,
                   out_dir: Path) -> tuple[Path, str | None]:
    """Save a figure of one utterance's attention (over its waveform if the wav is found).

    Returns:
        ``(path of the figure, a note when the audio was not found, else None)``.
    """
    i = attention.index_of(utterance_id, run.path / ATTENTION_FILE)
    weights = attention.utterance(i)
    cue = None
    audio_root = manifest_path.parent if manifest_path is not None else run.audio_root
    waveform, sample_rate = read_wav(audio_root, utterance_id) if audio_root else (None, None)
    if manifest is not None and all(c in manifest for c in attn.CUE_COLUMNS[:2]):
        start, stop, _ = attn.cue_seconds(manifest, np.array([utterance_id]))
        cue = (start[0], stop[0]) if np.isfinite(start[0]) and np.isfinite(stop[0]) else None
    note = None
    if waveform is None:
        where = f"under '{audio_root}'" if audio_root else "(no manifest or corpus root in config.json)"
        note = f"audio of '{utterance_id}' not found {where}; plotting attention only"
    title = f"{utterance_id} ({attention.split[i]}): class {attention.labels[i]}"
    predicted = prediction_of(run, utterance_id)
    if predicted:
        title += f", predicted {predicted}"
    title += f", {len(weights)} frames"
    if attention.padding_mass[i] > 0:
        title += f", {attention.padding_mass[i]:.0%} of attention on padding"
    figure = figures.plot_utterance_attention(weights, run.frame_rate, waveform, sample_rate, cue, title)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"utterance_{safe_name(utterance_id)}.png"
    figures.save_figure(figure, path)
    return path, note


def prediction_of(run: Run, utterance_id: str) -> str | None:
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


def safe_name(text: str) -> str:
    """A file-name-safe version of an utterance id (``wav/A/x.wav`` -> ``wav_A_x.wav``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "utterance"


def read_wav(base: Path, relative: str) -> tuple[np.ndarray | None, int | None]:
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
    dtype: str = {1: "u1", 2: "<i2", 4: "<i4"}[width]
    samples = np.frombuffer(frames, dtype=dtype).astype(np.float64).reshape(-1, channels).mean(axis=1)
    samples = (samples - 128) / 128 if width == 1 else samples / float(2 ** (8 * width - 1))
    return samples, rate
