"""Static classifiers on utterance functionals: scikit-learn models with calibrated probabilities.

The Interspeech 2009 challenge baseline is a linear SVM on 384 IS09 functionals
per utterance. Here each static model is a scikit-learn :class:`~sklearn.pipeline.Pipeline`
of one ``classify`` step on normalized features; its hyper-parameters (C, alpha...) are chosen by
balanced accuracy (UA) on speaker-disjoint validation speakers
(:class:`~sklearn.model_selection.PredefinedSplit`) or, without validation
speakers, by an inner :class:`~sklearn.model_selection.GroupKFold` over the
training speakers. SVMs give no probabilities of their own, so they are wrapped
in :class:`~sklearn.calibration.CalibratedClassifierCV` (Platt sigmoid fitted on
decision values of speakers held out of the SVM's training folds); logistic
regression and the MLP use their own ``predict_proba``. Every model thus writes
``p_<class>`` columns that an ensemble can average.
"""

import importlib
import time
import warnings

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, GroupKFold, PredefinedSplit, StratifiedKFold
from sklearn.pipeline import Pipeline

from serattn.config import describe_grids, parse_grid  # noqa: F401 (static.parse_grid, as before)
from serattn.define import CALIBRATIONS, FRAME_POOLS  # noqa: F401
from serattn.features.feature_set import FeatureSet
from serattn.errors import InputError
from serattn.static_models import static_model
from serattn.analysis.metrics import unweighted_average_recall
from serattn.training.protocols import class_weights

CALIBRATION_FOLDS = 3


# --- features --------------------------------------------------------------------------

POOL_CHUNK = 1000  # utterances of a store pooled at once


def utterance_features(feature_set, pool="none", source="data"):
    """One feature row per utterance, as static models need.

    Args:
        feature_set: a :class:`~serattn.features.feature_set.FeatureSet`; functionals have all lengths 1.
        pool: ``"none"`` (refuse frame-level features) or ``"mean"`` (mean and
            standard deviation over each utterance's frames, 2 D features).
        source: file named in messages.

    Returns:
        A FeatureSet whose lengths are all 1, shape (N, D) or (N, 2 D) of features.

    Raises:
        InputError: frame-level features without ``pool="mean"``, or ``pool="mean"``
            asked of features that already have one row per utterance.
    """
    if pool not in FRAME_POOLS:
        raise InputError(f"unknown pooling '{pool}'; expected one of: {', '.join(FRAME_POOLS)}")
    if np.all(feature_set.lengths == 1):
        if pool == "mean":
            raise InputError(f"'{source}' already has one row per utterance (functionals); "
                             f"drop --pool mean")
        return feature_set
    if pool == "none":
        level = feature_set.meta.get("level", "frame-level")
        raise InputError(f"'{source}' holds frame-level features (level '{level}', up to "
                         f"{int(feature_set.lengths.max())} frames per utterance); static models need one "
                         f"row per utterance: extract with 'extract_features.py --level functionals', or "
                         f"pass --pool mean for the mean and std over frames")
    if feature_set.is_lazy:  # a store: read POOL_CHUNK utterances at a time (the same sums as all at once)
        pooled = [_mean_and_std(np.asarray(feature_set.features.take(index)), feature_set.lengths[index])
                  for index in np.array_split(np.arange(len(feature_set)), -(-len(feature_set) // POOL_CHUNK))]
        mean, std = (np.concatenate([part[j] for part in pooled]) for j in (0, 1))
    else:
        mean, std = _mean_and_std(feature_set.features, feature_set.lengths)
    names = [f"{name}_mean" for name in feature_set.feature_names] + \
            [f"{name}_std" for name in feature_set.feature_names]
    return FeatureSet.from_sequences(
        np.concatenate([mean, std], axis=1)[:, None, :], ids=feature_set.ids, labels=feature_set.labels,
        speakers=feature_set.speakers, feature_names=names, split=feature_set.split,
        source_ids=feature_set.source_ids, columns=feature_set.columns,
        meta={**feature_set.meta, "level": "functionals", "pooled_from": feature_set.meta.get("level", "lld"),
              "pool": "mean+std over frames"})


def _mean_and_std(features, lengths):
    """(N, D) mean and std over each utterance's frames of concatenated ``features``."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    frames = features.astype(np.float64)
    counts = np.asarray(lengths)[:, None]
    mean = np.add.reduceat(frames, starts, axis=0) / counts  # (N, D)
    variance = np.add.reduceat(frames ** 2, starts, axis=0) / counts - mean ** 2
    return mean, np.sqrt(np.maximum(variance, 0.0))  # (N, D) each


# --- models ------------------------------------------------------------------------------


def build_classifier(model, seed, max_iter=10_000, hidden=(128,), **params):
    """An unfitted scikit-learn classifier; class weights come as sample weights (:func:`fit_parameters`).

    Args:
        model: a registered static model (:data:`serattn.static_models.STATIC_MODELS`).
        seed: random state (LinearSVC's coordinate order, the MLP's initialization).
        max_iter: most solver iterations (MLP: epochs), where the model has a cap.
        hidden: MLP hidden layer sizes.
        params: hyper-parameters (``C``, ``gamma``, ``alpha``...).
    """
    entry = static_model(model)
    module, _, name = entry.estimator.rpartition(".")
    arguments = dict(entry.options, random_state=seed, **params)
    if entry.iterations:
        arguments[entry.iterations] = max_iter
    if entry.hidden:
        arguments["hidden_layer_sizes"] = tuple(hidden)
    return getattr(importlib.import_module(module), name)(**arguments)


def make_pipeline(classifier):
    """The classifier as a one-step pipeline, so that its sample weights are routed by name.

    Features arrive normalized (:class:`serattn.features.normalization.Normalization`
    is applied to every split before a static model sees it, as for the LSTM).
    """
    return Pipeline([("classify", classifier)])


def saved_pipeline(pipeline, normalization):
    """``normalize -> classify`` for ``model.joblib``: takes raw functionals (global
    normalization; per-speaker normalization must be applied before, as predict.py does)."""
    return Pipeline([("normalize", normalization.row_transformer()), *pipeline.steps])


def fit_parameters(weights, labels):
    """Keyword arguments of ``Pipeline.fit``: class weights as one weight per row.

    Sample weights rather than ``class_weight``, because the MLP has no
    ``class_weight`` and because :class:`~sklearn.calibration.CalibratedClassifierCV`
    passes sample weights on to the sigmoid it fits: the calibrated probabilities
    then assume balanced classes, as the class-weighted classifier does, instead of
    pulling argmax decisions back towards the frequent classes (and UA down).
    """
    return {"classify__sample_weight": np.array([weights[c] for c in labels])}


def select_hyperparameters(pipeline, grid, features, labels, speakers, is_val, fit_params,
                           inner_folds=5, jobs=1):
    """The grid point with the best UA on validation speakers or inner speaker folds.

    Args:
        pipeline: unfitted ``normalize -> classify`` pipeline.
        grid: {parameter: values} of the classifier.
        features: (N, D) training and validation rows; labels, speakers: (N,).
        is_val: (N,) bool, validation rows; none -> inner GroupKFold on ``speakers``.
        fit_params: extra ``Pipeline.fit`` arguments, (N,) arrays.

    Returns:
        ``(best parameters, scores, how)``: scores lists ``{"params", "ua"}`` per grid
        point (empty when the grid has a single point, which needs no search).
    """
    points = int(np.prod([len(v) for v in grid.values()]))
    if points == 1:
        return {name: values[0] for name, values in grid.items()}, [], "single grid point"
    if is_val.any():
        cv = PredefinedSplit(np.where(is_val, 0, -1))
        how = f"UA on {len(np.unique(speakers[is_val]))} validation speaker(s)"
    else:
        count = len(np.unique(speakers))
        if count < 2:
            raise InputError(f"choosing among {points} grid points needs validation speakers or at least "
                             f"2 training speakers for inner folds; the training set has {count}; give "
                             f"--grid with one value per parameter")
        cv = GroupKFold(n_splits=min(inner_folds, count))
        how = f"mean UA over {min(inner_folds, count)} inner speaker folds"
    search = GridSearchCV(pipeline, {f"classify__{k}": v for k, v in grid.items()}, scoring=make_scorer(unweighted_average_recall),
                          cv=cv, refit=False, n_jobs=jobs, error_score="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(features, labels, groups=None if is_val.any() else speakers, **fit_params)
    best = {name.removeprefix("classify__"): value for name, value in search.best_params_.items()}
    scores = [{"params": {k.removeprefix("classify__"): v for k, v in params.items()}, "ua": float(ua)}
              for params, ua in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])]
    return best, scores, how


def calibration_splits(labels, speakers, seed, folds=CALIBRATION_FOLDS):
    """Folds for fitting the probability calibration: by speaker where possible.

    Returns:
        ``(splits, how)``: a list of (train index, held-out index) partitioning the
        rows, grouped by speaker when every training part still holds every
        class, else stratified by class.
    """
    labels, speakers = np.asarray(labels), np.asarray(speakers)
    classes = np.unique(labels)
    count = len(np.unique(speakers))
    if count >= 2:
        splits = list(GroupKFold(n_splits=min(folds, count)).split(labels, labels, speakers))
        if all(len(np.unique(labels[train])) == len(classes) for train, _ in splits):
            return splits, f"{len(splits)} speaker-grouped folds"
    smallest = int(np.min(np.unique(labels, return_counts=True)[1]))
    if smallest < 2:
        raise InputError(f"calibrating probabilities needs at least 2 training utterances per class; "
                         f"class '{classes[np.argmin(np.unique(labels, return_counts=True)[1])]}' has "
                         f"{smallest}; use --model logreg or mlp with --calibration auto")
    splitter = StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed)
    splits = list(splitter.split(labels, labels))
    return splits, f"{len(splits)} class-stratified folds (speaker folds would lose a class)"


def fit_static_model(model, params, features, labels, speakers, class_weight, seed,
                     calibration="auto", max_iter=10_000, hidden=(128,)):
    """Fit the final pipeline on the training rows, with calibrated probabilities.

    Args:
        model, params: the classifier and its chosen hyper-parameters.
        features: (N, D) normalized rows.
        labels, speakers: (N,) str.
        class_weight: ``balanced`` or ``none``.
        calibration: ``auto`` (the model's own: sigmoid for SVMs, native probabilities otherwise),
            ``sigmoid`` or ``isotonic`` (calibrate any model).

    Returns:
        ``(pipeline, info)``; info says how probabilities were calibrated, whether
        the solver converged, and the fit time in seconds.
    """
    classifier = build_classifier(model, seed, max_iter, hidden, **params)
    classes = sorted(set(labels))
    weights = dict(zip(classes, class_weights(class_weight, classes, labels)))
    method = static_model(model).calibration if calibration == "auto" else calibration
    how = "the model's own predict_proba"
    if method:
        splits, folds = calibration_splits(labels, speakers, seed)
        classifier = CalibratedClassifierCV(classifier, method=method, cv=splits, ensemble=False)
        how = f"{method} calibration on decision values of {folds}"
    pipeline = make_pipeline(classifier)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        pipeline.fit(features, labels, **fit_parameters(weights, labels))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    for warning in caught:  # reported in ``info`` instead; anything else is passed on
        if not issubclass(warning.category, ConvergenceWarning):
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return pipeline, {"calibration": how, "converged": converged,
                      "fit_seconds": round(time.perf_counter() - start, 3)}


def predict_probabilities(pipeline, features, classes):
    """(N, C) class probabilities in ``classes`` order (0 for a class the model never saw)."""
    probabilities = pipeline.predict_proba(features)
    order = {str(c): j for j, c in enumerate(pipeline.classes_)}
    columns = [probabilities[:, order[c]] if c in order else np.zeros(len(features)) for c in classes]
    return np.stack(columns, axis=1)
