"""The files predict.py writes (--csv, attention plots, timelines), checked before any work.

Nothing is replaced silently: an existing target needs ``--overwrite``, and two inputs
that would write the same file are refused.
"""

from collections.abc import Sequence
from pathlib import Path

from serattn.errors import InputError, file_kind


def attention_plot_path(path: Path, folder: str | Path) -> Path:
    return Path(folder) / f"{path.stem}_attention.png"


def timeline_paths(path: Path, out: str | Path) -> tuple[Path, Path]:
    """The timeline CSV and plot of one recording."""
    return Path(out) / f"{path.stem}_timeline.csv", Path(out) / f"{path.stem}_timeline.png"


def check_prediction_outputs(files: Sequence[Path], csv: str | None, attention_plot: str | None,
                             overwrite: bool) -> None:
    """Raise InputError before any work if --csv or an attention plot would replace a file or each other."""
    if csv:
        kind = file_kind(csv)
        if kind not in (None, "missing"):
            raise InputError(f"--csv '{csv}' is {kind}; give a file name")
        if kind is None and not overwrite:
            raise InputError(f"--csv '{csv}' already exists; choose another file, or pass --overwrite")
    if attention_plot:
        plots = [attention_plot_path(path, attention_plot) for path in files]
        for first, (path, plot) in enumerate(zip(files, plots)):
            if plot in plots[:first]:
                raise InputError(f"'{files[plots.index(plot)]}' and '{path}' would both be plotted to '{plot}'; "
                                 f"give them one at a time with different --attention-plot folders")
            if (plot.exists() or plot.is_symlink()) and not overwrite:
                raise InputError(f"'{plot}' already exists; choose another --attention-plot folder, "
                                 f"or pass --overwrite")


def check_timeline_outputs(files: Sequence[Path], out: str, overwrite: bool) -> None:
    """Raise InputError if a timeline would replace an existing file or another input's timeline."""
    for path in files:
        for target in timeline_paths(path, out):
            if target.exists() and not overwrite:
                raise InputError(f"'{target}' already exists; choose another --out, or pass --overwrite")
    stems = [path.stem for path in files]
    repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
    if repeated:
        raise InputError(f"several files are named '{repeated[0]}': their timelines would overwrite each other; "
                         f"give them one at a time with different --out")
