import keras
import numpy as np
import pytest

from serattn.training.batches import pad_batch
from serattn.errors import InputError
from serattn.models.attention_lstm import build_analysis_model, build_attention_lstm

PUBLISHED_LAYERS = ["lstm1", "attention_dense1", "attention_dense2", "attention_weights",
                    "attention_representation", "output"]


def run(model, sequences, length=None, padding="post"):
    batch, mask = pad_batch(sequences, length, padding)
    probabilities, weights, z = build_analysis_model(model)({"features": batch, "mask": mask}, training=False)
    return np.asarray(probabilities), np.asarray(weights), np.asarray(z), mask


def test_published_layers_shapes_and_parameter_count():
    model = build_attention_lstm(32, 5)
    assert [layer.name for layer in model.layers if layer.name not in ("features", "mask")] == PUBLISHED_LAYERS
    lstm = model.get_layer("lstm1")
    assert lstm.units == 60 and lstm.return_sequences and lstm.recurrent_dropout == 0.5
    assert not model.get_layer("attention_dense1").use_bias
    assert not model.get_layer("attention_dense2").use_bias
    assert model.get_layer("attention_dense1").units == 50
    assert model.get_layer("attention_representation").output.shape == (None, 60)
    # LSTM 4*(60*(32+60)+60) + Dense 60*50 + Dense 50*1 + softmax 60*5+5
    assert model.count_params() == 22_320 + 3_000 + 50 + 305 == 25_675


def test_relu_variant_and_sizes_are_flags():
    model = build_attention_lstm(16, 3, units=20, activation="relu", attention_units=7, recurrent_dropout=0.0)
    assert model.get_layer("lstm1").activation.__name__ == "relu"
    assert model.get_layer("attention_dense1").units == 7
    assert model.output.shape == (None, 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(activation="sigmoid"), "unknown activation 'sigmoid'; expected one of: tanh, relu"),
    (dict(units=-3), "units must be a positive integer"),
    (dict(recurrent_dropout=1.5), "recurrent dropout"),
])
def test_bad_model_arguments_are_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        build_attention_lstm(32, 5, **kwargs)


def test_attention_sums_to_one_and_is_zero_on_padding():
    rng = np.random.default_rng(0)
    model = build_attention_lstm(8, 5)
    sequences = [rng.normal(size=(n, 8)).astype(np.float32) for n in (5, 17, 30)]
    _, weights, _, mask = run(model, sequences, length=40)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(weights[~mask] == 0.0)
    assert np.all(weights[mask] > 0.0)


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_masked_model_is_padding_invariant(padding):
    rng = np.random.default_rng(1)
    model = build_attention_lstm(8, 5)
    sequence = rng.normal(size=(23, 8)).astype(np.float32)
    p0, w0, z0, m0 = run(model, [sequence])
    p1, w1, z1, m1 = run(model, [sequence], length=100, padding=padding)
    np.testing.assert_allclose(p0, p1, atol=1e-5)
    np.testing.assert_allclose(z0, z1, atol=1e-5)
    np.testing.assert_allclose(w0[m0], w1[m1], atol=1e-5)


def test_unmasked_model_sees_padding_as_published():
    rng = np.random.default_rng(2)
    model = build_attention_lstm(8, 5, masked=False)
    sequence = rng.normal(size=(23, 8)).astype(np.float32)
    p0, w0, _, _ = run(model, [sequence], length=23, padding="pre")
    p1, w1, _, m1 = run(model, [sequence], length=100, padding="pre")
    assert np.abs(p0 - p1).max() > 1e-4  # the prediction depends on the padding
    assert w1[~m1].sum() > 0.1  # padded frames take a real share of the attention
    np.testing.assert_allclose(w1.sum(), 1.0, rtol=1e-6)


def test_saved_model_loads_in_safe_mode_and_predicts_the_same(tmp_path):
    rng = np.random.default_rng(3)
    model = build_attention_lstm(8, 5)
    sequences = [rng.normal(size=(n, 8)).astype(np.float32) for n in (9, 14)]
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    for original, reloaded in zip(run(model, sequences), run(loaded, sequences)):
        np.testing.assert_array_equal(original, reloaded)
    assert type(loaded.get_layer("attention_weights")).__name__ == "MaskedTimeSoftmax"
