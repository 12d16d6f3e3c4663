import json

import keras
import numpy as np
import pytest

import compare_runs
import train_attention_lstm
from serattn.analysis.attention import attention_diagnostics
from serattn.errors import InputError
from serattn.models.attention_lstm import build_analysis_model, build_attention_lstm, build_basic_lstm
from serattn.models.pooling import (AttentiveStatsPooling, MaskedFunctionals, MultiHeadPooling,
                                    speaker_functional_statistics)
from serattn.training.batches import pad_batch
from serattn.training.trainer import predict_with_attention, trainer_for

VARIANTS = [("attentive-stats", 1, 2), ("multihead", 3, 3), ("attention+mean", 1, 2), ("attention+stats", 1, 3),
            ("attention+functionals", 1, 1), ("class-attention", 1, 4)]  # pooling, heads, size / units
TINY = ["--units", "8", "--attention-units", "4", "--epochs", "2", "--patience", "2", "--batch-size", "16",
        "--recurrent-dropout", "0", "--quiet"]


def outputs(model, sequences, length=None):
    batch, mask = pad_batch(sequences, length)
    analysis = build_analysis_model(model)
    return [np.asarray(t) for t in analysis({"features": batch, "mask": mask}, training=False)] + [mask]


def padding_changes_nothing(model, sequences):
    """The analysis outputs of ``sequences`` padded to their longest and to 45 frames agree, and padding
    gets no attention; returns those of the shorter padding."""
    p0, w0, z0, m0 = outputs(model, sequences)
    p1, w1, z1, m1 = outputs(model, sequences, length=45)
    assert np.all(w1[~m1] == 0.0)  # exactly zero on padding
    np.testing.assert_allclose(w1.sum(axis=1), 1.0, rtol=1e-6)
    for first, second in [(p0, p1), (z0, z1), (w0[m0], w1[m1])]:
        np.testing.assert_allclose(first, second, atol=1e-5)
    return p0, w0, z0, m0


@pytest.mark.parametrize("pool_inputs", [False, True])
@pytest.mark.parametrize("pooling, heads, factor", VARIANTS + [("attention", 1, 1)])
def test_variant_is_masked_padding_invariant_and_sized(pooling, heads, factor, pool_inputs):
    if pooling == "attention" and not pool_inputs:
        return  # the published model: tests/models/test_model.py
    rng = np.random.default_rng(0)
    model = build_attention_lstm(6, 4, units=10, attention_units=5, pooling=pooling, heads=heads,
                                 pool_inputs=pool_inputs)
    size = 10 + 6 if pool_inputs else 10  # LSTM units (+ input features)
    assert model.get_layer("attention_representation").output.shape == (None, size * factor)
    sequences = [rng.normal(size=(n, 6)).astype(np.float32) for n in (7, 19)]
    p0, w0, z0, m0 = outputs(model, sequences)
    p1, w1, z1, m1 = outputs(model, sequences, length=45)
    assert np.all(w1[~m1] == 0.0)  # exactly zero on padding
    np.testing.assert_allclose(w1.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p0, p1, atol=1e-5)
    np.testing.assert_allclose(z0, z1, atol=1e-5)
    np.testing.assert_allclose(w0[m0], w1[m1], atol=1e-5)


def test_attentive_stats_are_the_weighted_mean_and_std():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(2, 5, 3)).astype(np.float32)
    weights = rng.random((2, 5)).astype(np.float32)
    weights /= weights.sum(1, keepdims=True)
    pooled = np.asarray(AttentiveStatsPooling()(values, weights))
    mean = np.einsum("bt,btu->bu", weights, values)
    std = np.sqrt(np.einsum("bt,btu->bu", weights, (values - mean[:, None]) ** 2) + 1e-6)
    np.testing.assert_allclose(pooled, np.concatenate([mean, std], 1), rtol=1e-4, atol=1e-5)


def test_functionals_are_those_of_the_valid_frames_alone():
    from scipy import stats

    rng = np.random.default_rng(6)
    frames = rng.normal(size=(9, 3)).astype(np.float32)
    padded = np.concatenate([frames, np.full((5, 3), 50.0, np.float32)])[None]  # loud padding must not count
    mask = np.arange(14)[None] < 9
    got = np.asarray(MaskedFunctionals()(padded, mask))[0].reshape(9, 3)
    time = np.linspace(0, 1, 9)
    expected = [frames.mean(0), frames.std(0), stats.skew(frames), stats.kurtosis(frames), frames.min(0),
                frames.max(0), time[frames.argmin(0)], time[frames.argmax(0)], np.polyfit(time, frames, 1)[0]]
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-4, atol=1e-4)


def test_speaker_statistics_standardize_each_speakers_functionals():
    rng = np.random.default_rng(2)
    sequences = [rng.normal(loc=3.0 * (i % 2), size=(int(rng.integers(5, 30)), 4)).astype(np.float32)
                 for i in range(12)]
    speakers = np.array(["a", "b"] * 6)
    is_copy = np.zeros(12, bool)
    is_copy[[10, 11]] = True  # copies of a and b: scaled with their originals' statistics, not shifting them
    sequences[10] = sequences[10] * 5
    statistics = speaker_functional_statistics(sequences, speakers, is_copy, batch_size=5)
    assert statistics.shape == (12, 2, 9 * 4)
    functionals = np.concatenate([np.asarray(MaskedFunctionals()(*pad_batch([s]))) for s in sequences])
    for speaker in "ab":
        rows, sources = speakers == speaker, (speakers == speaker) & ~is_copy
        np.testing.assert_allclose(statistics[rows], np.broadcast_to(
            [functionals[sources].mean(0), functionals[sources].std(0)], (rows.sum(), 2, 36)), rtol=1e-5, atol=1e-5)

    model = build_attention_lstm(4, 3, units=5, attention_units=3, pooling="attention+functionals",
                                 functionals_norm="speaker")
    assert set(model.input) == {"features", "mask", "speaker_functionals"}
    standardized = keras.Model(model.inputs, model.get_layer("functionals_norm").output)
    batch, mask = pad_batch(sequences)
    z = np.asarray(standardized({"features": batch, "mask": mask, "speaker_functionals": statistics}))
    for speaker in "ab":  # each speaker's original utterances: mean 0, std 1 per functional
        sources = (speakers == speaker) & ~is_copy
        np.testing.assert_allclose(z[sources].mean(0), 0.0, atol=1e-4)
        np.testing.assert_allclose(z[sources].std(0), 1.0, atol=1e-3)
    with pytest.raises(InputError, match="needs a pooling with functionals"):
        build_attention_lstm(4, 3, pooling="attention", functionals_norm="speaker")


def test_functionals_ablation_swaps_attention_for_the_mean():
    model = build_basic_lstm(6, 4, units=10, pooling="mean+functionals")
    assert model.get_layer("pooled").output.shape == (None, 10 + 9 * 6)
    attention = build_attention_lstm(6, 4, units=10, attention_units=5, pooling="attention+functionals")
    assert attention.get_layer("pooled").output.shape == (None, 10 + 9 * 6)
    assert "attention_weights" in [layer.name for layer in attention.layers]


def test_multihead_concatenates_one_weighted_mean_per_head():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(1, 4, 2)).astype(np.float32)
    heads = np.zeros((1, 4, 2), np.float32)
    heads[0, 1, 0] = heads[0, 3, 1] = 1.0  # head 0 looks at frame 1, head 1 at frame 3
    pooled = np.asarray(MultiHeadPooling()(values, heads))
    np.testing.assert_allclose(pooled[0], np.concatenate([values[0, 1], values[0, 3]]), atol=1e-6)


@pytest.mark.parametrize("pooling, heads, factor", VARIANTS)
def test_variant_saves_and_loads_in_safe_mode(tmp_path, pooling, heads, factor):
    rng = np.random.default_rng(3)
    model = build_attention_lstm(6, 4, units=10, attention_units=5, pooling=pooling, heads=heads,
                                 augment={"time_mask": 3, "feature_mask": 2, "noise_std": 0.1, "seed": 1},
                                 pooled_dropout=0.3, pool_inputs=pooling == "attentive-stats")
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    sequences = [rng.normal(size=(n, 6)).astype(np.float32) for n in (9, 14)]
    for before, after in zip(outputs(model, sequences), outputs(loaded, sequences)):
        np.testing.assert_allclose(before, after, atol=1e-6)


def test_trainer_view_shares_weights_and_agrees_on_post_padding():
    rng = np.random.default_rng(4)
    model = build_attention_lstm(6, 4, units=10, attention_units=5, pooling="multihead", heads=2, pool_inputs=True)
    model.compile(loss="sparse_categorical_crossentropy")
    view = trainer_for(model, "post")
    assert view is not model and view.get_layer("lstm1") is model.get_layer("lstm1")
    batch, mask = pad_batch([rng.normal(size=(n, 6)).astype(np.float32) for n in (8, 21)])
    inputs = {"features": batch, "mask": mask}
    np.testing.assert_allclose(np.asarray(view(inputs)), np.asarray(model(inputs)), atol=1e-5)


def test_multihead_weights_per_head_average_to_the_attention():
    rng = np.random.default_rng(5)
    model = build_attention_lstm(6, 4, units=10, attention_units=5, pooling="multihead", heads=3)
    result = predict_with_attention(model, [rng.normal(size=(n, 6)).astype(np.float32) for n in (5, 12, 30)])
    assert [h.shape for h in result["head_weights"]] == [(5, 3), (12, 3), (30, 3)]
    for heads, weights in zip(result["head_weights"], result["weights"]):
        np.testing.assert_allclose(heads.sum(0), 1.0, rtol=1e-5)
        np.testing.assert_allclose(heads.mean(1), weights, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(pooling="max"), "unknown pooling 'max'"),
    (dict(pooling="attention", heads=2), "needs --pooling multihead"),
    (dict(pooling="attentive-stats", masked=False), "needs the padding mask"),
])
def test_bad_pooling_arguments_are_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        build_attention_lstm(6, 4, **kwargs)


def test_diagnostics_of_uniform_and_one_hot_attention():
    one_hot = np.zeros(20)
    one_hot[3] = 1.0
    values = np.concatenate([np.full(10, 0.1), one_hot])
    report = attention_diagnostics(values, np.array([10, 20]))
    assert report["attention_effective_width"] == pytest.approx((1.0 + 1 / 20) / 2)
    assert report["attention_top10_mass"] == pytest.approx((0.1 + 1.0) / 2)


def test_cv_run_writes_heads_and_diagnostics(feature_file, tmp_path, capsys):
    out = tmp_path / "mh"
    assert train_attention_lstm.main(["--data", str(feature_file), "--cv", "kfold-speakers", "2", "--pooling",
                                      "multihead", "--heads", "2", "--out", str(out), *TINY]) == 0
    for folder in (out, out / "fold-00"):
        with np.load(folder / "attention.npz") as attention:
            assert attention["head_weights"].shape == (len(attention["weights"]), 2)
            np.testing.assert_allclose(attention["head_weights"].mean(1), attention["weights"], atol=1e-6)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert 0 < metrics["attention_effective_width"] <= 1 and 0 < metrics["attention_top10_mass"] <= 1
    config = json.loads((out / "fold-00" / "config.json").read_text())
    assert config["pooling"] == "multihead" and config["heads"] == 2
    assert compare_runs.main([str(out), "--csv"]) == 0
    assert "attention width (%),top-10% mass (%)" in capsys.readouterr().out
    import attention_visualize  # the figure script draws one panel per head

    assert attention_visualize.main([str(out), "--split", "test"]) in (0, None)
    assert (out / "figures" / "attention_slots_heads_test.png").is_file()


@pytest.mark.parametrize("flags, message", [
    (["--model", "basic-lstm", "--pooling", "attentive-stats"], "does not apply to --model basic-lstm"),
    (["--pooling", "mean"], "does not apply to --model attention-lstm"),
    (["--heads", "3"], "needs --pooling multihead"),
    (["--pooling", "attention+mean", "--no-mask"], "needs the padding mask"),
    (["--model", "basic-lstm", "--time-mask", "5"], "attention-lstm only"),
    (["--label-smoothing", "1.5"], r"--label-smoothing must be in \[0, 1\)"),
    (["--norm", "speaker", "--functionals-norm", "speaker"], "needs a pooling with functionals"),
    (["--pooling", "attention+functionals", "--functionals-norm", "speaker"], "use it with --norm speaker, not "
                                                                                "--norm global"),
])
def test_bad_pooling_flags_are_refused(feature_file, flags, message):
    with pytest.raises(InputError, match=message):
        train_attention_lstm.parse_args(["--data", str(feature_file), *flags])


def test_pooling_defaults_per_model(feature_file):
    def pooling(*flags):
        experiment, _ = train_attention_lstm.parse_args(["--data", str(feature_file), *flags])
        return experiment.model.pooling

    assert pooling() == "attention"
    assert pooling("--model", "basic-lstm") == "mean"


@pytest.mark.parametrize("flags", [["--preset", "recommended"],
                                   ["--model", "basic-lstm", "--pooling", "mean+functionals"]])
def test_functionals_runs_train_save_and_reload_in_safe_mode(feature_file, tmp_path, flags):
    out = tmp_path / "run"
    assert train_attention_lstm.main(["--data", str(feature_file), "--out", str(out), *flags, *TINY]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["pooling"] in ("attention+functionals", "mean+functionals")
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    functionals = model.get_layer("functionals_norm")  # trained: batch statistics moved off their start
    assert not np.allclose(np.asarray(functionals.moving_mean), 0.0)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["ua"] <= 1.0 and np.asarray(metrics["confusion"]).shape == (5, 5)


def test_speaker_functionals_run_predicts_with_each_speakers_statistics(feature_file, tmp_path):
    out = tmp_path / "run"
    assert train_attention_lstm.main(["--data", str(feature_file), "--out", str(out), "--preset", "recommended",
                                      "--norm", "speaker", "--functionals-norm", "speaker", "--cv", "kfold-speakers",
                                      "2", *TINY]) == 0
    fold = out / "fold-00"
    config = json.loads((fold / "config.json").read_text())
    assert config["functionals_norm"] == "speaker" and config["pooling"] == "attention+functionals"
    model = keras.saving.load_model(fold / "model.keras", safe_mode=True)
    assert "speaker_functionals" in model.input
    # The saved test probabilities are the model's on per-speaker normalized frames and statistics.
    from serattn.features.feature_set import load_feature_set
    from serattn.features.normalization import Normalization
    from serattn.runs.reading import open_run
    from serattn.training.trainer import utterance_inputs

    run = open_run(fold)
    saved = run.predictions()
    is_test = saved["split"] == "test"
    ids = saved["id"][is_test]
    probabilities = np.stack([saved[f"p_{c}"][is_test] for c in run.classes], 1)
    data = load_feature_set(feature_file)
    test = Normalization("speaker").apply(data.subset(np.isin(data.ids, ids)))
    assert sorted(test.ids) == sorted(ids) and len(set(test.speakers)) > 1
    order = [list(test.ids).index(i) for i in ids]
    again = predict_with_attention(model, test.sequences(), 16, utterance_inputs=utterance_inputs(test, "speaker"))
    np.testing.assert_allclose(again["probabilities"][order], probabilities, atol=2e-5)
    # Another speaker's statistics give other probabilities: the input is used.
    swapped = utterance_inputs(test, "speaker")["speaker_functionals"][::-1].copy()
    other = predict_with_attention(model, test.sequences(), 16, utterance_inputs={"speaker_functionals": swapped})
    assert np.abs(other["probabilities"] - again["probabilities"]).max() > 1e-3


def test_region_attention_is_masked_padding_invariant_and_agrees_with_the_trainer_view():
    rng = np.random.default_rng(6)
    model = build_attention_lstm(6, 4, units=10, attention_units=5, pooling="region-attention",
                                 augment={"time_mask": 3, "feature_mask": 2, "noise_std": 0.1, "seed": 1})
    sequences = [rng.normal(size=(n, 6)).astype(np.float32) for n in (7, 19)]
    padding_changes_nothing(model, sequences)
    model.compile(loss="sparse_categorical_crossentropy")
    view = trainer_for(model, "post")  # its LSTM runs unmasked: outputs on padding too, which must not count
    assert view is not model
    batch, mask = pad_batch(sequences, 45)
    inputs = {"features": batch, "mask": mask}
    np.testing.assert_allclose(np.asarray(view(inputs)), np.asarray(model(inputs)), atol=1e-5)


def test_moving_average_is_the_mean_of_the_valid_frames_in_the_window():
    from serattn.models.pooling import MaskedMovingAverage

    values = np.arange(12, dtype=np.float32).reshape(1, 6, 2)
    mask = np.array([[True, True, True, True, False, False]])
    np.testing.assert_allclose(np.asarray(MaskedMovingAverage(3)(values, mask))[0],
                               [[1, 2], [2, 3], [4, 5], [5, 6], [0, 0], [0, 0]])


@pytest.mark.parametrize("pooling", ["region-attention", "evidence-attention"])
def test_region_values_cannot_carry_a_cue_past_its_end(pooling):
    from serattn.models.pooling import EVIDENCE_REGION_WIDTH, LOCAL_VALUE_WIDTH, REGION_WIDTH

    rng = np.random.default_rng(7)
    model = build_attention_lstm(6, 4, units=10, attention_units=5, pooling=pooling)
    probe = keras.Model(model.inputs, [model.get_layer("region_values").output, model.get_layer("lstm1").output])
    utterance = rng.normal(size=(1, 90, 6)).astype(np.float32)
    cue = utterance.copy()
    cue[:, 30:40] += 3.0  # a "cue" in frames 30-39
    mask = np.ones((1, 90), bool)
    (region, lstm), (region_cue, lstm_cue) = [[np.asarray(t)[0] for t in probe({"features": u, "mask": mask})]
                                              for u in (utterance, cue)]
    reach = LOCAL_VALUE_WIDTH // 2 + (REGION_WIDTH if pooling == "region-attention" else EVIDENCE_REGION_WIDTH) // 2
    changed = np.abs(region_cue - region).max(axis=1) > 1e-6
    assert changed[30:40].all() and not changed[:30 - reach].any() and not changed[40 + reach:].any()
    assert np.abs(lstm_cue - lstm)[40 + reach:].max() > 1e-3  # the LSTM outputs carry it to the end


def test_class_attention_reads_each_class_from_its_own_head():
    rng = np.random.default_rng(8)
    model = build_attention_lstm(6, 4, units=10, attention_units=5, pooling="class-attention")
    sequences = [rng.normal(size=(n, 6)).astype(np.float32) for n in (7, 19, 30)]
    p0, w0, z0, m0 = padding_changes_nothing(model, sequences)
    # An utterance's attention is the head of its predicted class...
    batch, mask = pad_batch(sequences)
    heads = np.asarray(keras.Model(model.inputs, model.get_layer("class_attention").output)(
        {"features": batch, "mask": mask}))  # (batch, frames, classes)
    assert heads.shape[-1] == 4
    np.testing.assert_allclose(w0, heads[np.arange(3), :, p0.argmax(axis=1)], atol=1e-6)
    # ...and class k's logit reads block k of the representation only.
    output = model.get_layer("output")
    blocks = z0.reshape(3, 4, 10)
    changed = blocks.copy()
    changed[:, 1:] += rng.normal(size=changed[:, 1:].shape)
    log_ratio = [np.log(np.asarray(output(b.reshape(3, 40)))) for b in (blocks, changed)]
    logit0 = [(np.asarray(output.kernel)[0] * b[:, 0]).sum(-1) + np.asarray(output.bias)[0] for b in (blocks, changed)]
    np.testing.assert_allclose(logit0[0], logit0[1], atol=1e-6)
    np.testing.assert_allclose(log_ratio[0] - log_ratio[0][:, :1], (blocks * np.asarray(output.kernel)).sum(-1)
                               + np.asarray(output.bias) - logit0[0][:, None], atol=1e-4)


@pytest.mark.parametrize("pooling", ["class-attention", "evidence-attention", "guided-evidence-attention"])
def test_attention_per_class_refuses_numeric_targets(pooling):
    with pytest.raises(InputError, match=f"--pooling {pooling} has one attention per class and needs --target "
                                         "emotion alone, got --target emotion,arousal"):
        train_attention_lstm.parse_args(["--data", "x.npz", "--pooling", pooling, "--target", "emotion,arousal"])
    with pytest.raises(InputError, match="predicts classes only"):
        build_attention_lstm(6, 4, pooling=pooling, num_values=1)


def test_evidence_attention_refuses_pooled_dropout_which_would_zero_its_logits():
    with pytest.raises(InputError, match="--pooled-dropout does not apply to --pooling guided-evidence-attention: "
                                         "its logits are its pooled evidence"):
        train_attention_lstm.parse_args(["--data", "x.npz", "--preset", "localizing", "--pooled-dropout", "0.2"])
    with pytest.raises(InputError, match="--pooled-dropout does not apply"):
        build_attention_lstm(6, 4, pooling="evidence-attention", pooled_dropout=0.2)


def test_evidence_attention_logits_are_each_class_own_attended_evidence():
    rng = np.random.default_rng(9)
    model = build_attention_lstm(6, 4, units=10, attention_units=5, pooling="evidence-attention")
    sequences = [rng.normal(size=(n, 6)).astype(np.float32) for n in (7, 19, 30)]
    padding_changes_nothing(model, sequences)
    model.compile(loss="sparse_categorical_crossentropy")
    batch, mask = pad_batch(sequences, 45)
    inputs = {"features": batch, "mask": mask}
    view = trainer_for(model, "post")  # its LSTM runs unmasked: outputs on padding must not count
    np.testing.assert_allclose(np.asarray(view(inputs)), np.asarray(model(inputs)), atol=1e-5)
    # Class k attends by softmax over time of its evidence times its sharpness, and its logit is that
    # evidence pooled with that attention: no weights between the pooled vector and the class.
    model.get_layer("class_sharpness").log_factor.assign(np.log([0.5, 1.0, 2.0, 4.0]).astype(np.float32))
    evidence, heads, probabilities = [np.asarray(t) for t in keras.Model(
        model.inputs, [model.get_layer(name).output for name in ("class_evidence", "class_attention", "output")])(inputs)]
    scores = np.where(mask[..., None], evidence * [0.5, 1.0, 2.0, 4.0], -np.inf)
    expected = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(heads, expected / expected.sum(axis=1, keepdims=True), atol=1e-5)
    logits = (heads * evidence).sum(axis=1)  # (batch, classes)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probabilities, softmax / softmax.sum(axis=1, keepdims=True), atol=1e-5)
    assert not model.get_layer("output").weights


def test_guided_evidence_attention_adds_a_frame_classifier_that_only_the_frame_loss_trains():
    import tensorflow as tf
    from serattn.models.pooling import FRAME_GUIDE_SHARPNESS
    from serattn.training.frame_loss import FRAME_TARGETS, frame_loss_view, frame_targets

    rng = np.random.default_rng(4)
    model = build_attention_lstm(6, 3, units=10, attention_units=5, pooling="guided-evidence-attention")
    sequences = [rng.normal(size=(n, 6)).astype(np.float32) for n in (9, 21, 30)]
    padding_changes_nothing(model, sequences)
    batch, mask = pad_batch(sequences, 45)
    inputs = {"features": batch, "mask": mask}
    # Class k's attention scores: its evidence times its sharpness plus the frame classifier's scores times
    # the guide's factor (8 at the start).
    evidence, frame_scores, heads = [np.asarray(t) for t in keras.Model(model.inputs, [
        model.get_layer(name).output for name in ("class_evidence", "frame_evidence", "class_attention")])(inputs)]
    scores = np.where(mask[..., None], evidence + FRAME_GUIDE_SHARPNESS * frame_scores, -np.inf)
    expected = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(heads, expected / expected.sum(axis=1, keepdims=True), atol=1e-5)

    def gradients(net, feed, loss_of):
        with tf.GradientTape() as tape:
            probabilities = net(feed, training=True)
            loss = loss_of(probabilities) + sum(net.losses)
        variables = [model.get_layer(name).kernel for name in ("frame_evidence", "class_evidence")]
        return [0.0 if g is None else np.abs(np.asarray(g)).max() for g in tape.gradient(loss, variables)]  # None: no path

    labels = np.array([0, 1, 2])
    utterance_loss = keras.losses.SparseCategoricalCrossentropy()
    # The utterance's loss cannot move the frame classifier...
    frame_part, class_part = gradients(model, inputs, lambda p: utterance_loss(labels, p))
    assert frame_part == 0 and class_part > 0
    # ...the frame loss does, and it alone does not move the class evidence.
    view = frame_loss_view(model)
    feed = {**inputs, FRAME_TARGETS: frame_targets(labels, np.ones(3), 3)}
    frame_part, class_part = gradients(view, feed, lambda p: 0.0)
    assert frame_part > 0 and class_part == 0
    np.testing.assert_allclose(np.asarray(view(feed)), np.asarray(model(inputs)), atol=1e-6)  # same output


def test_the_guides_factor_is_exempt_from_weight_decay():
    from serattn.training.trainer import compile_model

    model = build_attention_lstm(6, 3, units=10, attention_units=5, pooling="guided-evidence-attention")
    compile_model(model, 3, 0.1, weight_decay=1.0)
    guide, sharpness = model.get_layer("frame_guide").log_factor, model.get_layer("class_sharpness").log_factor
    sharpness.assign(np.ones(3, np.float32))
    before = np.asarray(guide).copy()
    variables = model.trainable_variables
    model.optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in variables])  # weight decay alone
    np.testing.assert_array_equal(np.asarray(guide), before)
    assert np.all(np.asarray(sharpness) < 1.0)
