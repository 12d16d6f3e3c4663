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
from serattn.features.label_map import dropped_counts
from serattn.runs import folder as runs
from serattn.runs.record import RunMetrics
from serattn.config import AUTO_EPOCHS
from serattn.targets import EMOTION, dimensions, evaluate_value_rows, selection_weights
from serattn.training import protocols
from serattn.training.epochs import auto_epochs


def train_one_run(experiment: Experiment, train: FeatureSet, test: FeatureSet, classes: list[str], out: str | Path,
                  data_files: dict) -> dict[str, Any]:
    """Train on ``train``, evaluate on ``test``, and write the run folder ``out``."""
    # TensorFlow loads only once the input is known to be good.
    from serattn.training import trainer as training
    from serattn.training.batches import EpochBatches, evaluation_dataset
    from serattn.models.attention_lstm import has_fitted_functionals
    from serattn.training.functionals_fit import FITTED_INPUT, fit_functionals_classifier, fitted_logits
    from serattn.training.frame_loss import FRAME_TARGETS, frame_targets, has_frame_evidence

    model_config, train_config, output = experiment.model, experiment.training, experiment.output

    # Data: validation speakers held out, normalization from the remaining training speakers.
    fit_set, val_set, test, normalization = protocols.split_and_normalize(experiment, train, test, classes, out)
    class_index = {c: i for i, c in enumerate(classes)}
    dims = dimensions(model_config.target)
    selection = selection_weights(model_config.target, train_config.loss_weights)

    def class_weights_of(fit_set):
        if model_config.predicts_classes:
            return protocols.class_weights(train_config.class_weight, classes, fit_set.labels)
        return np.ones(len(classes), np.float32)  # class weights weigh classes, absent here (nor needed in fit_set)

    def fit_targets(fit_set):
        """(targets, sample weights) of a fit set: class indices, or (N, 1 + K) rows (the class index, then
        the numeric targets, serattn.models.targets) for dimensional and multi-task runs."""
        indices = np.array([class_index[c] for c in fit_set.labels])
        targets = value_targets(fit_set, class_index, dims) if dims else indices
        return targets, class_weights_of(fit_set)[indices]

    class_weights = class_weights_of(fit_set)
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

        # Train: early stopping and model selection on validation UA (CCC for numeric targets).
        print(f"{out}: training on {len(fit_set)} utterances ({len(set(fit_set.speakers))} speakers), "
              f"validating on {len(val_set)} ({len(set(val_set.speakers))} speakers), "
              f"testing on {len(test)} ({len(set(test.speakers))} speakers)", file=sys.stderr)
        extra_inputs = {name: training.utterance_inputs(fs, model_config.functionals_norm)
                        for name, fs in [("fit", fit_set), ("val", val_set), ("test", test)]}

        fitted = {}  # --functionals-fit logreg: what the last fit_one fitted

        def fit_one(model, fit_set, val_set, epochs, checkpoint_dir, history_path, callbacks=(), verbose=0,
                    extra_inputs=None):
            """Train ``model`` on normalized sets: early stopping on ``val_set`` (all ``epochs`` without one)."""
            if extra_inputs is None:
                extra_inputs = {name: training.utterance_inputs(fs, model_config.functionals_norm)
                                for name, fs in [("fit", fit_set), ("val", val_set)]}
            if has_fitted_functionals(model):  # the functionals' logistic regression first, then the network
                record, fit_logits = fit_functionals_classifier(model, fit_set, extra_inputs["fit"], classes,
                                                                train_config.class_weight, train_config.seed)
                fitted.update(record)
                extra_inputs = {"fit": {**extra_inputs["fit"], FITTED_INPUT: fit_logits}, "val": {
                    **extra_inputs["val"],
                    **({FITTED_INPUT: fitted_logits(model, val_set.sequences(), extra_inputs["val"])}
                       if len(val_set) else {})}}
            targets, sample_weights = fit_targets(fit_set)
            if has_frame_evidence(model):  # guided-evidence-attention: every frame is trained on its utterance's class
                val_classes = np.array([class_index[c] for c in val_set.labels], dtype=np.int64)
                extra_inputs = {
                    "fit": {**extra_inputs["fit"], FRAME_TARGETS: frame_targets(targets, sample_weights, len(classes))},
                    "val": {**extra_inputs["val"], **({FRAME_TARGETS: frame_targets(
                        val_classes, class_weights_of(fit_set)[val_classes], len(classes))} if len(val_set) else {})}}
            batches = EpochBatches(fit_set.sequences(), targets, sample_weights, train_config.batch_size,
                                   train_config.seed, bucketing=not train_config.pad_to_max, pad_to=pad_to,
                                   padding=padding, pad_multiple=train_config.pad_multiple,
                                   utterance_inputs=extra_inputs["fit"])
            validation = None
            if len(val_set):
                val_targets = value_targets(val_set, class_index, dims) if dims else \
                    [class_index[c] for c in val_set.labels]
                validation = evaluation_dataset(val_set.sequences(), val_targets, train_config.batch_size, pad_to,
                                                padding, train_config.pad_multiple, extra_inputs["val"])
            return training.fit(model, batches, validation, epochs, train_config.patience, checkpoint_dir,
                                history_path, callbacks, verbose=verbose, lstm_kernel=lstm_kernel, selection=selection)

        epochs = train_config.epochs
        if epochs == AUTO_EPOCHS:  # inner speaker folds of the training speakers choose; then a fresh model
            epochs = auto_epochs(experiment, train, classes, run, selection, lambda *args: fit_one(
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
        if dims:
            scores = write_value_evaluation(run, parts, outputs, classes, model_config.target)
        else:
            predicted = run.write_evaluation(parts, outputs, classes)
        weights = outputs["test"]["weights"]
        epoch_record = dict(best_epoch=best_epoch, diverged_epoch=diverged_epoch,
                            epochs_auto=epochs if train_config.epochs == AUTO_EPOCHS else None,
                            label_map_dropped=dropped_counts(train.meta),
                            attention=attention_metrics(np.concatenate(weights), np.array([len(w) for w in weights]),
                                                        test.ids, train.meta.get("manifest")))
        if dims:
            metrics = RunMetrics.of_lstm_values(model_config.target, **scores, **epoch_record)
        else:
            metrics = RunMetrics.of_lstm(
                evaluate_predictions(test.labels, predicted["test"], classes),
                val_ua=evaluate_predictions(val_set.labels, predicted["val"], classes)["ua"] if len(val_set) else None,
                test_sets=protocols.scores_per_test_set(experiment, test, predicted["test"], classes),
                functionals_fit=fitted or None, **epoch_record)
        run.write_metrics(metrics)
    except (InputError, OSError):
        if not resuming:
            run.remove()  # nothing half-written stays behind
        raise
    run.mark_complete()
    return dict(metrics)


def load_data(experiment: Experiment) -> tuple:
    """``(train, test, sources, classes)`` of the experiment's feature sets, checked (as search.py loads them too)."""
    data = experiment.data
    loaded = protocols.load_train_test(data.data, data.train, data.test, data.cv, data.input_padding,
                                       split_by=data.split_by, group_by=data.group_by,
                                       label_map=data.label_map, drop_unmapped=data.drop_unmapped)
    train, test, sources, _ = loaded
    for dim in dimensions(experiment.model.target):
        for feature_set, source in [(train, sources.get("train", data.data)), (test, sources.get("test"))]:
            if feature_set is not None:
                target_values(feature_set, dim, source)
    return loaded


def target_values(feature_set: FeatureSet, dim: str, source=None) -> np.ndarray:
    """(N,) float values of the numeric target ``dim``; InputError naming the file and column unless
    every utterance has a number there."""
    where = f"'{source}'" if source else "the feature set"
    values = feature_set.column(dim, "--target", source)
    try:
        numbers = np.array([float(v) if str(v).strip() else np.nan for v in values], dtype=np.float64)
    except ValueError:
        bad = next(v for v in values if str(v).strip() and not _is_number(v))
        raise InputError(f"--target {dim}: column '{dim}' of {where} is not numeric (e.g. '{bad}')") from None
    missing = int((~np.isfinite(numbers)).sum())
    if missing:
        raise InputError(f"--target {dim}: column '{dim}' of {where} has {missing} empty or non-finite values; "
                         f"drop those utterances from the manifest")
    return numbers


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def value_targets(feature_set: FeatureSet, class_index: dict, dims) -> np.ndarray:
    """(N, 1 + K) float32 rows of the model's targets: the class index (0 for a label the classes
    lack), then the K numeric targets."""
    columns = [np.array([class_index.get(c, 0) for c in feature_set.labels], np.float64)]
    columns += [target_values(feature_set, dim) for dim in dims]
    return np.stack(columns, axis=1).astype(np.float32)


def write_value_evaluation(run, parts, outputs, classes, targets) -> dict:
    """predictions.csv (with true_D and pred_D per dimension) and attention.npz of a dimensional or
    multi-task run; returns its scores for :meth:`RunMetrics.of_lstm_values`: the test rows' CCC, Pearson
    and MSE per dimension (and UA, WA with emotion), the validation rows' mean CCC (and UA)."""
    dims = dimensions(targets)
    classify = EMOTION in targets
    num_classes = len(classes) if classify else 0
    split_outputs = {name: {**out, "probabilities": out["probabilities"][:, :num_classes]} for name, out in outputs.items()}
    values = {name: outputs[name]["probabilities"][:, num_classes:] for name, _ in parts}
    truths = {name: np.stack([target_values(fs, dim) for dim in dims], axis=1) for name, fs in parts}
    rows = []
    split = [name for name, fs in parts for _ in range(len(fs))]
    ids = np.concatenate([fs.ids for _, fs in parts])
    speakers = np.concatenate([fs.speakers for _, fs in parts])
    labels = np.concatenate([fs.labels for _, fs in parts])
    probabilities = np.concatenate([split_outputs[name]["probabilities"] for name, _ in parts])
    true_values = np.concatenate([truths[name] for name, _ in parts])
    predicted_values = np.concatenate([values[name] for name, _ in parts])
    for i in range(len(ids)):
        row = {"id": ids[i], "speaker": speakers[i], "split": split[i]}
        if classify:
            row.update(true=labels[i], predicted=classes[int(probabilities[i].argmax())],
                       **{f"p_{c}": f"{p:.6f}" for c, p in zip(classes, probabilities[i])})
        for k, dim in enumerate(dims):
            row.update({f"true_{dim}": f"{true_values[i, k]:.6g}", f"pred_{dim}": f"{predicted_values[i, k]:.6f}"})
        rows.append(row)
    run.write_prediction_rows(rows)
    run.write_attention([w for name, _ in parts for w in outputs[name]["weights"]],
                        np.concatenate([outputs[name]["z"] for name, _ in parts]), ids, labels, speakers,
                        np.array(split), np.concatenate([outputs[name]["padding_mass"] for name, _ in parts]),
                        head_weights=([w for name, _ in parts for w in outputs[name]["head_weights"]]
                                      if "head_weights" in outputs[parts[0][0]] else None))
    test = [r for r in rows if r["split"] == "test"]
    val = [r for r in rows if r["split"] == "val"]
    class_scores = evaluate_predictions([r["true"] for r in test], [r["predicted"] for r in test], classes) \
        if classify else None
    val_ua = evaluate_predictions([r["true"] for r in val], [r["predicted"] for r in val], classes)["ua"] \
        if classify and val else None
    return dict(class_scores=class_scores, value_scores=evaluate_value_rows(test, dims),
                val_ccc=evaluate_value_rows(val, dims)["ccc"] if val else None, val_ua=val_ua)
