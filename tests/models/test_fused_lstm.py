"""The fused LSTM kernel (serattn.models.fused_lstm) computes what keras.layers.LSTM computes."""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import train_attention_lstm
from serattn import config
from serattn.errors import InputError
from serattn.models.attention_lstm import build_attention_lstm, build_basic_lstm
from serattn.models.fused_lstm import FusedLSTM
from serattn.training.batches import pad_batch
from serattn.training.trainer import compile_model, lstm_kernel_for, trainer_for

LENGTHS = (3, 17, 9, 30)  # a ragged batch
MODELS = [  # (builder, keyword arguments): every pooling variant of both models
    (build_attention_lstm, {}),
    (build_attention_lstm, {"pooling": "attention", "pool_inputs": True}),
    (build_attention_lstm, {"pooling": "attentive-stats"}),
    (build_attention_lstm, {"pooling": "multihead", "heads": 2}),
    (build_attention_lstm, {"pooling": "attention+mean"}),
    (build_attention_lstm, {"pooling": "attention+stats", "pool_inputs": True}),
    (build_attention_lstm, {"pooling": "attention+functionals"}),
    (build_attention_lstm, {"masked": False}),  # --no-mask: the LSTM runs over the padding
    (build_basic_lstm, {"pooling": "mean"}),
    (build_basic_lstm, {"pooling": "last"}),
    (build_basic_lstm, {"pooling": "mean+functionals"}),
]


def ragged_inputs(padding, seed=0):
    rng = np.random.default_rng(seed)
    sequences = [rng.normal(size=(n, 6)).astype(np.float32) for n in LENGTHS]
    batch, mask = pad_batch(sequences, padding=padding)
    return {"features": tf.constant(batch), "mask": tf.constant(mask)}


def outputs_and_gradients(model, inputs, targets):
    with tf.GradientTape() as tape:
        probabilities = model(inputs, training=False)
        loss = keras.losses.sparse_categorical_crossentropy(targets, probabilities)
    return probabilities.numpy(), [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def test_fused_layer_equals_the_stock_lstm_on_long_sequences_and_pre_padding():
    rng = np.random.default_rng(1)
    lstm = keras.layers.LSTM(7, return_sequences=True, recurrent_dropout=0.0)
    lstm.build((None, None, 5))
    lstm.cell.bias.assign(lstm.cell.bias + 2.0)  # cell states well past BlockLSTM's default clip of 3
    frames = rng.normal(size=(3, 300, 5)).astype(np.float32) * 3
    fused = FusedLSTM(lstm)
    np.testing.assert_allclose(fused(frames).numpy(), lstm(frames).numpy(), atol=1e-5)
    lengths = (300, 120, 1)
    mask = np.arange(300)[None, :] < np.array(lengths)[:, None]
    reference = lstm(frames, mask=mask).numpy()
    pre_frames, pre_mask = np.zeros_like(frames), mask[:, ::-1].copy()
    for row, n in enumerate(lengths):
        pre_frames[row, 300 - n:] = frames[row, :n]
    pre = fused(pre_frames, mask=pre_mask).numpy()
    for row, n in enumerate(lengths):
        np.testing.assert_allclose(pre[row, 300 - n:], reference[row, :n], atol=1e-5)
        np.testing.assert_allclose(fused(frames).numpy()[row, :n], reference[row, :n], atol=1e-5)


@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("builder, kwargs", MODELS, ids=lambda x: getattr(x, "__name__", None) or str(x))
def test_fused_training_view_matches_the_keras_lstm(builder, kwargs, padding):
    if padding == "pre" and kwargs.get("masked") is False:
        return  # --no-mask pads before and is the next test case's padding either way
    keras.utils.set_random_seed(4)
    model = builder(6, 4, units=8, recurrent_dropout=0.0, **kwargs)
    compile_model(model, 4, 1e-3)
    view = trainer_for(model, padding, "fused")
    assert isinstance(view.get_layer("lstm1"), FusedLSTM) and view.get_layer("lstm1").lstm is model.get_layer("lstm1")
    assert [v.path for v in view.trainable_variables] == [v.path for v in model.trainable_variables]
    inputs = ragged_inputs(padding)
    targets = np.array([0, 1, 2, 3])
    expected, expected_gradients = outputs_and_gradients(model, inputs, targets)  # stock LSTM with its mask
    got, gradients = outputs_and_gradients(view, inputs, targets)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    for a, b in zip(gradients, expected_gradients):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_fused_training_steps_follow_the_keras_steps():
    """A few Adam steps through the fused view leave the stock model's weights where the Keras loop does."""
    rng = np.random.default_rng(2)
    inputs = ragged_inputs("post", seed=3)
    targets = rng.integers(0, 4, len(LENGTHS))
    weights = []
    for kernel in ("keras", "fused"):
        keras.utils.set_random_seed(5)
        tf.config.experimental.enable_op_determinism()
        model = build_attention_lstm(6, 4, units=8, recurrent_dropout=0.0, pooling="attention+functionals")
        compile_model(model, 4, 1e-2)
        trainer_for(model, "post", kernel).fit(
            tf.data.Dataset.from_tensors((inputs, targets)).repeat(5), epochs=1, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_the_fused_layer_saves_and_loads_in_safe_mode(tmp_path):
    lstm = keras.layers.LSTM(5, return_sequences=True, recurrent_dropout=0.0)
    frames = keras.Input((None, 3))
    model = keras.Model(frames, FusedLSTM(lstm, name="lstm1")(frames))
    model.save(tmp_path / "fused.keras")
    loaded = keras.saving.load_model(tmp_path / "fused.keras", safe_mode=True)
    x = np.random.default_rng(0).normal(size=(2, 11, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_kernel_choice_auto_is_fused_only_where_exact():
    published = config.ModelConfig()  # recurrent dropout 0.5: the Keras loop, byte-identical runs
    recommended = config.ModelConfig(recurrent_dropout=0.0, pooling="attention+functionals")
    train = config.TrainConfig()
    assert lstm_kernel_for(published, train) == "keras"
    assert lstm_kernel_for(recommended, train) == "fused"
    assert lstm_kernel_for(config.ModelConfig(recurrent_dropout=0.0, activation="relu"), train) == "keras"
    assert lstm_kernel_for(recommended, config.TrainConfig(jit_compile=True)) == "keras"
    assert lstm_kernel_for(recommended, config.TrainConfig(lstm_kernel="keras")) == "keras"
    with pytest.raises(ValueError, match="recurrent_dropout|--recurrent-dropout 0"):
        FusedLSTM(keras.layers.LSTM(4, return_sequences=True, recurrent_dropout=0.5))


def test_fused_where_inexact_is_an_input_error(feature_file, tmp_path):
    with pytest.raises(InputError, match="--lstm-kernel fused computes the Keras LSTM exactly only with "
                                         "--activation tanh, --recurrent-dropout 0; use --lstm-kernel auto"):
        train_attention_lstm.main(["--data", str(feature_file), "--out", str(tmp_path / "run"),
                                   "--lstm-kernel", "fused", "--activation", "relu", "--epochs", "1"])
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def auto_kernel_run(feature_file, tmp_path_factory):
    """A 1-epoch run with the default --lstm-kernel auto, no recurrent dropout; tests copy it to change it."""
    out = tmp_path_factory.mktemp("fused") / "run"
    assert train_attention_lstm.main(["--data", str(feature_file), "--out", str(out), "--units", "6",
                                      "--attention-units", "3", "--epochs", "1", "--recurrent-dropout", "0",
                                      "--quiet"]) == 0
    return out


def test_a_fused_run_records_its_kernel_and_saves_a_stock_lstm(auto_kernel_run):
    from serattn.runs.reading import open_run

    saved = json.loads((auto_kernel_run / "config.json").read_text())
    assert saved["lstm_kernel"] == "auto" and saved["lstm_kernel_used"] == "fused"
    model = open_run(auto_kernel_run).load_keras_model()  # safe mode
    assert type(model.get_layer("lstm1")) is keras.layers.LSTM


def test_bad_lstm_kernel_is_refused():
    with pytest.raises(InputError, match="unknown LSTM kernel 'cudnn'"):
        config.TrainConfig(lstm_kernel="cudnn").check()


def test_a_fused_run_resumes_from_its_checkpoint_to_the_uninterrupted_weights(tmp_path):
    from serattn.training.batches import EpochBatches, evaluation_dataset
    from serattn.training.trainer import fit

    rng = np.random.default_rng(6)
    sequences = [rng.normal(size=(int(n), 6)).astype(np.float32) for n in rng.integers(3, 25, 20)]
    targets = rng.integers(0, 4, 20)

    def train(folder, epochs):
        folder.mkdir(exist_ok=True)
        keras.utils.set_random_seed(7)
        tf.config.experimental.enable_op_determinism()
        model = build_attention_lstm(6, 4, units=8, attention_units=4, recurrent_dropout=0.0,
                                     augment={"time_mask": 3, "count": 1, "seed": 1})  # seeded per epoch
        compile_model(model, 4, 1e-2)
        batches = EpochBatches(sequences[:16], targets[:16], np.ones(16), 8, seed=1)
        fit(model, batches, evaluation_dataset(sequences[16:], targets[16:], 8), epochs, 10, folder / "checkpoint",
            folder / "history.csv", verbose=0, lstm_kernel="fused")
        return model.get_weights()

    reference = train(tmp_path / "reference", 4)
    train(tmp_path / "resumed", 2)  # "interrupted" after 2 epochs: its checkpoint stays
    resumed = train(tmp_path / "resumed", 4)
    assert (tmp_path / "resumed" / "history.csv").read_text() == (tmp_path / "reference" / "history.csv").read_text()
    for a, b in zip(reference, resumed):
        np.testing.assert_array_equal(a, b)


def test_a_run_started_before_the_flag_resumes_with_the_keras_loop(auto_kernel_run, tmp_path):
    out = tmp_path / "old"
    shutil.copytree(auto_kernel_run, out)  # its config.json is edited below
    saved = json.loads((out / "config.json").read_text())
    del saved["lstm_kernel"]  # as a config.json written before --lstm-kernel existed
    (out / "config.json").write_text(json.dumps(saved))
    experiment, _ = train_attention_lstm.parse_args(["--resume", str(out)])
    assert experiment.training.lstm_kernel == "keras"  # its checkpoints hold the loop's layers
    experiment, _ = train_attention_lstm.parse_args(["--config", str(out / "config.json"), "--out", str(tmp_path)])
    assert experiment.training.lstm_kernel == "auto"  # a new run
