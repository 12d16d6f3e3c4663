"""``--functionals-fit logreg``: the functionals' classifier fitted as the static model is, before training.

A network that trains its functionals' weights jointly with an LSTM on a few hundred
utterances stops where the LSTM has fitted the training set, a few epochs in, and stays
below logistic regression on the same functionals (docs/ATTENTION_VARIANTS.md). Here the
functionals' logits come from a logistic regression fitted to the training set's
per-speaker-standardized functionals, its C chosen by UA over inner speaker folds as
``train_static.py --model logreg`` chooses it; the model holds it as a frozen layer
(:func:`serattn.models.attention_lstm.fitted_output`), and training moves only the rest.

The network learns what the logistic regression leaves, so it must not see the regression's
logits of utterances the regression was fitted to: those are nearly perfect, and would leave
the network nothing to learn where they are wrong on new speakers. It trains on cross-fitted
logits instead (each speaker's from a regression fitted without that speaker's inner fold,
the stacking of Wolpert 1992), through :func:`cross_fitted_view`; validation and the saved
model use the regression fitted to every training speaker.
"""

import serattn

serattn.import_tensorflow()  # before Keras: no start-up log lines

import keras
import numpy as np
from sklearn.model_selection import GroupKFold

from serattn.models.attention_lstm import FITTED_LAYER
from serattn.static_models import static_model
from serattn.training.batches import inference_batches
from serattn.training.protocols import class_weights
from serattn.training.static import (build_classifier, fit_parameters, fit_static_model, make_pipeline,
                                     select_hyperparameters)

FITTED_INPUT = "fitted_logits"  # the training view's input in place of FITTED_LAYER's output
INNER_FOLDS = 5  # speaker folds that choose C and cross-fit the training logits, as train_static.py's


def functionals_of(model, sequences, utterance_inputs, batch_size=64) -> np.ndarray:
    """(N, F) standardized functionals (layer ``functionals_norm``) of normalized ``sequences``."""
    standardized = keras.Model(model.inputs, model.get_layer("functionals_norm").output)
    rows = np.zeros((len(sequences), standardized.output.shape[-1]), np.float32)
    for index, inputs in inference_batches(sequences, batch_size, utterance_inputs=utterance_inputs):
        rows[index] = np.asarray(standardized(inputs, training=False))
    return rows


def fit_functionals_classifier(model, fit_set, utterance_inputs, classes, class_weight="balanced", seed=1,
                               batch_size=64) -> tuple[dict, np.ndarray]:
    """Set ``model``'s ``functionals_logits`` to a logistic regression on ``fit_set``'s functionals.

    Args:
        model: built with ``functionals_fit="logreg"``.
        fit_set: the normalized training set (its labels and speakers).
        utterance_inputs: its ``speaker_functionals`` (:func:`serattn.training.trainer.utterance_inputs`).
        classes: the model's classes, in its output order.
        class_weight: ``balanced``, ``none`` or ``A=1.1,...``, as the network's loss weighs them.
        seed: the solver's random state.

    Returns:
        ``(record, logits)``: what was fitted (``{"C", "inner_ua", "selection", "cross_fitted_folds"}``),
        and (N, classes) cross-fitted logits of ``fit_set``, the input the network trains with.
    """
    features = functionals_of(model, fit_set.sequences(), utterance_inputs, batch_size)
    labels, speakers = np.asarray(fit_set.labels), np.asarray(fit_set.speakers)
    present = sorted(set(labels))
    weights = dict(zip(present, class_weights(class_weight, present, labels)))
    pipeline = make_pipeline(build_classifier("logreg", seed))
    params, scores, how = select_hyperparameters(pipeline, static_model("logreg").grid, features, labels, speakers,
                                                 np.zeros(len(labels), bool), fit_parameters(weights, labels),
                                                 inner_folds=INNER_FOLDS)
    kernel, bias = _logistic_regression(params, features, labels, speakers, class_weight, seed, classes)
    model.get_layer(FITTED_LAYER).set_weights([kernel, bias])
    logits = features @ kernel + bias  # without speaker folds to hold out, the fitted logits themselves
    folds = min(INNER_FOLDS, len(set(speakers)))
    if folds >= 2:
        for train, held_out in GroupKFold(n_splits=folds).split(features, labels, speakers):
            fold_kernel, fold_bias = _logistic_regression(params, features[train], labels[train], speakers[train],
                                                          class_weight, seed, classes)
            logits[held_out] = features[held_out] @ fold_kernel + fold_bias
    best = max((score["ua"] for score in scores), default=None)
    record = {"C": float(params["C"]), "inner_ua": None if best is None else round(best, 6), "selection": how,
              "cross_fitted_folds": folds if folds >= 2 else 0}
    return record, logits.astype(np.float32)


def _logistic_regression(params, features, labels, speakers, class_weight, seed, classes):
    """(kernel (F, classes), bias (classes,)) of a logistic regression fitted to the rows; a class the rows
    lack gets the lowest logit of the others, so that it is never predicted but leaves the loss finite."""
    pipeline, _ = fit_static_model("logreg", params, features, labels, speakers, class_weight, seed)
    classifier = pipeline.named_steps["classify"]
    coefficients, intercepts = classifier.coef_, classifier.intercept_
    if len(classifier.classes_) == 2:  # one row of logit differences: split it between the two classes
        coefficients = np.stack([-coefficients[0], coefficients[0]]) / 2
        intercepts = np.array([-intercepts[0], intercepts[0]]) / 2
    columns = [classes.index(str(label)) for label in classifier.classes_]
    kernel = np.zeros((features.shape[1], len(classes)), np.float32)
    bias = np.zeros(len(classes), np.float32)
    kernel[:, columns], bias[columns] = coefficients.T, intercepts
    missing = [c for c in range(len(classes)) if c not in columns]
    if missing:
        lowest = int(np.argmin(intercepts))
        kernel[:, missing], bias[missing] = coefficients[lowest][:, None], intercepts[lowest] - 10.0
    return kernel, bias


def fitted_logits(model, sequences, utterance_inputs, batch_size=64) -> np.ndarray:
    """(N, classes) logits of ``model``'s fitted logistic regression (``functionals_logits``)."""
    kernel, bias = model.get_layer(FITTED_LAYER).get_weights()
    return functionals_of(model, sequences, utterance_inputs, batch_size) @ kernel + bias


def cross_fitted_view(model):
    """A model sharing ``model``'s layers whose functionals' logits are an input (``fitted_logits``), for
    training on cross-fitted logits (the fused or unmasked view of :func:`~serattn.training.trainer.trainer_for`
    is then taken of it)."""
    fitted = keras.Input(shape=(model.output.shape[-1],), name=FITTED_INPUT)
    own = model.get_layer("pooled_logits").output  # the network's logits, in model's graph
    logits = model.get_layer("logits")([own, model.get_layer("functionals_gain")(fitted)])
    return keras.Model({**model.input, FITTED_INPUT: fitted}, model.get_layer("output")(logits), name=model.name)
