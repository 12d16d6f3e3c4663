"""The gallery of a run's report: confident hits and confident mistakes, to listen to.

For every class, the K test utterances of that class predicted right with the
highest probability and the K predicted wrong with the highest probability for
the wrong class. Each gets its audio (embedded up to a byte budget, else a link
relative to the page), its spectrogram over its attention curve on one time axis,
and its probabilities. Without audio (no manifest, wav missing) the figure shows
the utterance's feature frames instead, and the page says why.
"""

import base64
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from serattn.analysis import attention as attn
from serattn.features.corpora import confined_path
from serattn.plots import report as report_plots

AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}


def pick_gallery(predictions, classes, k):
    """Row indices of the gallery: per class, the k most confident right and wrong predictions.

    Args:
        predictions: ``Run.predictions()`` columns restricted to the test split.
        classes: class order.
        k: utterances per class and kind.

    Returns:
        list of ``(class, kind, [row, ...])`` with kind ``"correct"`` or ``"wrong"``.
    """
    probabilities = np.stack([predictions[f"p_{c}"] for c in classes], axis=1)
    confidence = probabilities.max(axis=1)
    picked = []
    for c in classes:
        of_class = predictions["true"] == c
        for kind, hit in (("correct", True), ("wrong", False)):
            rows = np.flatnonzero(of_class & ((predictions["predicted"] == c) == hit))
            rows = rows[np.argsort(-confidence[rows], kind="stable")][:k]
            picked.append((c, kind, rows.tolist()))
    return picked


class AudioBudget:
    """Embeds audio files as data URIs until ``max_bytes`` are spent, then links them."""

    def __init__(self, max_bytes, page_path):
        self.left = max_bytes
        self.page_dir = Path(page_path).resolve().parent
        self.linked = 0
        self.items = 0  # gallery items so far: their players' element ids

    def next_id(self):
        self.items += 1
        return f"utterance-{self.items}"

    def source(self, path):
        """``(src, embedded)`` for an <audio> element."""
        size = path.stat().st_size
        if size <= self.left:
            self.left -= size
            kind = AUDIO_TYPES.get(path.suffix.lower(), "audio/wav")
            return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii"), True
        self.linked += 1
        return Path(os.path.relpath(path.resolve(), self.page_dir)).as_posix(), False


def gallery_items(run, predictions, attention, budget, k, features=None, manifest=None):
    """The gallery sections of a run, ready for the template.

    Args:
        run: the :class:`~serattn.runs.reading.Run`.
        predictions: test-split prediction columns.
        attention: the run's :class:`~serattn.runs.reading.AttentionSet`, or None.
        budget: :class:`AudioBudget` shared by the page.
        k: utterances per class and kind.
        features: ``{id: (L, D) frames}`` shown when audio is missing, or None.
        manifest: manifest columns (for cue times), or None.

    Returns:
        ``(sections, note)``: sections as dicts for the template, and a sentence on
        what is missing (None when every utterance has audio).
    """
    classes = run.classes
    audio_root = run.audio_root
    sections, missing_audio = [], 0
    attention_ids = set() if attention is None else set(attention.ids)
    for label, kind, rows in pick_gallery(predictions, classes, k):
        items = []
        for row in rows:
            utterance_id = str(predictions["id"][row])
            item = {"id": utterance_id, "dom_id": budget.next_id(), "speaker": str(predictions["speaker"][row]),
                    "true": label, "predicted": str(predictions["predicted"][row]),
                    "probabilities": [(c, float(predictions[f"p_{c}"][row])) for c in classes]}
            path = _audio_path(audio_root, utterance_id)
            waveform = sample_rate = None
            if path is not None:
                try:
                    waveform, sample_rate = sf.read(path, dtype="float64", always_2d=True)
                    waveform = waveform.mean(axis=1)
                except (sf.LibsndfileError, RuntimeError, OSError):
                    path = None
            weights = None
            if attention is not None and utterance_id in attention_ids:
                weights = attention.utterance(attention.index_of(utterance_id))
            if weights is not None or waveform is not None:
                frames = None if waveform is not None or features is None else features.get(utterance_id)
                figure, duration = report_plots.plot_utterance(weights, run.frame_rate, waveform, sample_rate,
                                                               frames, _cue(manifest, utterance_id))
                item.update(figure=report_plots.data_uri(figure, photo=True), duration=duration,
                            axes=report_plots.UTTERANCE_AXES)
            if path is not None:
                item["audio"], item["embedded"] = budget.source(path)
                item["audio_seconds"] = len(waveform) / sample_rate
            else:
                missing_audio += 1
            items.append(item)
        sections.append({"class": label, "kind": kind, "items": items})
    note = None
    if missing_audio:
        if audio_root is None:
            note = ("config.json names no manifest or corpus root, so the audio cannot be found; the gallery "
                    "shows the attention over the utterances' feature frames instead")
        else:
            note = (f"{missing_audio} gallery utterance(s) have no readable audio under '{audio_root}' (moved or "
                    f"deleted); they show the attention over their feature frames instead")
    return sections, note


def _audio_path(root, utterance_id):
    """The utterance's audio file, only inside the corpus folder: the page embeds what it finds,
    so an id such as ``../../x.wav`` or an absolute path must not pull in another file."""
    if root is None:
        return None
    path = confined_path(root, utterance_id)
    return path if path is not None and path.is_file() else None


def _cue(manifest, utterance_id):
    if manifest is None or any(column not in manifest for column in attn.CUE_COLUMNS[:2]):
        return None
    start, stop, _ = attn.cue_seconds(manifest, np.array([utterance_id]))
    return (float(start[0]), float(stop[0])) if np.isfinite(start[0]) and np.isfinite(stop[0]) else None
