"""One run of a static scikit-learn model on one train/test split, written to its run folder.

:func:`serattn.run` plans the seeds and folds of an experiment; each of those single
runs comes here (in this process, a worker process or a Dask worker).
"""

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from serattn.analysis.metrics import evaluate_predictions
from serattn.experiment import Experiment
from serattn.features.feature_set import FeatureSet
from serattn.features.label_map import dropped_counts
from serattn.runs import folder as runs
from serattn.runs.record import RunMetrics
from serattn.training import protocols, static


def train_one_run(experiment: Experiment, train: FeatureSet, test: FeatureSet, classes: list[str], out: str | Path,
                  data_files: dict) -> dict[str, Any]:
    """Choose hyper-parameters, fit on ``train``, evaluate on ``test``, write the run folder ``out``."""
    model_config, train_config, output = experiment.model, experiment.training, experiment.output

    # Data: validation speakers held out, normalization from the remaining training speakers.
    fit_set, val_set, test, normalization = protocols.split_and_normalize(experiment, train, test, classes, out)
    weights = dict(zip(classes, protocols.class_weights(train_config.class_weight, classes, fit_set.labels)))

    # The run folder exists only from here on, once every input has been checked.
    run = runs.RunFolder.create(out, output.overwrite)
    out = run.path
    try:
        run.write_config(runs.run_config(
            experiment.with_out(out).to_flags(), out, classes, train, data_files,
            class_weights={c: round(float(w), 6) for c, w in weights.items()},
            val_speakers_used=sorted(set(val_set.speakers)),
            test_speakers=sorted(set(test.speakers))))
        run.write_normalization(normalization)

        # Hyper-parameters: UA on the validation speakers (or inner speaker folds without them).
        start = time.perf_counter()
        features = np.concatenate([fit_set.features, val_set.features])
        labels = np.concatenate([fit_set.labels, val_set.labels])
        speakers = np.concatenate([fit_set.speakers, val_set.speakers])
        in_val = np.arange(len(labels)) >= len(fit_set)
        classifier = static.build_classifier(model_config.model, train_config.seed, model_config.max_iter,
                                             model_config.hidden)
        best, scores, how = static.select_hyperparameters(
            static.make_pipeline(classifier), model_config.grid, features, labels, speakers, in_val,
            static.fit_parameters(weights, labels), train_config.inner_folds, output.grid_jobs)

        # Model: refit on the training speakers only, so the val predictions stay out-of-sample.
        model, info = static.fit_static_model(
            model_config.model, best, fit_set.features, fit_set.labels, fit_set.speakers,
            train_config.class_weight, train_config.seed, model_config.calibration, model_config.max_iter,
            model_config.hidden)
        run.save_static_model(static.saved_pipeline(model, normalization))

        # Evaluate: probabilities for every split, metrics on test.
        parts = [(name, fs) for name, fs in [("train", fit_set), ("val", val_set), ("test", test)] if len(fs)]
        probabilities = {name: static.predict_probabilities(model, fs.features, classes) for name, fs in parts}
        predicted = {name: np.asarray(classes)[p.argmax(axis=1)] for name, p in probabilities.items()}

        def joined(values):
            return np.concatenate([values(name, fs) for name, fs in parts])

        run.write_predictions(joined(lambda _, fs: fs.ids),
                               joined(lambda _, fs: fs.speakers), joined(lambda name, fs: [name] * len(fs)),
                               joined(lambda _, fs: fs.labels), joined(lambda name, _: predicted[name]),
                               joined(lambda name, _: probabilities[name]), classes)
        metrics = RunMetrics.of_static(
            evaluate_predictions(test.labels, predicted["test"], classes),
            val_ua=evaluate_predictions(val_set.labels, predicted["val"], classes)["ua"] if len(val_set) else None,
            test_sets=protocols.scores_per_test_set(experiment, test, predicted["test"], classes),
            label_map_dropped=dropped_counts(train.meta), best_params=best, selection=how, grid_scores=scores,
            fit_info=info, seconds=round(time.perf_counter() - start, 3))
        run.write_metrics(metrics)
    except BaseException:
        run.remove()
        raise
    run.mark_complete()
    if not info["converged"]:
        print(f"warning: {out}: the {model_config.model} solver stopped at --max-iter {model_config.max_iter} "
              f"before converging", file=sys.stderr)
    if not output.quiet:
        print(f"{out}: {', '.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}' for k, v in best.items())} "
              f"({how}); test UA {100 * metrics['ua']:.1f}%, {metrics['seconds']:.1f} s", file=sys.stderr)
    return dict(metrics)


def load_data(experiment: Experiment) -> tuple:
    """``(train, test, sources, classes)``: one row of functionals per utterance, checked.

    Augmented copies (extract_features.py --augment) are dropped: static models train on originals only.
    """
    data = experiment.data
    return protocols.load_train_test(
        data.data, data.train, data.test, data.cv, split_by=data.split_by, group_by=data.group_by,
        label_map=data.label_map, drop_unmapped=data.drop_unmapped,
        prepare=lambda feature_set, path: static.utterance_features(feature_set.originals(), experiment.model.pool,
                                                                    path))


