"""One run of the attention LSTM (or the basic LSTM) on one train/test split, written to its run folder.

:func:`serattn.run` plans the seeds and folds of an experiment; each of those single
runs comes here (in this process, a worker process or a Dask worker).
"""

import sys
from pathlib import Path
from typing import Any

import numpy as np

from serattn.analysis.attention import attention_metrics
from serattn.analysis.metrics import evaluate_predictions
from serattn.errors import InputError
from serattn.experiment import Experiment
from serattn.features.feature_set import FeatureSet
from serattn.runs import folder as runs
from serattn.config import AUTO_EPOCHS
from serattn.training import protocols
from serattn.training.epochs import auto_epochs


def train_one_run(experiment: Experiment, train: FeatureSet, test: FeatureSet, classes: list[str], out: str | Path,
                  data_files: dict) -> dict[str, Any]:
    """Train on ``train``, evaluate on ``test``, and write the run folder ``out``."""
    # TensorFlow loads only once the input is known to be good.
    from serattn.training import trainer as training
    from serattn.training.batches import EpochBatches, evaluation_dataset

    model_config, train_config, output = experiment.model, experiment.training, experiment.output

    # Data: validation speakers held out, normalization from the remaining training speakers.
    fit_set, val_set, test, normalization = protocols.split_and_normalize(experiment, train, test, classes, out)
    class_index = {c: i for i, c in enumerate(classes)}
    class_weights = protocols.class_weights(train_config.class_weight, classes, fit_set.labels)
    pad_to = (model_config.max_length or int(max(train.lengths.max(), test.lengths.max()))) \
        if train_config.pad_to_max else None
    padding = "post" if model_config.mask else "pre"

    # Model, seeded and deterministic.
    model = training.build_model(model_config, train_config, train.dim, len(classes))
    lstm_kernel = training.lstm_kernel_for(model_config, train_config)

    # The run folder exists only from here on, once every input has been checked.
    resuming = bool(output.resume) and Path(out).exists()  # a finished folder is refused there
    run = runs.RunFolder.reopen(out, data_files) if resuming else runs.RunFolder.create(out, output.overwrite)
    out = run.path
    try:
        run.write_config(runs.run_config(
            experiment.with_out(out).to_flags(), out, classes, train, data_files,
            max_length_used=pad_to,
            padding=padding,
            lstm_kernel_used=lstm_kernel,
            class_weights=dict(zip(classes, class_weights.round(6).tolist())),
            val_speakers_used=sorted(set(val_set.speakers)),
            augmented_copies_used=int(fit_set.is_copy.sum()),
            test_speakers=sorted(set(test.speakers))))
        run.write_normalization(normalization)

        # Train: early stopping and model selection on validation UA.
        print(f"{out}: training on {len(fit_set)} utterances ({len(set(fit_set.speakers))} speakers), "
              f"validating on {len(val_set)} ({len(set(val_set.speakers))} speakers), "
              f"testing on {len(test)} ({len(set(test.speakers))} speakers)", file=sys.stderr)
        extra_inputs = {name: training.utterance_inputs(fs, model_config.functionals_norm)
                        for name, fs in [("fit", fit_set), ("val", val_set), ("test", test)]}

        def fit_one(model, fit_set, val_set, epochs, checkpoint_dir, history_path, callbacks=(), verbose=0,
                    extra_inputs=None):
            """Train ``model`` on normalized sets: early stopping on ``val_set`` (all ``epochs`` without one)."""
            if extra_inputs is None:
                extra_inputs = {name: training.utterance_inputs(fs, model_config.functionals_norm)
                                for name, fs in [("fit", fit_set), ("val", val_set)]}
            targets = np.array([class_index[c] for c in fit_set.labels])
            weights = protocols.class_weights(train_config.class_weight, classes, fit_set.labels)
            batches = EpochBatches(fit_set.sequences(), targets, weights[targets], train_config.batch_size,
                                   train_config.seed, bucketing=not train_config.pad_to_max, pad_to=pad_to,
                                   padding=padding, pad_multiple=train_config.pad_multiple,
                                   utterance_inputs=extra_inputs["fit"])
            validation = None
            if len(val_set):
                validation = evaluation_dataset(val_set.sequences(), [class_index[c] for c in val_set.labels],
                                                train_config.batch_size, pad_to, padding, train_config.pad_multiple,
                                                extra_inputs["val"])
            return training.fit(model, batches, validation, epochs, train_config.patience, checkpoint_dir,
                                history_path, callbacks, verbose=verbose, lstm_kernel=lstm_kernel)

        epochs = train_config.epochs
        if epochs == AUTO_EPOCHS:  # inner speaker folds of the training speakers choose; then a fresh model
            epochs = auto_epochs(experiment, train, classes, run, lambda *args: fit_one(
                training.build_model(model_config, train_config, train.dim, len(classes)), *args))
            model = training.build_model(model_config, train_config, train.dim, len(classes))
        callbacks = training.tensorboard_callbacks(out) if output.tensorboard else []
        best_epoch, resumed_at, diverged_epoch = fit_one(
            model, fit_set, val_set, epochs, run.checkpoint_dir, run.history_path, callbacks,
            verbose=0 if output.quiet else (1 if sys.stdout.isatty() else 2), extra_inputs=extra_inputs)
        if resumed_at:
            print(f"{out}: resumed after epoch {resumed_at}", file=sys.stderr)
        if diverged_epoch:
            kept = f"the weights of epoch {best_epoch} are kept" if len(val_set) else "its weights are broken"
            print(f"warning: {out}: the training loss became NaN or infinite in epoch {diverged_epoch}; training "
                  f"stopped there and {kept} (try --clipnorm 1 or a lower --learning-rate)", file=sys.stderr)
        run.save_keras_model(model)

        # Evaluate: predictions, attention and representations for every split.
        parts = [(name, fs) for name, fs in [("train", fit_set), ("val", val_set), ("test", test)] if len(fs)]
        outputs = {name: training.predict_with_attention(model, fs.sequences(), train_config.batch_size, pad_to,
                                                         padding, extra_inputs["fit" if name == "train" else name])
                   for name, fs in parts}
        predicted = run.write_evaluation(parts, outputs, classes)
        metrics = evaluate_predictions(test.labels, predicted["test"], classes)
        metrics["n_test"] = metrics.pop("n")
        metrics["best_epoch"] = best_epoch
        if train_config.epochs == AUTO_EPOCHS:
            metrics["epochs_auto"] = epochs
        metrics["diverged_epoch"] = diverged_epoch
        metrics["val_ua"] = evaluate_predictions(val_set.labels, predicted["val"], classes)["ua"] \
            if len(val_set) else None
        weights = outputs["test"]["weights"]
        metrics.update(attention_metrics(np.concatenate(weights), np.array([len(w) for w in weights]), test.ids,
                                         train.meta.get("manifest")))
        run.write_metrics(metrics)
    except (InputError, OSError):
        if not resuming:
            run.remove()  # nothing half-written stays behind
        raise
    run.mark_complete()
    return metrics


def load_data(experiment: Experiment) -> tuple:
    """``(train, test, sources, classes)`` of the experiment's feature sets, checked (as search.py loads them too)."""
    data = experiment.data
    return protocols.load_train_test(data.data, data.train, data.test, data.cv, data.input_padding,
                                     split_by=data.split_by, group_by=data.group_by)


