"""The report page of dimensional runs (--target arousal,valence): scatter plots and CCC with speaker intervals.

One section per run: each dimension's CCC with the interval of a speaker-level bootstrap,
Pearson's r and MSE, and a scatter of true against predicted test values; several runs
are compared by the paired speaker permutation test of their mean CCC
(:func:`serattn.analysis.statistics.compare_ccc_to_first`). Multi-task runs show their
values here; their classes are in their metrics.json (and compare_runs.py).
"""

import numpy as np

from serattn.analysis import statistics as stats
from serattn.errors import InputError
from serattn.plots import report as report_plots
from serattn.targets import evaluate_values

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="{{ generator }}">
<title>{{ title }}</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 1.5em 4em; color: #222; }
  table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
  th, td { border: 1px solid #dde; padding: 0.25em 0.6em; text-align: right; }
  th:first-child, td:first-child { text-align: left; }
  th { background: #f2f3f8; }
  img.figure { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
  .muted { color: #666; font-size: 0.9em; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="muted">Generated {{ generated }}. CCC: Lin's concordance correlation coefficient on the test utterances;
95% intervals from {{ resamples }} speaker bootstrap resamples{% if few %} (fewer than {{ few }} test speakers:
the intervals are coarse){% endif %}.</p>
{% for run in runs %}
<h2>{{ run.name }}</h2>
<p>--target {{ run.target }}; {{ run.n }} test utterances of {{ run.speakers }} speakers; mean CCC
<b>{{ "%.3f" | format(run.mean[0]) }}</b> [{{ "%.3f" | format(run.mean[1]) }}, {{ "%.3f" | format(run.mean[2]) }}]</p>
<table>
<tr><th>dimension</th><th>CCC</th><th>95% CI</th><th>Pearson r</th><th>MSE</th></tr>
{% for row in run.rows %}
<tr><td>{{ row.dimension }}</td><td>{{ row.ccc }}</td><td>{{ row.interval }}</td><td>{{ row.pearson }}</td>
<td>{{ row.mse }}</td></tr>
{% endfor %}
</table>
<img class="figure" alt="true against predicted values of {{ run.name }}" src="{{ run.scatter }}">
{% endfor %}
{% if comparison %}
<h2>Comparison with {{ runs[0].name }}</h2>
<table>
<tr><th>run</th><th>ΔCCC</th><th>95% CI</th><th>p</th><th>p (Holm)</th></tr>
{% for row in comparison %}
<tr><td>{{ row.name }}</td><td>{{ row.difference }}</td><td>{{ row.interval }}</td><td>{{ row.p }}</td>
<td>{{ row.p_holm }}</td></tr>
{% endfor %}
</table>
<p class="muted">Paired speaker permutation test of the mean CCC (each speaker's predictions swapped between the
runs), Holm-adjusted over the comparisons.</p>
{% endif %}
</body>
</html>
"""


def number(value, digits=3):
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def test_values(run):
    """(ids, speakers, true (N, K), predicted (N, K)) of the run's test rows, in id order."""
    rows = sorted((r for r in run.prediction_rows() if r["split"] == "test"), key=lambda r: r["id"])
    dims = run.dimensions
    try:
        true = np.array([[float(r[f"true_{d}"]) for d in dims] for r in rows]).reshape(-1, len(dims))
        predicted = np.array([[float(r[f"pred_{d}"]) for d in dims] for r in rows]).reshape(-1, len(dims))
    except (KeyError, ValueError):
        raise InputError(f"the predictions.csv of '{run.path}' lacks numeric true_/pred_ columns of "
                         f"{', '.join(dims)}") from None
    return [r["id"] for r in rows], [r["speaker"] for r in rows], true, predicted


def run_section(run, resamples, seed):
    ids, speakers, true, predicted = test_values(run)
    dims = run.dimensions
    sums = stats.speaker_value_sums(true, predicted, speakers, dims)
    boot = stats.bootstrap_ccc(sums, resamples, seed=seed)
    scores = evaluate_values(true, predicted, dims)
    rows, titles = [], []
    for dim in dims:
        ccc, low, high = boot["ccc"][dim]
        rows.append({"dimension": dim, "ccc": number(ccc), "interval": f"[{number(low)}, {number(high)}]",
                     "pearson": number(scores["dimensions"][dim]["pearson"]),
                     "mse": number(scores["dimensions"][dim]["mse"], 4)})
        titles.append(f"{dim}: CCC {number(ccc)} [{number(low)}, {number(high)}]")
    scatter = report_plots.data_uri(report_plots.plot_value_scatter(true, predicted, dims, titles))
    section = {"name": run.name, "target": ",".join(run.record.target if run.record.dimensions else dims), "n": len(ids),
               "speakers": boot["speakers"], "mean": boot["mean"], "rows": rows, "scatter": scatter}
    return section, ids, sums


def dimensional_page(runs, options, render):
    """The HTML of dimensional ``runs``; ``render(template text, **values)`` renders it (report.page).

    Raises:
        InputError: runs of other dimensions or other test utterances (when several are compared).
    """
    sections, ids, sums = zip(*(run_section(run, options.resamples, options.seed) for run in runs))
    comparison = None
    if len(runs) > 1:
        for run, other_ids in zip(runs[1:], ids[1:]):
            if run.dimensions != runs[0].dimensions or other_ids != ids[0]:
                raise InputError(f"cannot compare '{runs[0].path}' and '{run.path}': other dimensions or other test "
                                 f"utterances")
        tests = stats.compare_ccc_to_first(list(sums), options.resamples, seed=options.seed)
        comparison = [{"name": run.name, "difference": f"{test['ccc_difference'][0]:+.3f}",
                       "interval": f"[{test['ccc_difference'][1]:+.3f}, {test['ccc_difference'][2]:+.3f}]",
                       "p": stats.format_p(test["p_value"]), "p_holm": stats.format_p(test["p_holm"])}
                      for run, test in zip(runs[1:], tests)]
    title = f"{runs[0].name}: dimensional run" if len(runs) == 1 else \
        f"{len(runs)} dimensional runs compared: {', '.join(run.name for run in runs)}"
    return render(TEMPLATE, title=title, runs=list(sections), comparison=comparison, resamples=options.resamples,
                  few=stats.FEW_SPEAKERS if min(s["speakers"] for s in sections) < stats.FEW_SPEAKERS else None)
