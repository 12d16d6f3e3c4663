"""The emotion timeline of a long recording: spectrogram, class probabilities, attention."""

import numpy as np
from matplotlib.figure import Figure

from serattn.plots.figures import DPI, FONT_SIZE, _outline, _suptitle, class_colors, class_names


def plot_timeline(timeline, signal, sample_rate, title=""):
    """Three panels over the recording's time axis.

    Args:
        timeline: a :class:`serattn.deploy.timeline.Timeline`.
        signal: (samples,) the recording's audio.
        sample_rate: its samples per second.
        title: figure title.

    Returns:
        The matplotlib Figure: the spectrogram, each class's probability at its
        window's centre (the predicted class as a band along the top; a run that predicts
        classes), each dimension's value there (a run that predicts values), and the
        attention relative to uniform averaged over the windows covering each frame,
        with every window's attention peak marked.
    """
    duration = len(signal) / sample_rate
    panels = [("spectrogram", 1.2)] + [("classes", 1.4)] * bool(timeline.classes) + \
        [("values", 1.4)] * bool(timeline.dimensions) + [("attention", 1.0)]
    figure = Figure(figsize=(max(9.0, min(16.0, 0.05 * duration + 8)), 2.0 + 2.6 * len(panels) - 1.6),
                    layout="constrained", dpi=DPI)
    axes = figure.subplots(len(panels), 1, sharex=True, height_ratios=[ratio for _, ratio in panels])
    named = {name: ax for (name, _), ax in zip(panels, axes)}

    # Spectrogram, dB, up to 8 kHz; about 2,000 columns whatever the duration (finer is not visible).
    hop = int(min(512, max(160, len(signal) // 2000)))
    axes[0].specgram(signal, NFFT=512, Fs=sample_rate, noverlap=512 - hop, cmap="magma", scale="dB")
    axes[0].set_ylabel("frequency (Hz)", fontsize=FONT_SIZE)

    centres = (timeline.start_s + timeline.end_s) / 2
    if timeline.dimensions:  # values at window centres
        ax = named["values"]
        for k, dim in enumerate(timeline.dimensions):
            ax.plot(centres, timeline.values[:, k], linewidth=1.4, label=dim)
        ax.axhline(0.0, color="0.35", linestyle=":", linewidth=0.8)
        ax.set_ylabel("predicted value", fontsize=FONT_SIZE)
        ax.legend(fontsize=FONT_SIZE - 2, loc="upper left", ncol=len(timeline.dimensions), framealpha=0.9)
    if timeline.classes:
        plot_class_panel(named["classes"], timeline, centres)

    # Attention relative to uniform, per frame, and each window's peak.
    ax = named["attention"]
    n_frames = int(round(timeline.end_s.max() * timeline.frame_rate))
    relative = timeline.frame_attention(n_frames)
    ax.plot(np.arange(n_frames) / timeline.frame_rate, relative, color="tab:purple", linewidth=0.8,
            label="attention / uniform (mean over windows)")
    ax.axhline(1.0, color="0.35", linestyle="--", linewidth=1.0, label="uniform")
    peaks = timeline.attention_peak_s
    ax.plot(peaks, np.full(len(peaks), np.nanmax(relative) * 1.05 if np.isfinite(relative).any() else 1.0),
            "v", color="black", markersize=3, label="window's attention peak")
    ax.set_ylabel("attention", fontsize=FONT_SIZE)
    ax.set_xlabel("time (s)", fontsize=FONT_SIZE)
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper right", framealpha=0.9)
    ax.set_xlim(0, duration)
    for a in axes:
        a.tick_params(labelsize=FONT_SIZE - 1)
    for a in axes[1:]:
        a.grid(alpha=0.3)
    _suptitle(figure, title)
    return figure


def plot_class_panel(ax, timeline, centres):
    """Class probabilities at window centres, and the predicted class as a band."""
    colors, names = class_colors(timeline.classes), class_names(timeline.classes)
    for k, c in enumerate(timeline.classes):
        ax.plot(centres, timeline.probabilities[:, k], color=colors[c], linewidth=1.4, label=names[c],
                path_effects=_outline(colors[c]))
    half = (timeline.end_s - timeline.start_s) / 2
    for centre, label in zip(centres, timeline.predicted):
        hop = (centres[1] - centres[0]) if len(centres) > 1 else 2 * half[0]
        ax.axvspan(centre - hop / 2, centre + hop / 2, ymin=0.94, ymax=1.0, color=colors[label], linewidth=0)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("probability", fontsize=FONT_SIZE)
    ax.legend(fontsize=FONT_SIZE - 2, loc="upper left", bbox_to_anchor=(0, 0.93), ncol=min(len(timeline.classes), 7),
              framealpha=0.9)
