"""The registry of pooling variants (serattn.poolings) is the one place a variant is named."""

import dataclasses

import keras
import numpy as np
import pytest

import train_attention_lstm
from serattn.config import ModelConfig, TrainConfig
from serattn.errors import InputError
from serattn.models.attention_lstm import FRAME_WEIGHTS, build_analysis_model, build_basic_lstm
from serattn.models.pooling import HEADS, check_pooling
from serattn.poolings import (ATTENTION_LSTM, BASIC_LSTM, POOLINGS, Pooling, default_pooling, has_functionals,
                              pooling_names)
from serattn.training.batches import pad_batch
from serattn.training.trainer import _is_published_head, build_model


def test_every_registered_pooling_has_a_head_and_one_source_of_attention():
    assert set(HEADS) == set(POOLINGS)
    assert {pooling.weights for pooling in POOLINGS.values()} - {None} <= set(FRAME_WEIGHTS)
    assert [default_pooling(model) for model in (ATTENTION_LSTM, BASIC_LSTM)] == ["attention", "mean"]
    choices = next(action.choices for action in train_attention_lstm.build_parser()._actions
                   if action.dest == "pooling")
    assert tuple(choices) == pooling_names() == pooling_names(ATTENTION_LSTM) + pooling_names(BASIC_LSTM)
    assert has_functionals("attention+functionals") and not has_functionals("max") and not has_functionals(["x"])


@pytest.mark.parametrize("name", list(POOLINGS))
def test_registered_pooling_is_accepted_built_and_loaded_in_safe_mode(name, tmp_path):
    pooling = POOLINGS[name]
    heads = 2 if pooling.heads else 1
    argv = ["--data", "x.npz", "--model", pooling.model, "--pooling", name, "--heads", str(heads)]
    experiment, _ = train_attention_lstm.parse_args(argv)
    model_config = dataclasses.replace(experiment.model, units=4, attention_units=3)
    assert model_config.pooling == name
    model = build_model(model_config, TrainConfig(epochs=1), num_features=3, num_classes=2)
    assert type(model.get_layer("attention_representation")).__name__ == pooling.layer
    assert _is_published_head(model) == pooling.published
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    rng = np.random.default_rng(0)
    batch, mask = pad_batch([rng.normal(size=(n, 3)).astype("float32") for n in (5, 3)])
    probabilities, weights, _ = build_analysis_model(loaded)({"features": batch, "mask": mask}, training=False)
    np.testing.assert_allclose(np.asarray(probabilities), np.asarray(model({"features": batch, "mask": mask})),
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(weights).sum(axis=1), 1.0, atol=1e-5)
    if pooling.weights is None:  # uniform over the valid frames
        np.testing.assert_allclose(np.asarray(weights)[1], [1 / 3] * 3 + [0, 0], atol=1e-6)


def test_constraints_come_from_the_registry():
    for name, pooling in POOLINGS.items():
        flags = {"model": pooling.model, "pooling": name}
        for field, value, allowed in [("heads", 2, pooling.heads), ("functionals_norm", "speaker", pooling.functionals),
                                      ("pool_inputs", True, pooling.pool_inputs), ("mask", False, not pooling.needs_mask)]:
            config = ModelConfig(**flags, **{field: value})
            if allowed:
                config.check()
            else:
                with pytest.raises(InputError):
                    config.check()


def test_unregistered_pooling_is_refused_with_the_existing_messages():
    with pytest.raises(InputError, match="--pooling max does not apply to --model attention-lstm; expected one of: "
                                         "attention, attentive-stats, multihead, attention[+]mean, attention[+]stats, "
                                         "attention[+]functionals, region-attention, class-attention, evidence-attention, "
                                         "guided-evidence-attention$"):
        ModelConfig(pooling="max").check()
    with pytest.raises(InputError, match="--pool-inputs does not apply to --pooling region-attention"):
        ModelConfig(pooling="region-attention", pool_inputs=True).check()
    with pytest.raises(InputError, match="--heads 2 needs --pooling multihead and must be at least 1"):
        ModelConfig(pooling="attention", heads=2).check()
    with pytest.raises(InputError, match=r"needs a pooling with functionals \(attention\+functionals or "
                                         r"mean\+functionals\), got --pooling mean"):
        ModelConfig(model="basic-lstm", pooling="mean", functionals_norm="speaker").check()
    with pytest.raises(InputError, match="unknown pooling 'max' for the attention LSTM; expected one of: attention,"):
        check_pooling("max")
    with pytest.raises(InputError, match="unknown pooling 'max'; expected one of: mean, last, mean[+]functionals$"):
        build_basic_lstm(3, 2, pooling="max")
    with pytest.raises(InputError, match="argument --pooling: invalid choice: 'max'"):
        train_attention_lstm.parse_args(["--data", "x.npz", "--pooling", "max"])


def test_a_new_variant_is_one_registration_and_one_head(monkeypatch):
    monkeypatch.setitem(POOLINGS, "attention-again", Pooling("attention-again", ATTENTION_LSTM, "AttentionPooling"))
    monkeypatch.setitem(HEADS, "attention-again", HEADS["attention"])
    experiment, _ = train_attention_lstm.parse_args(["--data", "x.npz", "--pooling", "attention-again"])
    model_config = dataclasses.replace(experiment.model, units=4, attention_units=3)
    model = build_model(model_config, TrainConfig(epochs=1), num_features=3, num_classes=2)
    assert "attention_weights" in [layer.name for layer in model.layers]
    with pytest.raises(InputError, match="--pooling attention-again needs the padding mask"):
        ModelConfig(pooling="attention-again", mask=False).check()


def test_preset_localizing_trains_its_frame_classifier_with_the_frame_loss(demo_corpus, tmp_path, monkeypatch):
    from serattn.runs.reading import open_run
    from serattn.training import frame_loss
    from serattn.training.trainer import build_model

    def frame_classifier_after_training(out):
        assert train_attention_lstm.main(["--data", str(demo_corpus["features"]), "--preset", "localizing",
                                          "--units", "8", "--epochs", "2", "--val-speakers", "1", "--seed", "3",
                                          "--quiet", "--out", str(out)]) == 0
        run = open_run(out)
        assert run.record.values["pooling"] == "guided-evidence-attention"
        trained = run.load_keras_model()
        initial = build_model(ModelConfig(pooling="guided-evidence-attention", units=8), TrainConfig(seed=3),
                              trained.input["features"].shape[-1], trained.output.shape[-1])
        return np.asarray(trained.get_layer("frame_evidence").kernel).ravel(), \
            np.asarray(initial.get_layer("frame_evidence").kernel).ravel()

    def off_its_start(trained, initial):
        """How far the trained kernel is from its initial one scaled (0: a multiple of it), relative."""
        scaled = initial * (trained @ initial / (initial @ initial))
        return np.linalg.norm(trained - scaled) / np.linalg.norm(trained)

    assert off_its_start(*frame_classifier_after_training(tmp_path / "localizing")) > 0.01  # the frame loss moved it
    # Without the frame loss nothing but AdamW's weight decay moves it (the utterance's loss does not reach it):
    # it stays its initial kernel, scaled.
    monkeypatch.setattr(frame_loss, "FRAME_LOSS_WEIGHT", 0.0)
    assert off_its_start(*frame_classifier_after_training(tmp_path / "no-frame-loss")) < 1e-5
