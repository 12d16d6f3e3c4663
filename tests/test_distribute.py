"""--strategy: tf.distribute set-up, and mirrored training on two logical CPUs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from serattn.data import save_feature_set
from serattn.distribute import check_tf_config

ROOT = Path(__file__).resolve().parent.parent

# Two logical CPU devices must exist before TensorFlow initializes: a fresh process.
MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, {root!r})
import train_attention_lstm
from serattn.distribute import get_strategy
flags = ["--data", {data!r}, "--units", "8", "--attention-units", "4", "--epochs", "3",
         "--patience", "3", "--batch-size", "16", "--quiet", "--seed", "3"]
for strategy in ("default", "mirrored"):
    train_attention_lstm.main(flags + ["--strategy", strategy, "--out", {out!r} + "/" + strategy])
print("REPLICAS", get_strategy("mirrored").num_replicas_in_sync)
"""


def test_mirrored_strategy_trains_like_the_default_one(feature_set, tmp_path):
    data = tmp_path / "features.npz"
    save_feature_set(feature_set, data)
    script = MIRRORED_SCRIPT.format(root=str(ROOT), data=str(data), out=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REPLICAS 2" in result.stdout
    # Each batch is split over the two devices and the gradients summed: the same training up to
    # floating-point order (measured: losses equal to ~0.3%, UA within a point or two).
    metrics = {s: json.loads((tmp_path / s / "metrics.json").read_text()) for s in ("default", "mirrored")}
    assert abs(metrics["mirrored"]["ua"] - metrics["default"]["ua"]) < 0.15
    losses = {s: [float(row.split(",")[1]) for row in (tmp_path / s / "history.csv").read_text().split()[1:]]
              for s in ("default", "mirrored")}
    assert len(losses["mirrored"]) == 3
    assert losses["mirrored"] == pytest.approx(losses["default"], rel=0.02)
    config = json.loads((tmp_path / "mirrored" / "config.json").read_text())
    assert config["strategy"] == "mirrored"


@pytest.mark.parametrize("text, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not valid"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "outside the 2 workers"),
])
def test_bad_tf_config_is_an_input_error(text, message):
    from serattn.errors import InputError

    with pytest.raises(InputError, match=message):
        check_tf_config(text)


def test_good_tf_config_passes_and_multiworker_is_refused_with_the_reason(monkeypatch):
    from serattn.distribute import get_strategy
    from serattn.errors import InputError

    text = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'
    assert check_tf_config(text)["task"]["index"] == 1
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(InputError, match="tensorflow/tensorflow#72388.*one seed or fold per machine"):
        get_strategy("multiworker")


def test_mixed_precision_is_refused_without_a_gpu():
    import tensorflow as tf

    from serattn.errors import InputError
    from serattn.training import use_mixed_precision

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present: mixed precision is allowed")
    with pytest.raises(InputError, match="--mixed-precision needs a GPU"):
        use_mixed_precision()
