"""Figures: published class colors and names, panels and lines, atomic saving."""

import json

import numpy as np
import pytest
from matplotlib import colors as mcolors

from serattn.plots import figures as plots
from serattn.define import CLASS_COLORS, PALETTE

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_fau_classes_get_the_published_colors_and_names():
    colors = plots.class_colors(["A", "E", "N", "P", "R"])
    assert colors == {"A": "red", "E": "green", "N": "blue", "P": "yellow", "R": "cyan"}
    assert plots.class_names(["A", "R"]) == {"A": "angry (A)", "R": "rest (R)"}


def test_other_class_sets_get_the_palette_in_class_order():
    # EmoDB letters: A is fear there, so it must not borrow FAU's red.
    classes = ["A", "E", "F", "L", "N", "T", "W"]
    colors = plots.class_colors(classes)
    assert [colors[c] for c in classes] == list(PALETTE[:7])
    assert plots.class_names(classes)["A"] == "A"


def test_a_subset_of_fau_classes_keeps_published_colors():
    assert plots.class_colors(["N", "A"]) == {"N": CLASS_COLORS["N"], "A": CLASS_COLORS["A"]}


def slot_panel(split, classes, slots=10):
    rng = np.random.default_rng(0)
    mean = 1 + rng.random((len(classes), slots))
    return split, mean, 0.1 * np.ones_like(mean), np.arange(1, len(classes) + 1)


def test_attention_slot_figure_has_a_panel_per_split_and_a_line_per_class(tmp_path):
    classes = ["A", "E", "N", "P", "R"]
    figure = plots.plot_attention_slots([slot_panel("train", classes), slot_panel("test", classes)],
                                        classes, reference=1.0, ylabel="attention", title="run")
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == ["train (n=15)", "test (n=15)"]
    lines = axes[1].get_lines()
    class_lines, reference = lines[:5], lines[5]
    assert [mcolors.to_hex(line.get_color()) for line in class_lines] == \
        [mcolors.to_hex(CLASS_COLORS[c]) for c in classes]
    assert list(reference.get_ydata()) == [1.0, 1.0]
    assert "%" in axes[0].get_xlabel()
    assert [t.get_text() for t in axes[0].get_legend().get_texts()][0] == "angry (A), n=1"

    path = tmp_path / "figures" / "slots.png"
    path.parent.mkdir()
    plots.save_figure(figure, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in path.parent.iterdir()] == ["slots.png"]  # no temporary left behind


def test_classes_without_utterances_are_left_out():
    classes = ["A", "E"]
    split, mean, std, _ = slot_panel("test", classes)
    figure = plots.plot_attention_slots([(split, mean, std, np.array([3, 0]))], classes, 1.0, "y")
    assert len(figure.get_axes()[0].get_lines()) == 2  # angry and the reference


@pytest.mark.parametrize("with_audio", [True, False])
def test_utterance_figure_with_and_without_audio(with_audio):
    weights = np.full(150, 1 / 150)
    waveform = np.zeros(24_000) if with_audio else None
    figure = plots.plot_utterance_attention(weights, 100, waveform, 16_000, cue=(0.3, 0.6), title="u")
    axes = figure.get_axes()
    assert len(axes) == (2 if with_audio else 1)
    assert axes[-1].get_xlabel() == "time (s)"
    assert axes[-1].get_xlim() == pytest.approx((0, 1.5))


def test_tsne_figure_colors_points_by_class():
    points = np.arange(12.0).reshape(6, 2)
    labels = np.array(["A", "E", "A", "N", "E", "A"])
    figure = plots.plot_tsne([("test", points, labels)], ["A", "E", "N"], title="t")
    ax = figure.get_axes()[0]
    colors = ax.collections[0].get_facecolors()
    assert sum(np.allclose(c[:3], mcolors.to_rgb("red")) for c in colors) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == \
        ["angry (A), n=3", "emphatic (E), n=2", "neutral (N), n=1"]


def test_tables_are_written_atomically(tmp_path):
    plots.save_csv(tmp_path / "t.csv", ("a", "b"), [(1, "x"), (2, "y")])
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,x\n2,y\n"
    plots.save_json(tmp_path / "t.json", {"ua": 0.5})
    assert json.loads((tmp_path / "t.json").read_text()) == {"ua": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.json"]
