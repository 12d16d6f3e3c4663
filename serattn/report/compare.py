"""The comparison section of a report on several runs scored on the same test utterances.

UA and WA of every run with speaker-bootstrap intervals; the difference of each
run to the first with a paired speaker-bootstrap interval and a paired speaker
permutation p-value, Holm-adjusted over the comparisons; per-class recall
differences; the confusion matrices side by side.
"""


from serattn.analysis import statistics as stats
from serattn.errors import InputError
from serattn.plots import report as report_plots


def check_comparable(runs, predictions):
    """Raise InputError (one line, naming both runs) unless all runs share classes and test utterances."""
    first, first_ids = runs[0], set(predictions[0]["id"])
    truth = {i: (t, s) for i, t, s in zip(predictions[0]["id"], predictions[0]["true"], predictions[0]["speaker"])}
    for run, columns in zip(runs[1:], predictions[1:]):
        if run.classes != first.classes:
            raise InputError(f"cannot compare '{first.path}' and '{run.path}': classes {','.join(first.classes)} "
                             f"vs {','.join(run.classes)}; compare runs of the same classes")
        ids = set(columns["id"])
        if ids != first_ids:
            raise InputError(f"cannot compare '{first.path}' and '{run.path}': different test utterances "
                             f"({len(first_ids)} vs {len(ids)}, {len(first_ids & ids)} in common); paired tests "
                             f"need runs scored on the same utterances")
        for i, t, s in zip(columns["id"], columns["true"], columns["speaker"]):
            if truth[i] != (t, s):
                raise InputError(f"cannot compare '{first.path}' and '{run.path}': utterance '{i}' has label and "
                                 f"speaker {truth[i]} in one and {(t, s)} in the other")


def comparison(runs, sections, counts, options):
    """The template's comparison: a table of scores and tests, per-class differences, confusions."""
    tests = stats.compare_to_first(counts, options.resamples, seed=options.seed)
    rows = []
    for i, (run, section) in enumerate(zip(runs, sections)):
        row = {"name": run.name, "kind": section["kind"], "ua": section["scores"]["ua"],
               "wa": section["scores"]["wa"]}
        if i:
            test = tests[i - 1]
            row.update(ua_difference=stats.format_interval(test["ua_difference"]),
                       wa_difference=stats.format_interval(test["wa_difference"]),
                       p=stats.format_p(test["p_value"]), p_holm=stats.format_p(test["p_holm"]),
                       p_wa=stats.format_p(test["p_value_wa"]),
                       significant=test["p_holm"] < 0.05)
        rows.append(row)
    classes = runs[0].classes
    per_class = [{"class": c, "first": stats.format_interval(sections[0]["scores"]["raw"]["recall"][c]),
                  "differences": [stats.format_interval(t["recall_difference"][c]) for t in tests]}
                 for c in classes]
    confusions = report_plots.data_uri(report_plots.plot_confusions(
        [(run.name, run.metrics().confusion) for run in runs], classes))
    exact = tests[0]["exact"] if tests else False
    return {"rows": rows, "per_class": per_class, "others": [run.name for run in runs[1:]],
            "confusions": confusions, "speakers": len(counts[0].speakers), "exact": exact,
            "permutations": tests[0]["permutations"] if tests else 0,
            "few_speakers": len(counts[0].speakers) < stats.FEW_SPEAKERS}

