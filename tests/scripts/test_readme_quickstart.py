"""The README's Quick start runs as written, line by line, in a fresh folder.

The lines come from README.md itself (the first ``sh`` block under "## Quick start"),
so the test breaks when the README and the scripts drift apart. The folder holds
only links to the scripts and the package, as a fresh clone would. Each line runs
through bash (its globs and comments too) with the test's Python first on PATH, in
place of ``source .venv/bin/activate``. The only change to a line: the size flags
below, appended so that the whole block runs in about a minute.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACTIVATE = "source .venv/bin/activate"

# Appended to every Quick start line that runs this script (tiny corpus, one short epoch).
TINY_FLAGS = {
    "make_demo_corpus.py": "--utterances 60 --speakers 6 --max-duration 1.5",
    "extract_features.py": "--jobs 1",
    "train_attention_lstm.py": "--epochs 1 --units 8 --attention-units 4",
    "tsne_plot.py": "--perplexity 5",
    "report.py": "--gallery 1 --resamples 200",
}


def quick_start_lines(readme=ROOT / "README.md"):
    """The command lines of the README's Quick start code block, as written."""
    text = readme.read_text()
    section = text[text.index("## Quick start\n"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def with_tiny_flags(line):
    """``line`` with its script's TINY_FLAGS appended (before any trailing comment)."""
    command, _, comment = line.partition("  #")
    script = next((name for name in TINY_FLAGS if f" {name} " in f" {command} "), None)
    if script is None:
        return line
    return f"{command.rstrip()} {TINY_FLAGS[script]}" + (f"  #{comment}" if comment else "")


def test_quick_start_runs_top_to_bottom(tmp_path):
    lines = quick_start_lines()
    assert lines[0] == ACTIVATE  # replaced by PATH below
    for entry in [*ROOT.glob("*.py"), ROOT / "serattn"]:
        (tmp_path / entry.name).symlink_to(entry)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TF_CPP_MIN_LOG_LEVEL": "2"}

    for line in lines[1:]:
        command = with_tiny_flags(line)
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
        if line.startswith("python compare_runs.py"):
            table = result.stdout

    for run in ["results/demo", "results/tanh-seed1", "results/tanh-seed2", "results/relu-seed1",
                "results/relu-seed2"]:
        assert (tmp_path / run / "metrics.json").is_file(), run
        assert (tmp_path / run / "model.keras").is_file(), run
        assert not (tmp_path / run / "INCOMPLETE").exists(), run
    for figure in ["attention_slots.png", "tsne.png"]:  # Figure 2
        assert (tmp_path / "results/demo/figures" / figure).is_file(), figure
    assert list((tmp_path / "plots").glob("*_attention.png"))  # predict.py --attention-plot
    assert "<audio" in (tmp_path / "results/demo/report.html").read_text()  # report.py
    assert "tanh" in table and "relu" in table and "Confusion matrix" in table


def test_tiny_flags_name_scripts_of_the_quick_start():
    """Every TINY_FLAGS entry is used, and appended flags keep a line's comment."""
    lines = quick_start_lines()
    for script in TINY_FLAGS:
        assert any(f" {script} " in f" {line} " for line in lines), script
    assert with_tiny_flags("python tsne_plot.py results/demo  # Figure") == \
        "python tsne_plot.py results/demo --perplexity 5  # Figure"
