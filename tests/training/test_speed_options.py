"""Speed options keep results: the LSTM-mask-free training view, and the benchmark plumbing."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from serattn.training.batches import pad_batch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.workload import FAU_MAX_FRAMES, fau_like_labels, fau_like_lengths  # noqa: E402


def train_briefly(builder, use_view, padding="post", **kwargs):
    import keras
    import tensorflow as tf

    from serattn.training.batches import EpochBatches
    from serattn.training.trainer import compile_model, trainer_for

    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((int(n), 6)).astype(np.float32) for n in rng.integers(3, 30, 24)]
    keras.utils.set_random_seed(2)
    tf.config.experimental.enable_op_determinism()
    model = builder(6, 5, units=8, **kwargs)
    compile_model(model, 5, 1e-2)
    trainer = trainer_for(model, padding) if use_view else model
    batches = EpochBatches(sequences, rng.integers(0, 5, 24), np.ones(24), 8, seed=1, padding=padding)
    trainer.fit(batches.dataset(), epochs=1, verbose=0, shuffle=False)
    return model, trainer, sequences


@pytest.mark.parametrize("builder_name, kwargs", [("build_attention_lstm", {}),
                                                  ("build_basic_lstm", {"pooling": "last"})])
def test_training_view_gives_identical_weights(builder_name, kwargs):
    from serattn.models import attention_lstm as models

    builder = getattr(models, builder_name)
    reference, _, _ = train_briefly(builder, use_view=False, **kwargs)
    fast, trainer, _ = train_briefly(builder, use_view=True, **kwargs)
    assert trainer is not fast  # the view was used
    for a, b in zip(reference.get_weights(), fast.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_trained_model_keeps_its_mask_for_any_padding():
    from serattn.models.attention_lstm import build_analysis_model, build_attention_lstm

    model, _, sequences = train_briefly(build_attention_lstm, use_view=True)  # trains through the view
    analysis = build_analysis_model(model)
    outputs = []
    for length, padding in ((None, "post"), (50, "pre"), (50, "post")):
        batch, mask = pad_batch(sequences[:5], length, padding)
        outputs.append(np.asarray(analysis({"features": batch, "mask": mask}, training=False)[0]))
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)  # pre-padding needs the LSTM mask
    np.testing.assert_allclose(outputs[2], outputs[0], atol=1e-5)


def test_no_view_for_pre_padding_or_unmasked_models():
    from serattn.models.attention_lstm import build_attention_lstm
    from serattn.training.trainer import compile_model, trainer_for

    masked = build_attention_lstm(6, 5, units=8)
    unmasked = build_attention_lstm(6, 5, units=8, masked=False)
    for model in (masked, unmasked):
        compile_model(model, 5, 1e-3)
    assert trainer_for(masked, "pre") is masked
    assert trainer_for(unmasked, "post") is unmasked
    assert trainer_for(masked, "post") is not masked


def test_fau_like_workload_has_the_published_shape():
    lengths = fau_like_lengths()
    assert len(lengths) == 9_959 and lengths.max() == FAU_MAX_FRAMES
    assert 170 < lengths.mean() < 190
    assert 0.06 < lengths.sum() / (len(lengths) * FAU_MAX_FRAMES) < 0.09  # ~7% real when padded
    labels = fau_like_labels()
    assert abs(np.mean(labels == "N") - 0.561) < 0.002 and abs(np.mean(labels == "P") - 0.068) < 0.002


def test_results_file_lists_every_figure_with_goals(tmp_path):
    from benchmarks.bench import Figures
    from benchmarks.report import write_results

    figures = Figures()
    figures.add("speedup_bucketed_vs_padded", 12.5, "note")
    figures.add("ratio_vs_pytorch", 0.8, "")
    figures.add("extraction_realtime_factor", "skipped", "no corpus")
    info = {"versions": {"tensorflow": "x"}, "started": "now", "seconds": 60.0, "cpu": "cpu", "cores": 2,
            "memory_gib": 24, "platform": "linux", "load_before": (1, 1, 1), "load_after": (2, 2, 2),
            "commit": "abc"}
    write_results(tmp_path / "RESULTS.md", figures, info, "python benchmarks/bench.py --quick", quick=True)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| `speedup_bucketed_vs_padded` | 12.5 | >= 10 (met) | note |" in text
    assert ">= 1.0 (NOT met)" in text and "skipped" in text
    assert "python benchmarks/bench.py --quick" in text

    # A run of one section (--only scale) keeps the others' figures in their places and replaces its own.
    from benchmarks.report import previous_figures

    scale = Figures()
    scale.add("speedup_extraction_dask2", 1.8, "dask")
    scale.add("ratio_vs_pytorch", 1.2, "again")
    write_results(tmp_path / "RESULTS.md", scale, info, "python benchmarks/bench.py --only scale", quick=False,
                  kept=previous_figures(tmp_path / "RESULTS.md"))
    rows = [line for line in (tmp_path / "RESULTS.md").read_text().splitlines() if line.startswith("| `")]
    assert rows == ["| `speedup_bucketed_vs_padded` | 12.5 | >= 10 (met) | note |",
                    "| `ratio_vs_pytorch` | 1.2 | >= 1.0 (met) | again |",
                    "| `extraction_realtime_factor` | skipped |  | no corpus |",
                    "| `speedup_extraction_dask2` | 1.8 | >= 1.7 (met) | dask |"]


def test_torch_model_trains_on_the_same_shapes():
    torch = pytest.importorskip("torch")
    from benchmarks.torch_model import AttentionLSTM, make_train_step

    for rate in (0.5, 0.0):
        model = AttentionLSTM(32, 5, recurrent_dropout=rate)
        mask = torch.ones(4, 10, dtype=torch.bool)
        mask[0, 6:] = False
        step = make_train_step(model)
        losses = [step(torch.randn(4, 10, 32), mask, torch.tensor([0, 1, 2, 3]), torch.ones(4)) for _ in range(3)]
        assert np.isfinite(losses).all()
        model.eval()
        assert model(torch.randn(2, 7, 32), torch.ones(2, 7, dtype=torch.bool)).shape == (2, 5)


def test_pad_multiple_rounds_the_batch_length_up():
    batch, mask = pad_batch([np.ones((17, 2)), np.ones((5, 2))], multiple=16)
    assert batch.shape == (2, 32, 2) and mask.sum(axis=1).tolist() == [17, 5]
    assert pad_batch([np.ones((16, 2))], multiple=16)[0].shape == (1, 16, 2)


def test_xla_training_is_deterministic_and_saves_a_loadable_model(tmp_path):
    import subprocess

    from serattn.features.feature_set import save_feature_set
    from serattn.runs.folder import HISTORY_FILE, PREDICTIONS_FILE
    from serattn.testing import make_feature_set

    data = tmp_path / "frames.npz"
    save_feature_set(make_feature_set(n=40, speakers=4, seed=2), data)
    outs = [tmp_path / "first", tmp_path / "second"]
    for out in outs:  # a process each: Keras turns XLA off once op determinism is on in a process
        result = subprocess.run([sys.executable, "train_attention_lstm.py", "--data", str(data), "--jit-compile",
                                 "--units", "4", "--attention-units", "2", "--epochs", "2", "--quiet",
                                 "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "doesn't support `jit_compile=True`" not in result.stderr  # XLA really ran
    for name in (PREDICTIONS_FILE, HISTORY_FILE):
        assert (outs[0] / name).read_text() == (outs[1] / name).read_text()
    assert json.loads((outs[0] / "config.json").read_text())["jit_compile"] is True
