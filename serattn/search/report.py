"""What a search leaves in its folder: trials.csv, best/config.json, figures/, search.json.

The file names of a search folder live here (its trials are run folders, whose
names live in :mod:`serattn.runs.folder`).
"""

import dataclasses
import json
import warnings
from pathlib import Path

from serattn.atomic import write_atomically
from serattn.runs import folder as runs
from serattn.search.study import trial_seed

SEARCH_FILE = "search.json"
TRIALS_FILE = "trials.csv"
BEST_DIR = "best"
NESTED_DIR = "nested"
FIGURES = {  # file name -> Optuna's matplotlib plot
    "optimization_history.png": "plot_optimization_history",
    "param_importances.png": "plot_param_importances",
    "parallel_coordinate.png": "plot_parallel_coordinate",
    "intermediate_values.png": "plot_intermediate_values",
}


def trial_rows(study, objective="ua"):
    """One row per trial: number, state, pooled UA, UA per fold, params, seconds, run folder, host, error."""
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for t in trials for name in t.params})
    folds = max((len(t.user_attrs.get(f"fold_{objective}", [])) for t in trials), default=0)
    rows = []
    for t in trials:
        fold_ua = t.user_attrs.get(f"fold_{objective}", [])
        seconds = t.user_attrs.get("seconds")
        if seconds is None and t.datetime_start and t.datetime_complete:
            seconds = round((t.datetime_complete - t.datetime_start).total_seconds(), 3)
        rows.append({"trial": t.number, "state": t.state.name.lower(), objective: t.value,
                     **{f"{objective}_fold_{k:02d}": fold_ua[k] if k < len(fold_ua) else None for k in range(folds)},
                     **{name: t.params.get(name) for name in names},
                     "seconds": seconds, "run": t.user_attrs.get("run"), "host": t.user_attrs.get("host"),
                     "pid": t.user_attrs.get("pid"), "sampler_seed": t.user_attrs.get("sampler_seed"),
                     "retry_of": t.system_attrs.get("failed_trial"), "error": t.user_attrs.get("error")})
    return rows


def write_study_report(study, job):
    """trials.csv, best/config.json and figures/ of one study, in its folder.

    Returns:
        The study's summary for search.json.
    """
    folder = job.folder
    objective = getattr(job, "objective", "ua")
    rows = trial_rows(study, objective)
    if rows:
        runs.write_csv_rows(folder / TRIALS_FILE, rows)
    states = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    summary = {"study": study.study_name, "trials": states, "folder": str(folder), **throughput(study),
               "sampler_seeds": {str(t.number): trial_seed(job.seed, t.number)
                                 for t in study.get_trials(deepcopy=False)}}
    complete = [t for t in study.get_trials(deepcopy=False) if t.value is not None and t.state.name == "COMPLETE"]
    if complete:
        best = study.best_trial
        base = job.base_experiment().data  # the command's own protocol, with the best values
        config = job.experiment(best.params, folder / BEST_DIR, base.cv)
        config = dataclasses.replace(config, data=dataclasses.replace(
            config.data, cv=base.cv, stratify_speakers_by=base.stratify_speakers_by, repeats=base.repeats))
        flags = config.to_flags()
        flags.pop("out")
        runs.RunFolder(folder / BEST_DIR).write_config(runs.rerun_config(
            flags, search={"study": study.study_name, "trial": best.number, objective: best.value,
                           "params": best.params, "inner_cv": list(job.inner_cv), "run": best.user_attrs.get("run")}))
        summary.update(best_trial=best.number, **{f"best_{objective}": best.value}, best_params=best.params,
                       best_run=best.user_attrs.get("run"), best_config=str(folder / BEST_DIR / runs.CONFIG_FILE))
    summary["figures"] = write_figures(study, folder / runs.FIGURES_DIR)
    return summary


def throughput(study):
    """Distinct finished trials per hour, from the first trial's start to the last one's end (every worker and
    machine).

    A trial with the values of an earlier finished one adds nothing to the search, so it
    is not counted: workers that drew the same points once made two look faster than one.
    """
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_start and t.datetime_complete
              and t.state.name in ("COMPLETE", "PRUNED")]
    if len(trials) < 2:
        return {}
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    distinct = len({tuple(sorted(t.params.items())) for t in trials})
    return {"trial_span_seconds": round(span, 1), "finished_trials": len(trials), "distinct_trials": distinct,
            "trials_per_hour": round(3600 * distinct / span, 1)}


def write_figures(study, folder):
    """Optuna's own plots (matplotlib) as PNG; a plot that needs more trials is left out.

    Returns:
        {file name: "written" or why not}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as plots

    written = {}
    folder.mkdir(parents=True, exist_ok=True)
    for name, plot in FIGURES.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = getattr(plots, plot)(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            written[name] = f"not drawn: {error}"
            continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        write_atomically(folder / name, lambda temporary: figure.savefig(temporary, format="png", dpi=100))
        plt.close(figure)
        written[name] = "written"
    return written


def check_only_ours(out, study):
    """Raise InputError if the search folder ``out`` holds anything a search did not write (for --overwrite)."""
    study_entries = (TRIALS_FILE, "trial-[0-9]*", BEST_DIR, runs.FIGURES_DIR, ".*.tmp")
    runs.check_only_ours(out, (SEARCH_FILE, "study.db", "study.db-*", ".*.tmp"), nested={
        study: study_entries, f"{study}-outer-[0-9]*": study_entries, NESTED_DIR: runs.RUN_ENTRIES,
        runs.FOLD_DIRS: runs.RUN_ENTRIES})


def read_search(out):
    """search.json of a search folder, or None."""
    try:
        return json.loads((Path(out) / SEARCH_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_search(out, record):
    runs.write_json(Path(out) / SEARCH_FILE, record)
