"""Figures of a run: attention over relative time, one utterance, t-SNE maps.

Figures are built with matplotlib's object API (``Figure``, rendered by Agg), so
nothing here touches pyplot's global state or needs a display. Each ``plot_*``
function returns the figure; :func:`save_figure` writes it atomically, and
:func:`save_csv` / :func:`save_json` write the plotted numbers next to it.

Class colors follow the published figure (red angry, green emphatic, blue
neutral, yellow positive, cyan rest) for the FAU Aibo classes and
``define.PALETTE`` for any other class set.
"""

import csv
import io
import json
import os
import textwrap

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import patheffects
from matplotlib.figure import Figure

from serattn.atomic import write_atomically
from serattn.define import CLASS_COLORS, FAU_CLASS_NAMES, PALETTE

FONT_SIZE = 11
DPI = 150
TITLE_CHARACTERS_PER_INCH = 11  # at FONT_SIZE + 1 points


# --- classes: colors and names -----------------------------------------------------


def class_colors(classes):
    """Color of each class: the published ones for FAU Aibo labels, else the palette.

    A class set that is not a subset of A/E/N/P/R (e.g. EmoDB, where ``A`` is
    fear) gets ``PALETTE`` colors in class order, so a letter never borrows the
    color of a different FAU emotion.
    """
    classes = [str(c) for c in classes]
    if set(classes) <= set(CLASS_COLORS):
        return {c: CLASS_COLORS[c] for c in classes}
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}


def class_names(classes):
    """Legend label of each class: ``"angry (A)"`` for FAU Aibo, else the label."""
    classes = [str(c) for c in classes]
    if set(classes) <= set(FAU_CLASS_NAMES):
        return {c: f"{FAU_CLASS_NAMES[c]} ({c})" for c in classes}
    return {c: c for c in classes}


def _outline(color):
    """A dark edge for light colors (yellow, cyan), which vanish on white."""
    red, green, blue = mcolors.to_rgb(color)
    if 0.299 * red + 0.587 * green + 0.114 * blue < 0.6:
        return []
    return [patheffects.withStroke(linewidth=3.2, foreground="0.3"), patheffects.Normal()]


def _new_figure(n_panels, panel_size=(5.8, 4.2), sharey=True, nrows=1):
    figure = Figure(figsize=(panel_size[0] * n_panels / nrows, panel_size[1] * nrows),
                    layout="constrained", dpi=DPI)
    axes = figure.subplots(nrows, n_panels // nrows, sharey=sharey, squeeze=False).ravel()
    for ax in axes:
        ax.tick_params(labelsize=FONT_SIZE - 1)
    return figure, axes


def _suptitle(figure, title):
    """The figure title, wrapped to the figure's width (a one-panel figure would cut it off)."""
    if title:
        characters_per_line = int(figure.get_figwidth() * TITLE_CHARACTERS_PER_INCH)
        figure.suptitle(textwrap.fill(title, characters_per_line), fontsize=FONT_SIZE + 1)


# --- attention over relative time -----------------------------------------------------


def plot_attention_slots(panels, classes, reference, ylabel, title="", axis=None):
    """Class-average attention profiles, one panel per split (Figure 2(a)(b)).

    The band is the standard error of each class mean (std / sqrt(n)): single
    utterances' attention is peaked, so a +-std band covers the whole axis and
    hides whether the class means differ.

    Args:
        panels: list of ``(split, mean, std, counts)`` with mean and std of
            shape (C, S) and counts (C,) in ``classes`` order.
        classes: class labels.
        reference: y value of uniform attention (dashed line).
        ylabel: y-axis label.
        title: figure title.
        axis: None (slots over the duration, in %) or ``(slot centres, x label, (left, right), shaded
            span)``, as the cue-aligned profiles need.

    Returns:
        The matplotlib Figure.
    """
    colors, names = class_colors(classes), class_names(classes)
    figure, axes = _new_figure(len(panels))
    for ax, (split, mean, std, counts) in zip(axes, panels):
        slots = mean.shape[1]
        position = (np.arange(slots) + 0.5) * 100 / slots  # slot centres, % of duration
        xlabel, xlim = "position in utterance (% of its duration)", (0, 100)
        if axis is not None:
            position, xlabel, xlim, shaded = axis
            ax.axvspan(*shaded, color="#f4d35e", alpha=0.3, linewidth=0, label="class cue")
        for c, label in enumerate(classes):
            if counts[c] == 0:
                continue
            color = colors[label]
            sem = std[c] / np.sqrt(counts[c])
            ax.fill_between(position, mean[c] - sem, mean[c] + sem, color=color, alpha=0.18, linewidth=0)
            ax.plot(position, mean[c], color=color, linewidth=1.8,
                    label=f"{names[label]}, n={counts[c]}", path_effects=_outline(color))
        ax.axhline(reference, color="0.35", linestyle="--", linewidth=1.2, label="uniform attention")
        ax.set_xlim(*xlim)
        ax.set_title(f"{split} (n={int(np.sum(counts))})", fontsize=FONT_SIZE + 1)
        ax.set_xlabel(xlabel, fontsize=FONT_SIZE)
        ax.grid(alpha=0.3)
        # Below the axes: a legend inside would hide the early peaks.
        ax.legend(fontsize=FONT_SIZE - 2, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                  ncol=3, frameon=False)
    axes[0].set_ylabel(ylabel, fontsize=FONT_SIZE)
    top = max(np.nanmax(mean + np.nan_to_num(std) / np.sqrt(np.maximum(counts, 1))[:, None])
              for _, mean, std, counts in panels)
    axes[0].set_ylim(0.0, max(top, reference) * 1.1)  # attention is never negative
    _suptitle(figure, title)
    return figure


def plot_utterance_attention(weights, frame_rate, waveform=None, sample_rate=None, cue=None,
                             title=""):
    """One utterance's attention over time, under its waveform when given.

    Args:
        weights: (L,) attention weights of the utterance's frames.
        frame_rate: frames per second.
        waveform: (samples,) audio, or None for a plain attention plot.
        sample_rate: samples per second of ``waveform``.
        cue: ``(start_s, end_s)`` of the class cue to shade, or None.
        title: figure title.

    Returns:
        The matplotlib Figure.
    """
    weights = np.asarray(weights, dtype=np.float64)
    n_rows = 2 if waveform is not None else 1
    figure = Figure(figsize=(9, 2.4 + 2.2 * n_rows), layout="constrained", dpi=DPI)
    axes = figure.subplots(n_rows, 1, sharex=True, squeeze=False).ravel()
    duration = len(weights) / frame_rate
    if waveform is not None:
        time = np.arange(len(waveform)) / sample_rate
        axes[0].plot(time, waveform, color="0.3", linewidth=0.5)
        axes[0].set_ylabel("amplitude", fontsize=FONT_SIZE)
        duration = max(duration, len(waveform) / sample_rate)
    ax = axes[-1]
    edges = np.arange(len(weights) + 1) / frame_rate
    ax.stairs(weights, edges, color="tab:purple", linewidth=1.4, label="attention weight",
              fill=True, alpha=0.6)
    ax.axhline(1.0 / len(weights), color="0.35", linestyle="--", linewidth=1.2,
               label=f"uniform (1/{len(weights)} frames)")
    ax.set_ylabel("attention weight", fontsize=FONT_SIZE)
    ax.set_xlabel("time (s)", fontsize=FONT_SIZE)
    ax.set_xlim(0, duration)
    if cue is not None:
        for a in axes:
            a.axvspan(cue[0], cue[1], color="gold", alpha=0.25, linewidth=0,
                      label="class cue" if a is ax else None)
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper right", framealpha=0.9)
    for a in axes:
        a.grid(alpha=0.3)
        a.tick_params(labelsize=FONT_SIZE - 1)
    _suptitle(figure, title)
    return figure


# --- t-SNE maps -----------------------------------------------------------------------------


def plot_tsne(panels, classes, title=""):
    """t-SNE maps of the attention representations, one panel per split (Figure 2(c)(d)).

    Args:
        panels: list of ``(panel_title, points, labels)``, points (n, 2), labels (n,).
        classes: class labels (legend order).
        title: figure title.

    Returns:
        The matplotlib Figure.
    """
    colors, names = class_colors(classes), class_names(classes)
    figure, axes = _new_figure(len(panels), panel_size=(5.4, 5.0), sharey=False)
    for ax, (panel_title, points, labels) in zip(axes, panels):
        size = float(np.clip(6000 / max(len(points), 1), 3, 40))
        order = np.random.default_rng(0).permutation(len(points))  # no class drawn on top of all
        point_colors = np.array([colors.get(str(label), "0.5") for label in labels], dtype=object)
        ax.scatter(points[order, 0], points[order, 1], c=list(point_colors[order]), s=size,
                   edgecolors="0.2", linewidths=0.2, alpha=0.85)
        for label in classes:  # legend entries, with counts
            n = int(np.sum(labels == label))
            if n:
                ax.scatter([], [], c=colors[label], s=40, edgecolors="0.2", linewidths=0.3,
                           label=f"{names[label]}, n={n}")
        ax.set_title(panel_title, fontsize=FONT_SIZE + 1)
        ax.set_xlabel("t-SNE 1", fontsize=FONT_SIZE)
        ax.set_ylabel("t-SNE 2", fontsize=FONT_SIZE)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=FONT_SIZE - 2, loc="upper center", bbox_to_anchor=(0.5, -0.06),
                  ncol=3, frameon=False)
    _suptitle(figure, title)
    return figure


# --- saving figures and their numbers --------------------------------------------------------


def save_figure(figure, path):
    """Write a figure to ``path`` (format from its suffix) atomically."""
    write_atomically(path, lambda temporary: figure.savefig(
        temporary, format=os.path.splitext(str(path))[1][1:] or "png", dpi=DPI))


def save_csv(path, header, rows):
    """Write rows under a header line as CSV, atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_atomically(path, lambda temporary: temporary.write_text(text.getvalue()))


def save_json(path, values):
    """Write a JSON-ready value, indented, atomically."""
    text = json.dumps(values, indent=2) + "\n"
    write_atomically(path, lambda temporary: temporary.write_text(text))
