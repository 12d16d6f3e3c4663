"""Run an experiment: the one entry the training scripts, search.py and the tests share.

    from serattn import Experiment, run
    experiment = Experiment.from_dict({"data": {"data": "data/demo/features.npz"},
                                       "output": {"out": "results/demo"}})
    folder, = run(experiment)

:func:`run` reads and checks the data, then runs every seed (sibling folders
``OUT-seedK`` when there are several), each a cross-validation with ``data.cv``
(fold folders pooled into the seed's folder) or one train/test run; with
``output.jobs`` > 1 or ``output.dask_scheduler`` the single runs go to worker
processes or a Dask cluster, with the numbers of ``jobs: 1``. With
``output.seed_ensemble`` the seeds' class probabilities are also averaged into
``OUT-ensemble`` (:func:`serattn.training.ensemble_run.write_ensemble`).
"""

import os
from collections.abc import Callable
from typing import Any

from serattn.experiment import Experiment
from serattn.runs import folder as runs
from serattn.runs.folder import RunFolder

Report = Callable[[dict[str, Any], str], None]


def load_data(experiment: Experiment) -> tuple:
    """``(train, test, sources, classes)`` of the experiment's feature sets, read and checked."""
    if experiment.is_lstm:
        from serattn.training.lstm_run import load_data as load
    else:
        from serattn.training.static_run import load_data as load
    return load(experiment)


def run(experiment: Experiment, *, rerun_of: dict[str, Any] | None = None,
        report: Report | None = None) -> list[RunFolder]:
    """Train and evaluate every seed (and fold) of ``experiment``; one finished run folder per seed.

    Args:
        experiment: a checked experiment (:meth:`Experiment.from_dict` checks).
        rerun_of: the config.json the experiment reruns (``--config``): a warning is
            printed when a data file differs from the one it was trained on.
        report: ``f(metrics, title)`` called once per seed with its test metrics (pooled
            over folds with ``data.cv``).

    Raises:
        InputError: data that does not fit the experiment, or a run folder in the way.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the log
    from serattn.training import protocols

    if experiment.is_lstm and experiment.training.strategy == "multiworker":
        from serattn.training.distribute import worker_out

        # every worker runs the whole experiment; only the chief's --out is kept
        experiment = experiment.with_out(worker_out(experiment.output.out))

    # Data: every input is checked before anything is written.
    train, test, sources, classes = load_data(experiment)
    data_files = runs.describe_data_files(sources)
    if not experiment.output.resume:
        runs.warn_if_data_changed(rerun_of, data_files)

    # One run per seed, each a fold set with data.cv; an LSTM run can be resumed, a static one is quick to redo.
    resume = bool(experiment.output.resume) if experiment.is_lstm else None
    if experiment.output.seed_ensemble:  # refused before any seed trains
        runs.check_output(ensemble_folder(experiment), experiment.output.overwrite)
    for metrics, title in protocols.run_seeds(experiment, train, test, classes, data_files, resume=resume):
        if report is not None:
            report(metrics, title)
    folders = [RunFolder(path) for path in protocols.seed_folders(experiment)]
    if experiment.output.seed_ensemble:
        from serattn.training.ensemble_run import write_ensemble

        metrics, title = write_ensemble([folder.path for folder in folders], ensemble_folder(experiment), "mean",
                                        overwrite=experiment.output.overwrite, quiet=experiment.output.quiet)
        if report is not None:
            report(metrics, title)
    return folders


def ensemble_folder(experiment: Experiment) -> str:
    """``OUT-ensemble``: the seed ensemble of ``--seeds ... --seed-ensemble``, beside the seeds' ``OUT-seedK``."""
    return f"{experiment.output.out}-ensemble"
