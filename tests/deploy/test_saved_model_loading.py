"""A saved model loads in a fresh process with exactly the README's lines."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from serattn.training.batches import pad_batch

ROOT = Path(__file__).resolve().parents[2]
README_PATH = "results/demo/model.keras"


def readme_loading_lines():
    """The README's python block that loads a model."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    loading = [block for block in blocks if "load_model" in block]
    assert len(loading) == 1, "the README should show one way to load a model"
    assert README_PATH in loading[0]
    return loading[0]


def test_readme_lines_load_a_trained_model_in_safe_mode(tmp_path):
    import keras

    from serattn.models.attention_lstm import build_attention_lstm
    from serattn.training.trainer import compile_model

    model = build_attention_lstm(6, 3, units=4, attention_units=2)
    compile_model(model, 3, 1e-3)  # the UA metric is saved with the model, as a trained run's is
    path = tmp_path / "model.keras"
    model.save(path)
    frames = np.random.default_rng(0).normal(size=(2, 9, 6)).astype(np.float32)
    batch, mask = pad_batch(list(frames))
    expected = model.predict({"features": batch, "mask": mask}, verbose=0)

    script = readme_loading_lines().replace(README_PATH, str(path)) + (
        f"\nimport numpy as np\n"
        f"batch = np.load({str(tmp_path / 'batch.npy')!r}); mask = np.load({str(tmp_path / 'mask.npy')!r})\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, model.predict({{'features': batch, 'mask': mask}}, verbose=0))\n")
    np.save(tmp_path / "batch.npy", batch)
    np.save(tmp_path / "mask.npy", mask)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-6)
    assert keras.saving.get_registered_object("serattn>UnweightedAverageRecall") is not None
