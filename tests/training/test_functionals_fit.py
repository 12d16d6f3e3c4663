"""``--functionals-fit logreg``: the functionals' logistic regression, fitted before training, cross-fitted
for the network to learn from, frozen in the saved model."""

import json

import keras
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

import train_attention_lstm
from serattn.errors import InputError
from serattn.features.normalization import Normalization
from serattn.models.attention_lstm import build_attention_lstm, build_basic_lstm
from serattn.testing import make_feature_set
from serattn.training.functionals_fit import (FITTED_INPUT, cross_fitted_view, fit_functionals_classifier,
                                              fitted_logits, functionals_of)
from serattn.training.protocols import class_weights
from serattn.training.trainer import utterance_inputs

CLASSES = ["A", "E", "N", "P", "R"]
TINY = ["--units", "8", "--attention-units", "4", "--epochs", "3", "--patience", "3", "--batch-size", "16",
        "--quiet"]


def fitted_model(dim=8):
    return build_attention_lstm(dim, len(CLASSES), units=6, attention_units=3, pooling="attention+functionals",
                                functionals_norm="speaker", functionals_fit="logreg")


def normalized_training_set():
    data = make_feature_set(n=90, speakers=6, signal=3.0, seed=3, split=False)
    return Normalization("speaker").apply(data)


def test_the_fitted_layer_is_frozen_and_only_its_gain_trains():
    model = fitted_model()
    assert not model.get_layer("functionals_logits").trainable
    trainable = {v.path.split("/")[0] for v in model.trainable_weights}
    assert "functionals_gain" in trainable and "pooled_logits" in trainable
    assert "functionals_logits" not in trainable and "pooled" not in [layer.name for layer in model.layers]
    basic = build_basic_lstm(8, 5, units=6, pooling="mean+functionals", functionals_norm="speaker",
                             functionals_fit="logreg")
    assert not basic.get_layer("functionals_logits").trainable
    with pytest.raises(InputError, match="--target emotion only"):
        build_attention_lstm(8, 5, pooling="attention+functionals", functionals_norm="speaker",
                             functionals_fit="logreg", num_values=2)


def test_fit_sets_the_regression_and_cross_fits_each_speakers_logits():
    model, fit_set = fitted_model(), normalized_training_set()
    inputs = utterance_inputs(fit_set, "speaker")
    record, logits = fit_functionals_classifier(model, fit_set, inputs, CLASSES, "balanced", seed=1)
    assert record["C"] in (1e-4, 1e-3, 1e-2, 1e-1, 1.0) and record["cross_fitted_folds"] == 5
    assert 0.2 < record["inner_ua"] <= 1.0

    features = functionals_of(model, fit_set.sequences(), inputs)
    labels, speakers = np.asarray(fit_set.labels), np.asarray(fit_set.speakers)

    def regression(rows):  # what train_static.py --model logreg fits, class weights as sample weights
        weights = dict(zip(CLASSES, class_weights("balanced", CLASSES, labels[rows])))
        return LogisticRegression(C=record["C"], max_iter=10_000, random_state=1).fit(
            features[rows], labels[rows], sample_weight=[weights[c] for c in labels[rows]])

    # The saved model's logits are the regression fitted to every training utterance...
    everything = regression(np.arange(len(labels)))
    np.testing.assert_allclose(fitted_logits(model, fit_set.sequences(), inputs),
                               everything.decision_function(features), rtol=1e-3, atol=1e-3)
    # ...and the network trains on logits of speakers held out of the regression that gives them.
    train, held_out = next(GroupKFold(n_splits=5).split(features, labels, speakers))
    np.testing.assert_allclose(logits[held_out], regression(train).decision_function(features[held_out]),
                               rtol=1e-3, atol=1e-3)
    assert np.abs(logits[held_out] - everything.decision_function(features[held_out])).max() > 0.1


def test_the_training_view_takes_the_cross_fitted_logits_as_input():
    model, fit_set = fitted_model(), normalized_training_set()
    inputs = utterance_inputs(fit_set, "speaker")
    _, logits = fit_functionals_classifier(model, fit_set, inputs, CLASSES, seed=1)
    view = cross_fitted_view(model)
    assert set(view.input) == {"features", "mask", "speaker_functionals", FITTED_INPUT}
    from serattn.training.batches import inference_batches

    index, batch = next(iter(inference_batches(fit_set.sequences(), 8, utterance_inputs=inputs)))
    own = keras.Model(model.inputs, model.get_layer("pooled_logits").output)(batch)
    fed = {**batch, FITTED_INPUT: logits[index]}
    np.testing.assert_allclose(np.asarray(view(fed)), keras.ops.softmax(own + logits[index]), rtol=1e-4, atol=1e-5)
    # The model itself computes the fitted regression's logits from the functionals instead.
    full = fitted_logits(model, [fit_set.sequences()[i] for i in index], {"speaker_functionals":
                                                                          inputs["speaker_functionals"][index]})
    np.testing.assert_allclose(np.asarray(model(batch)), keras.ops.softmax(own + full), rtol=1e-4, atol=1e-5)


def test_a_run_records_the_fit_keeps_it_frozen_and_reloads_in_safe_mode(feature_file, tmp_path):
    out = tmp_path / "run"
    assert train_attention_lstm.main(["--data", str(feature_file), "--out", str(out), "--preset", "recommended",
                                      "--norm", "speaker", "--functionals-fit", "logreg", *TINY]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["functionals_fit"] == "logreg" and config["functionals_norm"] == "speaker"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["functionals_fit"]["cross_fitted_folds"] >= 2 and metrics["functionals_fit"]["C"] > 0
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    kernel, bias = model.get_layer("functionals_logits").get_weights()
    assert np.abs(kernel).max() > 0  # fitted, and saved as fitted
    gain = model.get_layer("functionals_gain").get_weights()[0]
    assert np.abs(gain).max() > 0  # trained (it starts at 0, a factor of 1)


@pytest.mark.parametrize("flags, message", [
    (["--functionals-fit", "logreg"], "needs a pooling with functionals"),
    (["--pooling", "attention+functionals", "--functionals-fit", "logreg"], "--functionals-norm speaker"),
    (["--preset", "recommended", "--norm", "speaker", "--functionals-fit", "logreg", "--target", "arousal"],
     "--target emotion"),
])
def test_functionals_fit_needs_speaker_functionals_and_classes(feature_file, flags, message):
    with pytest.raises(InputError, match=message):
        train_attention_lstm.parse_args(["--data", str(feature_file), *flags])
