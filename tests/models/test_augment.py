import json

import keras
import numpy as np
import pytest

import train_attention_lstm
from serattn.models.attention_lstm import build_attention_lstm
from serattn.models.augment import FrameAugment, SmoothedSparseCategoricalCrossentropy
from serattn.training.batches import pad_batch

TINY = ["--units", "8", "--attention-units", "4", "--epochs", "2", "--patience", "2", "--batch-size", "16",
        "--recurrent-dropout", "0", "--quiet"]


def padded(lengths, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    batch, mask = pad_batch([rng.normal(size=(n, dim)).astype(np.float32) + 3.0 for n in lengths], 40)
    return batch, mask


def test_augment_is_identity_at_inference():
    batch, mask = padded([10, 25, 40])
    layer = FrameAugment(time_mask=5, feature_mask=2, noise_std=0.5, seed=1)
    np.testing.assert_array_equal(np.asarray(layer(batch, mask, training=False)), batch)
    np.testing.assert_array_equal(np.asarray(layer(batch, mask)), batch)


def test_masks_stay_inside_valid_frames_and_bands():
    batch, mask = padded([10, 25, 40])
    keras.utils.set_random_seed(0)
    out = np.asarray(FrameAugment(time_mask=6, count=2, seed=3)(batch, mask, training=True))
    np.testing.assert_array_equal(out[~mask], batch[~mask])  # padding untouched
    zeroed = np.all(out == 0.0, axis=-1) & mask  # whole frames set to 0 (inputs are never 0 here)
    assert zeroed.sum() > 0 and zeroed.sum(axis=1).max() <= 12  # at most 2 stretches of 6 frames
    np.testing.assert_array_equal(out[mask & ~zeroed], batch[mask & ~zeroed])
    out = np.asarray(FrameAugment(feature_mask=3, count=1, seed=3)(batch, mask, training=True))
    bands = np.all(out == 0.0, axis=1)  # (batch, D): features zeroed on every frame
    for row, n in enumerate([10, 25, 40]):
        zeroed_features = np.flatnonzero(np.all(out[row, :n] == 0.0, axis=0))
        assert len(zeroed_features) <= 3 and np.all(np.diff(zeroed_features) == 1)
        np.testing.assert_array_equal(out[row, n:], batch[row, n:])
    assert bands.shape == (3, 6)


def test_noise_is_on_valid_frames_only_and_has_the_asked_spread():
    batch, mask = padded([40, 40, 40, 20])
    out = np.asarray(FrameAugment(noise_std=0.5, seed=2)(batch, mask, training=True))
    np.testing.assert_array_equal(out[~mask], batch[~mask])
    assert abs((out - batch)[mask].std() - 0.5) < 0.05


def test_augment_is_deterministic_given_its_seed_state():
    batch, mask = padded([12, 33])
    first = FrameAugment(time_mask=5, feature_mask=2, noise_std=0.1, seed=7)
    second = FrameAugment(time_mask=5, feature_mask=2, noise_std=0.1, seed=7)
    np.testing.assert_array_equal(np.asarray(first(batch, mask, training=True)),
                                  np.asarray(second(batch, mask, training=True)))


def test_augmented_model_predicts_like_the_plain_one():
    keras.utils.set_random_seed(1)
    plain = build_attention_lstm(6, 4, units=8, attention_units=4)
    keras.utils.set_random_seed(1)
    augmented = build_attention_lstm(6, 4, units=8, attention_units=4, pooled_dropout=0.5,
                                     augment={"time_mask": 5, "feature_mask": 2, "noise_std": 0.3, "seed": 1})
    augmented.set_weights(plain.get_weights())
    batch, mask = padded([12, 30])
    inputs = {"features": batch, "mask": mask}
    np.testing.assert_allclose(np.asarray(augmented(inputs)), np.asarray(plain(inputs)), atol=1e-6)


def test_label_smoothing_loss():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    targets = np.array([0, 2])
    smoothed = float(SmoothedSparseCategoricalCrossentropy(0.3)(targets, probabilities))
    target = np.full((2, 3), 0.1)
    target[[0, 1], targets] = 0.8
    assert smoothed == pytest.approx(float(np.mean(-(target * np.log(probabilities)).sum(1))), rel=1e-5)
    plain = keras.losses.SparseCategoricalCrossentropy()(targets, probabilities)
    assert float(SmoothedSparseCategoricalCrossentropy(0.0)(targets, probabilities)) == pytest.approx(float(plain))


def test_regularized_run_is_deterministic_and_uses_adamw(feature_file, tmp_path):
    flags = ["--data", str(feature_file), "--time-mask", "10", "--feature-mask", "2", "--input-noise", "0.2",
             "--pooled-dropout", "0.3", "--weight-decay", "0.01", "--label-smoothing", "0.1",
             "--pooling", "attentive-stats", *TINY]
    for name in ("a", "b"):
        assert train_attention_lstm.main([*flags, "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / "a" / "history.csv").read_text() == (tmp_path / "b" / "history.csv").read_text()
    assert (tmp_path / "a" / "predictions.csv").read_text() == (tmp_path / "b" / "predictions.csv").read_text()
    model = keras.saving.load_model(tmp_path / "a" / "model.keras", safe_mode=True)
    assert type(model.optimizer).__name__ == "AdamW" and model.optimizer.weight_decay == pytest.approx(0.01)
    assert model.get_layer("augment").time_mask == 10 and model.get_layer("pooled_dropout").rate == 0.3
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["label_smoothing"] == 0.1 and config["input_noise"] == 0.2


def test_presets_set_defaults_that_flags_override(feature_file):
    def flags(*argv):
        experiment, _ = train_attention_lstm.parse_args(["--data", str(feature_file), *argv])
        return experiment.to_flags()

    recommended = train_attention_lstm.PRESETS["recommended"]
    args = flags("--preset", "recommended")
    for key, value in recommended.items():
        assert args[key] == value or (key, value, args[key]) in [("functionals_norm", "auto", "batch"),
                                                                 ("functionals_fit", "auto", "joint")]
    # auto: the functionals are normalized like the frames, and config.json records which; per speaker, their
    # classifier is a fitted logistic regression wherever it applies (classes only)
    assert flags("--preset", "recommended", "--norm", "speaker")["functionals_norm"] == "speaker"
    assert flags("--preset", "recommended", "--norm", "speaker")["functionals_fit"] == "logreg"
    assert flags("--preset", "recommended", "--norm", "speaker", "--target", "emotion,arousal")["functionals_fit"] \
        == "joint"
    assert flags("--preset", "recommended", "--norm", "speaker", "--pooling", "attention")["functionals_norm"] == "batch"
    assert flags("--preset", "recommended", "--norm", "speaker", "--pooling", "attention")["functionals_fit"] == "joint"
    args = flags("--preset", "recommended", "--epochs", "3", "--pooling", "attention")
    assert args["epochs"] == 3 and args["pooling"] == "attention"
    assert flags("--preset", "recommended", "--learning-rate", "0.002")["learning_rate"] == 0.002
    assert flags("--preset", "published") == flags()


@pytest.mark.parametrize("pooling", ["attention", "attentive-stats"])
def test_training_view_keeps_the_smoothed_loss(pooling):
    from serattn.training.trainer import compile_model, trainer_for

    model = build_attention_lstm(6, 4, units=8, attention_units=4, pooling=pooling)
    compile_model(model, 4, 1e-3, label_smoothing=0.2)
    view = trainer_for(model, "post")
    assert view is not model and view.loss is model.loss
    assert isinstance(view.loss, SmoothedSparseCategoricalCrossentropy) and view.loss.smoothing == 0.2
