"""Trials of a search: Optuna studies whose objective is a speaker cross-validation.

Objective without peeking: a trial trains on the search speakers only (a whole
corpus, its training split, or with ``--nested`` one outer fold's training
speakers), as a speaker-grouped inner cross-validation, and returns the UA of the
folds' pooled test predictions. The outer test speakers are never handed to the
objective: :func:`run_nested` gives each outer fold's search the outer training set
alone. Every trial is a normal cross-validation run folder (``STUDY/trial-NNNN``);
pruned trials are removed.

Storage (:func:`open_storage`): an SQLite file in ``--out`` (default), Optuna's
journal file (``journal:PATH``), or any SQLAlchemy URL (``postgresql://...``): the
same command on several machines joins one study. Relational storages keep a
heartbeat, so the trial of a killed worker is marked failed and retried with the
same parameters (Optuna's RetryHeartbeatStaleTrialCallback).

Seeds (:class:`TrialSeededSampler`): trial N draws with the seed
:func:`trial_seed` (``--seed``, N). Trial numbers are unique in a study, so every
worker, machine and rerun draws new points, and trial N's values follow from
``--seed``, N and the trials it saw finished.
"""

import dataclasses
import os
import socket
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
import optuna
import threadpoolctl
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from serattn.config import number_or_word
from serattn.errors import InputError
from serattn.experiment import Experiment, merge, nest
from serattn.runs import folder as runs
from serattn.runs.folder import RunFolder
from serattn.runs.reading import open_run
from serattn.training import protocols, worker as worker_process

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_RETRY = 3  # a trial whose worker died is rerun at most this often
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclasses.dataclass(frozen=True)
class SearchJob:
    """One study's trials, as picklable work for worker processes.

    ``base`` is the command's experiment dict (:func:`serattn.experiment.merge` of its
    layers, not yet resolved), so a trial's values are resolved and checked with it as
    the same command with those flags would be; ``data`` holds the search speakers only.
    """

    base: dict
    space: object  # serattn.search.space.Space
    data: object  # FeatureSet of the search speakers
    classes: list
    data_files: dict
    inner_cv: tuple  # ("loso", None) or ("kfold-speakers", K)
    storage: str  # as given to open_storage
    study: str
    trials: int
    timeout: float | None
    folder: Path  # the study's folder: trial-NNNN run folders, trials.csv, best/, figures/
    seed: int
    heartbeat: int = 60
    prune: bool = True
    objective: str = "ua"  # what trials maximize, pooled over the inner folds: "ua", or "ccc" for dimensional targets

    def base_experiment(self) -> Experiment:
        """The command's own experiment (its trainer flags, nothing searched)."""
        return Experiment.from_dict(self.base)

    def experiment(self, values: dict, out, cv=None) -> Experiment:
        """The experiment of a trial's ``values``: the command's dict with the values on top, checked.

        Args:
            values: {param name: value}; ``grid.NAME`` values make the static model's grid.
            out: its run folder.
            cv: the speaker protocol recorded (the inner CV for trials).
        """
        settings = {name: value for name, value in values.items() if not name.startswith("grid.")}
        # one value per grid parameter, as --grid NAME=VALUE would give it
        grid = {name[5:]: [number_or_word(str(value))] for name, value in values.items() if name.startswith("grid.")}
        trial = nest(settings, self.space.trainer)
        if grid:
            trial.setdefault("model", {})["grid"] = grid
        experiment = Experiment.from_dict(merge(self.base, trial))
        stratify = experiment.data.stratify_speakers_by if cv and cv[0] == "kfold-speakers" else None
        data = dataclasses.replace(experiment.data, cv=cv, stratify_speakers_by=stratify, repeats=1)
        output = dataclasses.replace(experiment.output, out=str(out), quiet=True, overwrite=True, resume=None, jobs=1)
        return dataclasses.replace(experiment, data=data, output=output, seeds=(experiment.seed,))


def open_storage(spec, out, heartbeat=60):
    """The Optuna storage of ``--storage`` (None: ``OUT/study.db``).

    Raises:
        InputError: a malformed URL, an unreachable server, a missing driver.
    """
    if spec and spec.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(spec.removeprefix("journal:"))
        if not path.parent.is_dir():
            raise InputError(f"--storage {spec}: folder '{path.parent}' does not exist")
        if path.is_dir():
            raise InputError(f"--storage {spec}: '{path}' is a folder; give the journal file's path, e.g. "
                             f"journal:{path / 'study.log'}")
        return JournalStorage(JournalFileBackend(str(path)))
    url = spec or f"sqlite:///{Path(out, 'study.db').resolve()}"
    import sqlalchemy

    try:
        engine = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise InputError(f"--storage: '{url}' is not an SQLAlchemy URL (e.g. sqlite:///study.db, "
                         f"postgresql://user:password@host/db) or journal:PATH") from None
    shown = engine.render_as_string(hide_password=True)
    connect = {"timeout": 60} if engine.get_backend_name() == "sqlite" else (
        {"connect_timeout": 10} if engine.get_backend_name() == "postgresql" else {})
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs={"connect_args": connect}, heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
            # machines starting together on a new database race to create Optuna's tables; the loser retries
            # (PostgreSQL: a unique violation; SQLite: "table ... already exists")
            raced = isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in str(error)
            if raced and attempt < 2:
                time.sleep(1 + attempt)
                continue
            reason = " ".join(str(getattr(error, "orig", None) or error).split())
            raise InputError(f"--storage: cannot open study storage '{shown}': {reason[:300]}") from None


def storage_name(spec):
    """``--storage`` as search.json records it: passwords hidden."""
    if not spec or spec.startswith("journal:"):
        return spec or "sqlite (study.db in --out)"
    import sqlalchemy

    return sqlalchemy.engine.make_url(spec).render_as_string(hide_password=True)


def trial_seed(seed, number):
    """The sampler seed of trial ``number`` of a search with ``--seed`` ``seed``."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Optuna's TPE sampler, seeded anew for every trial with :func:`trial_seed` (``--seed``, trial number).

    One seed per process made every process (each machine's command, each rerun, the
    trial after a retried one) draw the same sequence: the same points in lockstep.
    Trial numbers are handed out by the storage, once each, so no two trials share a
    seed; a single worker still repeats its whole study from the same ``--seed``.
    """

    def __init__(self, seed):
        self.seed = seed
        self._sampler = optuna.samplers.TPESampler(seed=seed)

    def before_trial(self, study, trial):
        self._sampler = optuna.samplers.TPESampler(seed=trial_seed(self.seed, trial.number))
        self._sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values):
        self._sampler.after_trial(study, trial, state, values)

    def reseed_rng(self):  # Optuna calls it in forked workers; the seeds come from the trial numbers anyway
        pass


def load_study(job, storage=None):
    """Create or join ``job.study``; TPE sampler seeded per trial, median pruner on the running fold mean."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage or open_storage(job.storage, job.folder.parent, job.heartbeat)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1) if job.prune \
        else optuna.pruners.NopPruner()
    return optuna.create_study(storage=storage, study_name=job.study, direction="maximize", load_if_exists=True,
                               sampler=TrialSeededSampler(job.seed), pruner=pruner)


def finished_trials(study):
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_trial(job, trial):
    """The objective: pooled UA (or mean CCC, ``job.objective``) of the inner speaker folds of the search speakers.

    After each fold the mean fold UA so far is reported; the pruner may stop the trial
    there (its folder is then removed).
    """
    start = time.perf_counter()
    values = job.space.suggest(trial)
    out = job.folder / f"trial-{trial.number:04d}"
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("sampler_seed", trial_seed(job.seed, trial.number))
    try:
        experiment = job.experiment(values, out, job.inner_cv)
    except InputError as error:  # a combination the trainer refuses (e.g. --heads 2 without multihead)
        trial.set_user_attr("error", str(error))
        raise optuna.TrialPruned(str(error)) from None
    parent, folds, tasks = protocols.start_cross_validation(experiment, job.data, job.classes, job.data_files)
    fold_scores = []
    try:
        for task in tasks:
            fold_scores.append(float(task()[job.objective]))
            trial.set_user_attr(f"fold_{job.objective}", fold_scores)
            trial.report(float(np.mean(fold_scores)), step=len(fold_scores) - 1)
            if trial.should_prune():
                raise optuna.TrialPruned(f"mean {job.objective.upper()} of {len(fold_scores)} folds below the median "
                                         f"of earlier trials")
        metrics = protocols.write_pooled_run(parent, folds, job.classes)
    except BaseException:
        parent.remove()
        raise
    parent.mark_complete()
    trial.set_user_attr("run", str(out))
    trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
    return metrics[job.objective]


def run_worker(job, threads=None, parent=None):
    """Run trials of the study until ``job.trials`` have finished in total (or the timeout).

    ``parent``: the pid of the command that started this worker process; the worker
    ends with it (see :func:`serattn.training.worker.end_with_parent`).
    """
    if parent is not None:
        worker_process.end_with_parent(parent)
    if threads:  # before TensorFlow starts in this process
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    with threadpoolctl.threadpool_limits(threads):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = load_study(job)
        left = job.trials - finished_trials(study)
        if left > 0:
            study.optimize(lambda trial: run_trial(job, trial), n_trials=left, timeout=job.timeout,
                           callbacks=[optuna.study.MaxTrialsCallback(job.trials, states=FINISHED)])
    return os.getpid()


def run_search(job, jobs=1):
    """Run (or continue) one study with ``jobs`` local worker processes, the cores divided among them.

    The trials of workers that died (heartbeat older than twice ``job.heartbeat``)
    are marked failed first, which queues their retries, and their folders are removed.

    Returns:
        ``(study, worker pids)``.
    """
    job.folder.mkdir(parents=True, exist_ok=True)
    study = load_study(job)
    optuna.storages.fail_stale_trials(study)
    remove_failed_trial_folders(study, job.folder)
    if jobs == 1:
        workers = [run_worker(job)]
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        workers = joblib.Parallel(n_jobs=jobs)(joblib.delayed(run_worker)(job, threads, os.getpid())
                                               for _ in range(jobs))
    remove_failed_trial_folders(study, job.folder)
    return study, workers


def remove_failed_trial_folders(study, folder):
    """Remove the half-written folders of failed trials (not those another process still writes)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        path = folder / f"trial-{trial.number:04d}"
        if path.exists():
            try:
                runs.check_unlocked(path)
            except InputError:
                continue
            runs.remove_run_dir(path)


def best_values(study):
    """{param: value} of the best finished trial; InputError when no trial finished."""
    try:
        return dict(study.best_trial.params)
    except ValueError:
        raise InputError(f"study '{study.study_name}' has no complete trial yet; run more --trials, or look at "
                         f"the failed ones in trials.csv") from None


def run_nested(job, outer_data, out, jobs=1, report=None):
    """The nested estimate: per outer fold a search on its training speakers, then one final run.

    Args:
        job: the search, its ``data``/``study``/``folder`` replaced per outer fold.
        outer_data: every utterance; the outer folds come from the trainer's ``--cv``.
        out: the pooled cross-validation run folder (``OUT/nested``) with one final run per fold.
        report: ``f(study, job)`` called after each outer search.

    Returns:
        ``(pooled metrics, [{outer fold, test speakers, best params, search UA, test UA}])``.
    """
    base = job.base_experiment().with_out(out)
    fold_sets = protocols.cross_validation_sets(outer_data, base.data, base.seed)
    resuming = Path(out).exists()
    if resuming and runs.is_complete(out):
        raise InputError(f"the nested estimate in '{out}' is finished; choose another --out, or pass --overwrite")
    parent = RunFolder.reopen(out, job.data_files) if resuming else RunFolder.create(out)
    folds = [parent.fold(k) for k in range(len(fold_sets))]
    summary = []
    try:
        parent.write_config(runs.run_config(base.to_flags(), parent.path, job.classes, outer_data, job.data_files,
                                            folds=[f.path.name for f in folds], nested_search=job.study))
        parent.write_folds(protocols.fold_table(folds, fold_sets, base.data.repeats))
        for k, (train, test) in enumerate(fold_sets):
            name = f"{job.study}-outer-{k:02d}"
            fold_job = dataclasses.replace(job, data=train, study=name, folder=job.folder.parent / name)
            study, _ = run_search(fold_job, jobs)
            if report:
                report(study, fold_job)
            values = best_values(study)
            if not folds[k].is_complete:
                final = fold_job.experiment(values, folds[k].path, base.data.cv)
                protocols.train_one_run(final, train, test, job.classes, folds[k].path, job.data_files)
            test_ua = open_run(folds[k].path).metrics().ua
            summary.append({"outer_fold": k, "test_speakers": sorted(str(s) for s in set(test.speakers)),
                            "search_speakers": sorted(str(s) for s in set(train.speakers)),
                            "best_params": values, "search_ua": study.best_value, "test_ua": test_ua})
        metrics = protocols.write_pooled_run(parent, folds, job.classes, base.data.repeats)
    except InputError:
        if not parent.resumed:
            parent.remove()
        raise
    parent.mark_complete()
    return metrics, summary
