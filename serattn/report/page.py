"""Build and write the report page: runs, their comparison and the corpus, in one HTML file.

The page is rendered from the Jinja2 template in ``templates/`` (package data);
styles, the small seek script, figures (PNG data URIs) and audio up to a budget
(WAV data URIs) are all inside it, so it opens offline and can be mailed.
"""

import dataclasses
import datetime
from pathlib import Path

import jinja2

from serattn.analysis import statistics as stats
from serattn.atomic import write_atomically
from serattn.errors import InputError
from serattn.features.feature_set import load_feature_set
from serattn.report import compare, run as run_sections
from serattn.report.gallery import AudioBudget
from serattn.runs.reading import open_run


GENERATOR = "serattn report.py"  # the page's <meta name="generator">: --overwrite replaces only such pages


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    gallery: int = 3  # utterances per class and kind (right, wrong) in the gallery
    max_audio_mb: float = 20.0  # audio embedded in the page, in all; the rest is linked
    resamples: int = stats.RESAMPLES
    seed: int = stats.SEED
    tsne_points: int = 1000  # test utterances in a t-SNE map drawn for the report


def environment():
    """The Jinja2 environment of the report templates (autoescaped HTML)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("serattn.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["percent"] = lambda value, digits=1: "-" if value is None else f"{100 * value:.{digits}f}"
    return env


def build_report(run_dirs, out, options=ReportOptions(), data=None):
    """The page's HTML for run folders (compared when several) and/or a feature file.

    Raises:
        InputError: a run folder that is missing or incomplete, runs on different test
            utterances or classes, or an unreadable feature file.
    """
    runs, seen = [], set()
    for run_dir in run_dirs:
        run = open_run(run_dir)
        if run.path.resolve() in seen:
            raise InputError(f"run folder '{run_dir}' is given twice")
        seen.add(run.path.resolve())
        runs.append(run)
    if any(run.dimensions for run in runs):  # scatter plots and CCC, serattn.report.dimensional
        from serattn.report.dimensional import dimensional_page

        if not all(run.dimensions for run in runs) or data is not None:
            raise InputError("report.py shows dimensional runs (--target arousal,...) on their own: no categorical "
                             "runs and no --data beside them")
        generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return dimensional_page(runs, options, lambda text, **values: environment().from_string(text).render(
            generator=GENERATOR, generated=generated, **values))
    predictions = [run_sections.test_predictions(run) for run in runs]
    if len(runs) > 1:
        compare.check_comparable(runs, predictions)
    budget = AudioBudget(int(options.max_audio_mb * 1e6), out)
    # A comparison shows the gallery of the first run only: one per run would make a page of hundreds of MB.
    sections = [run_sections.run_report(run, options if i == 0 else dataclasses.replace(options, gallery=0), budget)
                for i, run in enumerate(runs)]
    comparison = None
    if len(runs) > 1:
        counts = [run_sections.counts_of(run, columns) for run, columns in zip(runs, predictions)]
        comparison = compare.comparison(runs, sections, counts, options)
    corpus = None
    if data is not None:
        corpus = run_sections.describe_feature_set(load_feature_set(data))
        corpus["file"] = Path(data).name
    if len(runs) == 1:
        title = f"{runs[0].name}: {sections[0]['kind']} run"
    elif runs:
        title = f"{len(runs)} runs compared: {', '.join(run.name for run in runs)}"
    else:
        title = f"What {Path(data).name} holds"
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return environment().get_template("report.html.j2").render(
        generator=GENERATOR, title=title, runs=sections, comparison=comparison, corpus=corpus, options=options,
        linked_audio=budget.linked, generated=generated)


def check_replaceable(out):
    """Raise InputError unless ``out`` is a page report.py wrote (its generator tag near the top)."""
    try:
        with open(out, "rb") as handle:
            head = handle.read(4096).decode("utf-8", "replace")
    except OSError as error:
        raise InputError(f"cannot read '{out}': {error.strerror}") from None
    if f'<meta name="generator" content="{GENERATOR}">' not in head:
        raise InputError(f"'{out}' is not a page written by report.py; --overwrite replaces only those: "
                         f"choose another --out")


def write_report(html, out):
    """Write the page atomically (a reader never sees half of it)."""
    write_atomically(Path(out), lambda temporary: temporary.write_text(html, encoding="utf-8"))
