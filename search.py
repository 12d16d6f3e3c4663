"""Search a trainer's hyperparameters with Optuna on speaker folds, without touching test speakers.

    python search.py --space configs/search_static_logreg.yaml --data data/emodb_2s_func.npz --model logreg --trials 20 --out results/search-logreg
    python search.py --space configs/search_attention_lstm.yaml --data data/emodb_2s.npz --cv loso --nested --trials 12 --jobs 2 --out results/nested
    python search.py --space SPACE --storage postgresql://user:pw@host/db --study emodb ... # the same on every machine

Every flag that is not search.py's own goes to the trainer the space file names
(train_attention_lstm.py or train_static.py), so a trial is exactly that trainer's
command with the trial's values added.
"""

import dataclasses
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import train_attention_lstm
import train_static
from serattn import config
from serattn.api import load_data
from serattn.experiment import Experiment
from serattn.targets import dimensions
from serattn.errors import ArgumentParser, InputError, run_main
from serattn.runs import folder as runs
from serattn.search import report, space as spaces, study as studies
from serattn.static_models import STATIC_MODELS

# Only their flags: a trainer's command line becomes the experiment dict each trial builds on.
TRAINER_SCRIPTS = {"attention-lstm": train_attention_lstm, "static": train_static}
# What must match for a rerun to continue the search in an existing --out.
SAME_SEARCH = ("space", "trainer_flags", "nested", "inner_cv", "study")


def build_parser():
    parser = ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False,  # other flags go to the trainer
                            epilog="Other flags (--data, --cv, --norm, --val-speakers, --epochs, --model, ...) go to "
                                   "the trainer named in the space file; see its --help.")
    search = parser.add_argument_group("search")
    search.add_argument("--space", required=True,
                        help="YAML or JSON file: the trainer, and for each flag a range, log-range or choices "
                             "(examples in configs/)")
    search.add_argument("--trials", type=int, default=20,
                        help="finished trials (complete or pruned) to reach in total, over every worker and machine "
                             "(default: %(default)s)")
    search.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    search.add_argument("--inner-cv", nargs="+", default=["kfold-speakers", "5"], metavar="PROTOCOL",
                        help="the speaker folds of the objective, over the search speakers only: 'loso' or "
                             "'kfold-speakers K' (default: kfold-speakers 5)")
    search.add_argument("--nested", action="store_true",
                        help="the nested estimate: per fold of the trainer's --cv a search on its training speakers, "
                             "then one final run with the best values, tested on its test speakers and pooled")
    search.add_argument("--objective", default="auto", choices=("auto", "ua", "ccc"),
                        help="what the trials maximize, pooled over the inner folds: ua, or ccc (the mean CCC over "
                             "the dimensions of --target arousal,...); auto: ccc for a dimensional --target, ua "
                             "otherwise (default)")
    search.add_argument("--no-prune", dest="prune", action="store_false",
                        help="run every trial to its last fold (default: Optuna's median pruner on the mean fold UA)")

    storage = parser.add_argument_group("storage and workers")
    storage.add_argument("--study", default="search", help="study name in the storage (default: %(default)s)")
    storage.add_argument("--storage", metavar="URL",
                         help="where the study lives: an SQLAlchemy URL (sqlite:///FILE, postgresql://USER:PW@HOST/DB) "
                              "shared by several machines, or journal:FILE (Optuna's journal file) "
                              "(default: sqlite, study.db in --out)")
    storage.add_argument("--jobs", type=int, default=1,
                         help="local worker processes, the cores divided between them (default: %(default)s)")
    storage.add_argument("--heartbeat", type=int, default=60,
                         help="seconds between a running trial's heartbeats (relational storages); a trial silent "
                              "for twice this is taken as dead, marked failed and rerun (default: %(default)s)")

    output = parser.add_argument_group("output")
    output.add_argument("--out", required=True,
                        help="search folder: trials, trials.csv, best/config.json, search.json, figures; an "
                             "existing one of the same search is continued")
    output.add_argument("--overwrite", action="store_true",
                        help="replace --out (and its study in --storage) instead of continuing it")
    output.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    return parser


def parse_args(argv):
    """(search flags, trainer, the trainer's argv, its experiment dict and experiment, the space), all checked."""
    args, trainer_argv = build_parser().parse_known_args(argv)
    if args.trials < 1 or args.jobs < 1 or args.heartbeat < 1:
        raise InputError(f"--trials, --jobs and --heartbeat must be at least 1, got {args.trials}, {args.jobs}, "
                         f"{args.heartbeat}")
    check_study_name(args.study)
    space = spaces.load_space(args.space)
    trainer = TRAINER_SCRIPTS[space.trainer]
    base_spec, _ = trainer.experiment_spec(trainer_argv)
    base = Experiment.from_dict(base_spec)
    args.objective = check_objective(args.objective, getattr(base.model, "target", ("emotion",)))
    space.check(grid_parameters(space, base))
    if len(base.seeds) > 1 or base.output.resume or base.output.dask_scheduler:
        raise InputError("search.py runs each trial with one --seed, here (no --seeds, --resume or --dask-scheduler)")
    if args.nested and not base.data.cv:
        raise InputError("--nested needs the outer protocol: --cv loso or --cv kfold-speakers K")
    if base.data.cv and not args.nested:
        raise InputError("--cv is the outer protocol of --nested; without --nested the search runs its --inner-cv on "
                         "the training speakers (the whole --data file when it has no split)")
    return args, trainer, tuple(trainer_argv), base_spec, base, space


def check_study_name(name):
    """InputError unless ``--study`` is a plain name: its folder ``OUT/STUDY`` must stay inside ``--out``."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise InputError(f"--study '{name}': expected a name, not a path (the study's trials go to OUT/STUDY, "
                         f"inside --out)")


def grid_parameters(space, base):
    """{static model: its tunable grid parameters} for every model the trials may use; {} for the LSTM."""
    if space.trainer != "static":
        return {}
    searched = next((p.choices for p in space.params if p.name == "model" and p.choices), None)
    return {model: STATIC_MODELS[model].tunable if model in STATIC_MODELS else () for model in (searched or (base.model.model,))}


def check_objective(objective, target):
    """``ua`` or ``ccc``: the objective ``--objective`` names for ``--target``; InputError where it does not fit."""
    dims = dimensions(target)
    objective = ("ccc" if dims else "ua") if objective == "auto" else objective
    if objective == "ccc" and not dims:
        raise InputError("--objective ccc needs a dimensional --target (e.g. arousal,valence)")
    if objective == "ua" and "emotion" not in target:
        raise InputError(f"--objective ua needs classes; --target {','.join(target)} has none (use --objective ccc)")
    return objective


def load_search_data(base, inner_cv, nested):
    """(search or outer data, classes, data files, what the search speakers are)."""
    if nested or not base.data.data:
        train, _, sources, classes = load_data(base)
        which = ("every speaker of --data (split by the outer --cv)" if nested
                 else f"the speakers of '{base.data.train}'")
        return train, classes, runs.describe_data_files(sources), which
    # one --data file: all of it is read; only its training split is searched on
    train, _, sources, classes = load_data(dataclasses.replace(base, data=dataclasses.replace(base.data, cv=inner_cv)))
    if train.split is not None:
        return (train.subset(train.split == "train"), classes, runs.describe_data_files(sources),
                f"the training split of '{base.data.data}' (its test speakers left out)")
    return train, classes, runs.describe_data_files(sources), f"every speaker of '{base.data.data}' (it has no split)"


def prepare_out(out, record, overwrite, storage):
    """Create --out, or continue the same search in it; InputError for anything else."""
    out = Path(out)
    previous = report.read_search(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if previous is None:
            raise InputError(f"output folder '{out}' exists and is not a search folder (no {report.SEARCH_FILE}); "
                             f"choose another --out")
        if overwrite:
            report.check_only_ours(out, previous.get("study", record["study"]))
            shutil.rmtree(out)
            delete_studies(storage, record["study"])
        elif {k: previous.get(k) for k in SAME_SEARCH} != {k: record[k] for k in SAME_SEARCH}:
            changed = [k for k in SAME_SEARCH if previous.get(k) != record[k]]
            raise InputError(f"'{out}' holds another search ({', '.join(changed)} differ); choose another --out, "
                             f"or pass --overwrite to replace it")
        else:
            print(f"{out}: continuing study '{record['study']}'", file=sys.stderr)
    elif overwrite:
        delete_studies(storage, record["study"])
    out.mkdir(parents=True, exist_ok=True)
    report.write_search(out, {**record, "status": "running"})


def delete_studies(storage, name):
    """--overwrite: drop the study (and its per-outer-fold studies) from a storage outside --out."""
    import optuna

    if storage is None:  # the default SQLite file went with the folder
        return
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name == name or summary.study_name.startswith(f"{name}-outer-"):
            optuna.delete_study(study_name=summary.study_name, storage=storage)


def main(argv=None):
    args, trainer, trainer_argv, base_spec, base, space = parse_args(argv)
    inner_cv = config.parse_cv(args.inner_cv)

    # Data: the search speakers (or, nested, every speaker for the outer folds), checked before anything is written.
    data, classes, data_files, which = load_search_data(base, inner_cv, args.nested)
    storage = studies.open_storage(args.storage, args.out, args.heartbeat) if args.storage else None
    record = {"space": space.as_dict(), "space_file": space.source, "trainer_flags": list(trainer_argv),
              "nested": args.nested, "inner_cv": list(inner_cv), "outer_cv": list(base.data.cv or []) or None,
              "study": args.study, "storage": studies.storage_name(args.storage), "search_speakers": which,
              "trials": args.trials, "timeout": args.timeout, "seed": base.seed, "prune": args.prune,
              **({"objective": args.objective} if args.objective != "ua" else {}),
              "sampler": {"name": "TPE", "seed": base.seed,
                          "trial_seed": "trial N draws with numpy SeedSequence([seed, N]); see sampler_seeds"}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    prepare_out(args.out, record, args.overwrite, storage)

    # The search: every trial a speaker cross-validation of the trainer's own command.
    job = studies.SearchJob(
        base=base_spec, space=space, data=data, classes=classes, data_files=data_files, inner_cv=inner_cv,
        storage=args.storage or f"sqlite:///{Path(args.out, 'study.db').resolve()}", study=args.study,
        trials=args.trials, timeout=args.timeout, folder=Path(args.out) / args.study, seed=base.seed,
        heartbeat=args.heartbeat, prune=args.prune, objective=args.objective)
    if args.nested:
        outer = []
        metrics, summary = studies.run_nested(job, data, Path(args.out) / report.NESTED_DIR, args.jobs,
                                              report=lambda study, fold_job: outer.append(
                                                  report.write_study_report(study, fold_job)))
        for row, study_summary in zip(summary, outer):
            row.update(study=study_summary)
        result = {"nested": summary, "nested_run": str(Path(args.out) / report.NESTED_DIR)}
        if args.objective == "ua":
            result.update(outer_ua=metrics["ua"], outer_wa=metrics["wa"], outer_ua_fold_mean=metrics["ua_fold_mean"],
                          outer_ua_fold_std=metrics["ua_fold_std"])
            score = f"UA {100 * metrics['ua']:.1f}% (pooled), WA {100 * metrics['wa']:.1f}%"
        else:  # a dimensional target: the mean CCC over dimensions, in the inner and the outer loop
            result.update(outer_ccc=metrics["ccc"], outer_ccc_fold_mean=metrics.get("ccc_fold_mean"),
                          outer_ccc_fold_std=metrics.get("ccc_fold_std"),
                          outer_dimensions={d: s["ccc"] for d, s in metrics["dimensions"].items()})
            score = f"CCC {metrics['ccc']:.3f} (pooled)"
        print(f"{args.out}: nested {base.data.cv[0]} estimate over {len(summary)} outer folds: {score}; per fold best "
              f"values and test {args.objective.upper()} in search.json", file=sys.stderr)
    else:
        study, workers = studies.run_search(job, args.jobs)
        result = report.write_study_report(study, job) | {"worker_pids": workers}
        best = f"best_{args.objective}"
        if best not in result:
            raise InputError(f"no trial of study '{args.study}' completed; see {job.folder / report.TRIALS_FILE}")
        score = f"UA {100 * result[best]:.1f}%" if args.objective == "ua" else f"CCC {result[best]:.3f}"
        print(f"{args.out}: best pooled inner-CV {score} (trial {result['best_trial']}: "
              f"{', '.join(f'{k}={v}' for k, v in result['best_params'].items())}); train it with "
              f"{Path(trainer.__file__).name} --config {result['best_config']}", file=sys.stderr)
    report.write_search(args.out, {**record, "status": "finished", **result})
    return 0


if __name__ == "__main__":
    run_main(main)
