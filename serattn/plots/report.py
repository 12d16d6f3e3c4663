"""Figures of the HTML report: confusion heatmaps, learning curves, one utterance's attention.

Each ``plot_*`` returns a matplotlib Figure (object API, Agg, no pyplot state);
:func:`data_uri` turns it into a ``data:image/png;base64,...`` string, so the page
carries its figures inside and needs no other file.

The utterance figure has fixed margins (:data:`UTTERANCE_AXES`), so the page's
script knows which horizontal fraction of the image is which time and can seek the
audio player to where the user clicked.
"""

import base64
import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from serattn.plots.figures import FONT_SIZE, _suptitle, class_names

REPORT_DPI = 100
UTTERANCE_AXES = (0.09, 0.98)  # left and right edge of the utterance figure's axes, fractions of its width


def data_uri(figure, dpi=REPORT_DPI, photo=False):
    """The figure as a data URI: PNG, or JPEG for ``photo`` figures (spectrograms: a tenth of the PNG's size)."""
    buffer = io.BytesIO()
    if photo:
        figure.savefig(buffer, format="jpeg", dpi=dpi, pil_kwargs={"quality": 70})
    else:
        figure.savefig(buffer, format="png", dpi=dpi)
    kind = "jpeg" if photo else "png"
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _heatmap(ax, values, classes, text, title, vmax=None):
    """One confusion heatmap: rows true, columns predicted, a number in every cell."""
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax if vmax is not None else max(values.max(), 1e-9))
    ax.set_xticks(range(len(classes)), classes, fontsize=FONT_SIZE - 1)
    ax.set_yticks(range(len(classes)), classes, fontsize=FONT_SIZE - 1)
    ax.set_xlabel("predicted", fontsize=FONT_SIZE)
    ax.set_ylabel("true", fontsize=FONT_SIZE)
    ax.set_title(title, fontsize=FONT_SIZE)
    threshold = 0.6 * image.get_clim()[1]
    for (i, j), value in np.ndenumerate(values):
        ax.text(j, i, text(value), ha="center", va="center", fontsize=FONT_SIZE - 2,
                color="white" if value > threshold else "black")


def row_normalized(confusion):
    """Each row divided by its sum (recall on the diagonal); zero rows stay zero."""
    confusion = np.asarray(confusion, dtype=np.float64)
    return confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)


def plot_confusion(confusion, classes, title=""):
    """The confusion matrix twice: counts, and rows normalized to 1 (recall on the diagonal)."""
    confusion = np.asarray(confusion)
    size = 1.6 + 0.55 * len(classes)
    figure = Figure(figsize=(2 * size + 0.6, size + 0.5), layout="constrained")
    counts_ax, share_ax = figure.subplots(1, 2)
    _heatmap(counts_ax, confusion, classes, lambda v: f"{int(v)}", "counts")
    _heatmap(share_ax, row_normalized(confusion), classes, lambda v: f"{100 * v:.0f}", "% of the true class",
             vmax=1.0)
    _suptitle(figure, title)
    return figure


def plot_confusions(named, classes):
    """Row-normalized confusion matrices of several runs side by side (same color scale)."""
    size = 1.6 + 0.5 * len(classes)
    columns = min(len(named), 4)
    rows = -(-len(named) // columns)
    figure = Figure(figsize=(size * columns, (size + 0.3) * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
    for ax, (name, confusion) in zip(axes, named):
        _heatmap(ax, row_normalized(confusion), classes, lambda v: f"{100 * v:.0f}", name, vmax=1.0)
    for ax in axes[len(named):]:
        ax.set_axis_off()
    return figure


def plot_learning_curves(history, best_epoch=None):
    """Loss and UA per epoch, training and validation (history.csv columns as float arrays)."""
    epochs = history["epoch"] + 1  # history.csv counts from 0, best_epoch from 1
    figure = Figure(figsize=(10, 3.4), layout="constrained")
    loss_ax, score_ax = figure.subplots(1, 2)
    for ax, keys, label in ((loss_ax, ("loss", "val_loss"), "loss"),
                            (score_ax, ("ua", "val_ua", "wa", "val_wa"), "UA / WA (%)")):
        for key in keys:
            if key in history:
                scale = 1 if key.endswith("loss") else 100
                ax.plot(epochs, scale * history[key], marker="o", markersize=3,
                        linestyle="--" if key.startswith("val_") else "-",
                        label=key.replace("val_", "validation ").replace("ua", "UA").replace("wa", "WA"))
        if best_epoch:
            ax.axvline(best_epoch, color="0.4", linestyle=":", label=f"best epoch ({best_epoch})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch", fontsize=FONT_SIZE)
        ax.set_ylabel(label, fontsize=FONT_SIZE)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=FONT_SIZE - 2)
    return figure


def plot_utterance(weights, frame_rate, waveform=None, sample_rate=None, features=None, cue=None):
    """An utterance's spectrogram (or its feature frames) over its attention curve, one time axis.

    Args:
        weights: (L,) attention weights of the utterance's frames, or None (a run without
            attention: the spectrogram alone).
        frame_rate: frames per second.
        waveform: (samples,) mono audio, or None.
        sample_rate: of ``waveform``.
        features: (L, D) normalized feature frames to show when there is no audio.
        cue: ``(start_s, end_s)`` of the class cue, shaded, or None.

    Returns:
        ``(figure, duration_s)``; the axes span :data:`UTTERANCE_AXES` of the width
        and ``0..duration_s`` in time.
    """
    duration = 0.0 if weights is None else len(weights) / frame_rate
    if waveform is not None:
        duration = max(duration, len(waveform) / sample_rate)
    if weights is None:
        figure = Figure(figsize=(7.5, 2.0))
        top, bottom = figure.subplots(1, 1), None
        figure.subplots_adjust(left=UTTERANCE_AXES[0], right=UTTERANCE_AXES[1], top=0.95, bottom=0.22)
    else:
        figure = Figure(figsize=(7.5, 3.3))
        top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1.3, 1]})
        figure.subplots_adjust(left=UTTERANCE_AXES[0], right=UTTERANCE_AXES[1], top=0.97, bottom=0.14,
                               hspace=0.08)
    if waveform is not None:
        nfft = 512 if sample_rate >= 16000 else 256
        # A -120 dB dither: digital silence (zero padding) would have -inf dB, which breaks the color scale.
        dither = 1e-6 * np.random.default_rng(0).standard_normal(len(waveform))
        top.specgram(waveform + dither, NFFT=nfft, Fs=sample_rate, noverlap=nfft * 3 // 4, cmap="magma",
                     xextent=(0, len(waveform) / sample_rate))
        top.set_ylim(0, min(sample_rate / 2, 8000))
        top.set_ylabel("Hz", fontsize=FONT_SIZE - 1)
    elif features is not None:
        top.imshow(np.asarray(features).T, aspect="auto", origin="lower", cmap="coolwarm", vmin=-3, vmax=3,
                   extent=(0, len(features) / frame_rate, 0, np.asarray(features).shape[1]))
        top.set_ylabel("feature", fontsize=FONT_SIZE - 1)
    else:
        top.text(0.5, 0.5, "no audio, and the run's feature file is not here", transform=top.transAxes,
                 ha="center", va="center", fontsize=FONT_SIZE - 1, color="0.4")
        top.set_yticks([])
    axes = [top]
    if bottom is not None:
        weights = np.asarray(weights, dtype=np.float64)
        edges = np.arange(len(weights) + 1) / frame_rate
        bottom.stairs(weights, edges, color="tab:purple", fill=True, alpha=0.6, linewidth=1.2)
        bottom.axhline(1 / len(weights), color="0.35", linestyle="--", linewidth=1)
        bottom.set_ylabel("attention", fontsize=FONT_SIZE - 1)
        bottom.grid(alpha=0.3)
        axes.append(bottom)
    axes[-1].set_xlabel("time (s)", fontsize=FONT_SIZE - 1)
    axes[-1].set_xlim(0, duration)
    for ax in axes:
        if cue is not None:
            ax.axvspan(cue[0], cue[1], facecolor="none", edgecolor="gold", hatch="//", linewidth=0)
        ax.tick_params(labelsize=FONT_SIZE - 2)
    return figure, duration


def plot_corpus_counts(table, speakers, classes):
    """Utterances per speaker, stacked by class: how speakers and classes overlap."""
    from serattn.plots.figures import class_colors

    colors, names = class_colors(classes), class_names(classes)
    table = np.asarray(table)
    figure = Figure(figsize=(max(5.0, 0.45 * len(speakers) + 2), 3.4), layout="constrained")
    ax = figure.subplots()
    bottom = np.zeros(len(speakers))
    for j, c in enumerate(classes):
        ax.bar(range(len(speakers)), table[:, j], bottom=bottom, color=colors[c], edgecolor="0.3",
               linewidth=0.3, label=names[c])
        bottom += table[:, j]
    ax.set_xticks(range(len(speakers)), speakers, rotation=90 if len(speakers) > 12 else 0,
                  fontsize=FONT_SIZE - 2)
    ax.set_ylabel("utterances", fontsize=FONT_SIZE)
    ax.legend(fontsize=FONT_SIZE - 2, ncol=min(len(classes), 7), loc="upper center",
              bbox_to_anchor=(0.5, -0.18 if len(speakers) <= 12 else -0.3), frameon=False)
    return figure


def plot_value_scatter(true, predicted, dimensions, titles):
    """True against predicted values of a dimensional run, one panel per dimension, with the identity line.

    Args:
        true, predicted: (N, K) values.
        dimensions: the K names.
        titles: a title per panel (its CCC and interval).
    """
    true, predicted = np.asarray(true, float), np.asarray(predicted, float)
    figure = Figure(figsize=(4.2 * len(dimensions), 4.2))
    axes = figure.subplots(1, len(dimensions), squeeze=False)[0]
    for k, (ax, name, title) in enumerate(zip(axes, dimensions, titles)):
        ax.scatter(true[:, k], predicted[:, k], s=8, alpha=0.5, color="#35a", edgecolors="none")
        low = float(min(true[:, k].min(), predicted[:, k].min()))
        high = float(max(true[:, k].max(), predicted[:, k].max()))
        ax.plot([low, high], [low, high], color="#999", linewidth=1, linestyle="--")
        ax.set_xlabel(f"true {name}", fontsize=FONT_SIZE)
        ax.set_ylabel(f"predicted {name}", fontsize=FONT_SIZE)
        ax.set_title(title, fontsize=FONT_SIZE)
        ax.set_aspect("equal", adjustable="datalim")
    figure.tight_layout()
    return figure
