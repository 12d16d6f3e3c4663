import dataclasses

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from serattn.errors import InputError
from serattn.training.protocols import hold_out_validation, split_validation_speakers
from serattn.models.layers import UnweightedAverageRecall
from serattn.training.batches import EpochBatches, bucketed_batch_indices
from serattn.training.protocols import class_weights
from serattn.testing import make_feature_set


@pytest.mark.filterwarnings("ignore:y_pred contains classes")
def test_keras_ua_metric_matches_scikit_learn():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, size=200)
    probabilities = rng.dirichlet(np.ones(5), size=200)
    metric = UnweightedAverageRecall(5)
    metric.update_state(true[:120], probabilities[:120])
    metric.update_state(true[120:], probabilities[120:], sample_weight=np.full(80, 3.0))
    assert float(metric.result()) == pytest.approx(
        balanced_accuracy_score(true, probabilities.argmax(1)), abs=1e-6)


def test_buckets_cover_every_utterance_once_with_little_padding():
    rng = np.random.default_rng(0)
    lengths = rng.lognormal(np.log(180), 0.6, size=1000).astype(int) + 1
    batches = bucketed_batch_indices(lengths, 32, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert lengths.sum() / padded > 0.85  # vs ~0.3 when batches are random


def test_epoch_batches_reshuffle_per_epoch_and_repeat_per_seed():
    sequences = [np.zeros((n, 2), np.float32) for n in range(1, 41)]
    batches = EpochBatches(sequences, np.zeros(40), np.ones(40), batch_size=8, seed=3)
    first = [b.tolist() for b in batches.batch_indices(0)]
    assert first == [b.tolist() for b in EpochBatches(sequences, np.zeros(40), np.ones(40), 8, 3).batch_indices(0)]
    assert first != [b.tolist() for b in batches.batch_indices(1)]
    inputs, targets, weights = next(iter(batches()))
    assert inputs["features"].shape[1] == inputs["mask"].sum(1).max()  # padded to its own longest


def test_pad_to_max_pads_every_batch():
    sequences = [np.ones((n, 2), np.float32) for n in (3, 5, 9)]
    batches = EpochBatches(sequences, [0, 1, 0], [1, 1, 1], batch_size=2, seed=0, bucketing=False,
                           pad_to=12, padding="pre")
    for inputs, _, _ in batches():
        assert inputs["features"].shape[1] == 12
        assert inputs["mask"][:, -1].all()  # pre-padding: real frames at the end


def test_class_weights():
    labels = np.array(["N"] * 6 + ["A"] * 2)
    np.testing.assert_allclose(class_weights("balanced", ["A", "N"], labels), [2.0, 8 / 12])
    np.testing.assert_allclose(class_weights("none", ["A", "N"], labels), [1.0, 1.0])
    np.testing.assert_allclose(class_weights("A=1.5", ["A", "N"], labels), [1.5, 1.0])
    with pytest.raises(InputError, match="class 'X'"):
        class_weights("X=2", ["A", "N"], labels)
    with pytest.raises(InputError, match="CLASS=WEIGHT"):
        class_weights("A=heavy", ["A", "N"], labels)


def test_validation_speakers_are_disjoint_from_training():
    speakers = np.repeat([f"s{i}" for i in range(10)], 5)
    is_val = split_validation_speakers(speakers, "0.2", seed=0)
    assert len(set(speakers[is_val])) == 2
    assert not set(speakers[is_val]) & set(speakers[~is_val])
    assert set(speakers[split_validation_speakers(speakers, "s3,s4", 0)]) == {"s3", "s4"}
    assert split_validation_speakers(speakers, "3", 0).sum() == 15
    assert not split_validation_speakers(speakers, "0", 0).any()
    with pytest.raises(InputError, match="s99"):
        split_validation_speakers(speakers, "s99", 0)
    with pytest.raises(InputError, match="no speaker-disjoint"):
        split_validation_speakers(np.array(["a", "a"]), "0.5", 0)


def test_validation_speakers_leave_every_class_some_training_utterances(capsys):
    # most speakers have one class, as on natural corpora; only s3 speaks Angry
    speakers = np.repeat([f"s{i}" for i in range(10)], 4)
    labels = np.where(speakers == "s3", "Angry", np.where(np.isin(speakers, ["s0", "s1", "s2"]), "Happy", "Neutral"))
    old = {seed: split_validation_speakers(speakers, "0.2", seed) for seed in range(30)}
    new = {seed: split_validation_speakers(speakers, "0.2", seed, labels) for seed in range(30)}
    took_angry = [seed for seed in old if "s3" in speakers[old[seed]]]
    assert took_angry and len(took_angry) < 30
    for seed in range(30):
        assert "s3" not in speakers[new[seed]] and len(set(speakers[new[seed]])) == 2
        if seed not in took_angry:  # the old choice kept every class: it stays the choice
            assert np.array_equal(new[seed], old[seed])
    seed = took_angry[0]
    assert np.array_equal(split_validation_speakers(speakers, "0.2", seed, labels), new[seed])  # deterministic
    assert "--val-speakers 0.2: draw " in capsys.readouterr().err


def test_validation_speakers_that_cannot_keep_every_class_are_refused():
    data = make_feature_set(n=24, classes=("A", "B", "C"), speakers=3, split=False)
    data = dataclasses.replace(data, labels=np.array([{"s00": "A", "s01": "B", "s02": "C"}[s] for s in data.speakers]))
    with pytest.raises(InputError, match=r"class\(es\) [ABC] have no training utterances in 'out' once validation "
                                         r"speakers are held out \(none of 100 draws of 1 keeps every class\)"):
        hold_out_validation(data, ["A", "B", "C"], "1", 1, "out")


def test_training_stops_at_a_non_finite_loss_and_keeps_the_best_epoch_before_it(tmp_path):
    import keras

    from serattn.training.trainer import ResumableEarlyStopping

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)  # as after a first training step
    model.stop_training = False  # as fit sets it
    stopper = ResumableEarlyStopping(tmp_path / "checkpoint", patience=5)
    stopper.set_model(model)
    stopper.on_epoch_end(0, {"loss": 1.2, "val_ua": 0.5})
    good = model.get_weights()
    assert not model.stop_training
    model.set_weights([np.full_like(w, np.nan) for w in good])
    stopper.on_epoch_end(1, {"loss": float("nan"), "val_ua": 0.9})  # a NaN model's UA must not win
    assert model.stop_training
    assert stopper.state["diverged_epoch"] == 2 and stopper.state["best_epoch"] == 1
    stopper.on_train_end()
    for kept, expected in zip(model.get_weights(), good):
        np.testing.assert_array_equal(kept, expected)
    # a resumed run sees where it diverged and trains no further (training.fit checks the state)
    resumed = ResumableEarlyStopping(tmp_path / "checkpoint", patience=5)
    resumed.set_model(model)
    assert resumed.restore() == 2 and resumed.state["diverged_epoch"] == 2
