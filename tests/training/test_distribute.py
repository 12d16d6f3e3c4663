"""--strategy: tf.distribute set-up, mirrored training on two logical CPUs, two local workers."""

import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from serattn.features.feature_set import save_feature_set
from serattn.training.distribute import check_tf_config, worker_out

ROOT = Path(__file__).resolve().parents[2]

# Two logical CPU devices must exist before TensorFlow initializes: a fresh process.
MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, {root!r})
import train_attention_lstm
from serattn.training.distribute import get_strategy
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


def test_good_tf_config_passes():
    text = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'
    assert check_tf_config(text)["task"]["index"] == 1


@pytest.mark.parametrize("cluster, task, chief", [
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, True),
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "chief", "index": 0}, True),
    ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "worker", "index": 0}, False),
])
def test_only_the_chief_keeps_its_run_folder(cluster, task, chief, monkeypatch, tmp_path):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    out = worker_out(str(tmp_path / "run"))
    assert (out == str(tmp_path / "run")) == chief
    assert out.startswith(str(tmp_path / "scratch")) != chief


def test_multiworker_without_tf_config_is_an_input_error_before_anything_is_written(monkeypatch, tmp_path):
    import train_attention_lstm
    from serattn.errors import InputError

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(InputError, match="needs the TF_CONFIG environment variable"):
        train_attention_lstm.main(["--data", "missing.npz", "--strategy", "multiworker",
                                   "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("version", ["3.16.0", "3.14.2", "4.0.0"])
def test_multiworker_refuses_a_keras_version_its_patch_was_not_written_for(version, monkeypatch, tmp_path, capsys):
    import keras
    import train_attention_lstm
    from serattn.errors import InputError, run_main
    from serattn.training import distribute

    monkeypatch.setattr(keras, "__version__", version)
    message = f"patches Keras 3.15 internals .* but Keras {version} is installed; install Keras 3.15.x"
    with pytest.raises(InputError, match=message):
        distribute.average_scalar_logs_across_workers()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}')
    with pytest.raises(InputError, match=message):
        distribute.get_strategy.__wrapped__("multiworker")  # refused before any strategy is made
    # Through the script: one line, exit 2, before any data is read or anything written.
    with pytest.raises(SystemExit) as exit_info:
        run_main(train_attention_lstm.main, ["--data", "missing.npz", "--strategy", "multiworker",
                                             "--out", str(tmp_path / "run")])
    stderr = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(stderr) == 1 and f"Keras {version} is installed" in stderr[0], stderr
    assert not (tmp_path / "run").exists()


def test_keras_version_check_only_where_the_patch_is_needed(monkeypatch):
    import keras
    from serattn.training import distribute

    distribute.check_keras_version("3.15.0")
    distribute.check_keras_version("3.15.1")
    monkeypatch.setattr(keras, "__version__", "3.16.0")
    assert distribute.get_strategy.__wrapped__("default") is not None  # default and mirrored patch nothing


def test_resume_is_refused_under_multiworker(tmp_path):
    import train_attention_lstm
    from serattn.errors import InputError

    (tmp_path / "config.json").write_text('{"run_format": 1, "strategy": "multiworker"}')
    with pytest.raises(InputError, match="--resume is not supported with --strategy multiworker"):
        train_attention_lstm.parse_args(["--data", "x.npz", "--resume", str(tmp_path)])


# Each worker first reports which utterances of each global batch it gets (the targets of this
# probe are utterance indices), then runs the real command line, exit status included.
WORKER_SCRIPT = """
import json, sys
import numpy as np
sys.path.insert(0, {root!r})
import train_attention_lstm
from serattn.training.distribute import get_strategy, split_across_workers
from serattn.errors import run_main
from serattn.training.batches import EpochBatches

strategy = get_strategy("multiworker")
probe = EpochBatches([np.ones((3, 2), np.float32)] * 7, np.arange(7), np.ones(7), batch_size=4, seed=0,
                     bucketing=False)
dataset, _ = split_across_workers(probe.dataset(), None)
parts = [strategy.experimental_local_results(y)[0].numpy().tolist()
         for _, y, _ in strategy.experimental_distribute_dataset(dataset)]
print("UTTERANCES", json.dumps(parts), flush=True)
run_main(train_attention_lstm.main)
"""


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_like_one_and_only_the_chief_writes(feature_set, tmp_path):
    import keras

    import train_attention_lstm

    data = tmp_path / "features.npz"
    save_feature_set(feature_set, data)
    # 30 training utterances in batches of 16 and 14, split 8/8 and 7/7; without recurrent
    # dropout (whose masks depend on the batch shape) the two runs do the same arithmetic.
    flags = ["--data", str(data), "--units", "8", "--attention-units", "4", "--epochs", "2", "--patience", "2",
             "--batch-size", "16", "--recurrent-dropout", "0", "--quiet", "--seed", "3"]
    cluster = [f"localhost:{port}" for port in free_ports(2)]
    outs = [tmp_path / "chief", tmp_path / "worker1"]  # one machine here: two paths, to tell them apart
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    workers = []
    for index in range(2):
        env = {**os.environ, "TMPDIR": str(scratch), "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT.format(root=str(ROOT)), *flags, "--strategy", "multiworker",
             "--out", str(outs[index])], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        assert train_attention_lstm.main(flags + ["--out", str(tmp_path / "default")]) == 0
        results = [worker.communicate(timeout=240) for worker in workers]  # a hang fails here
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    for worker, (stdout, stderr) in zip(workers, results):
        assert worker.returncode == 0, stderr[-3000:]

    # Each global batch (4 and 3 utterances) is split between the workers, not given to both.
    parts = [json.loads(stdout.split("UTTERANCES ", 1)[1].split("\n", 1)[0]) for stdout, _ in results]
    assert [len(p) for p in parts] == [2, 2]
    for part0, part1 in zip(*parts):
        assert part0 and part1 and not set(part0) & set(part1)
    assert sorted(sum(parts[0] + parts[1], [])) == list(range(7))

    # Only the chief wrote, and its run folder is complete.
    assert not outs[1].exists() and not any(scratch.iterdir())
    assert sorted(p.name for p in outs[0].iterdir()) == [
        "attention.npz", "config.json", "history.csv", "metrics.json", "model.keras",
        "normalization.json", "predictions.csv"]  # no INCOMPLETE, no checkpoint
    assert keras.saving.load_model(outs[0] / "model.keras").output.shape[-1] == 5

    # Same training as one process up to float32 rounding: measured losses equal to ~1e-7. rel=1e-4
    # leaves room for other CPUs' rounding, far below the 0.5% that recurrent dropout's masks give.
    metrics = {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("default", "chief")}
    assert metrics["chief"]["ua"] == pytest.approx(metrics["default"]["ua"])
    assert metrics["chief"]["best_epoch"] == metrics["default"]["best_epoch"]
    histories = {name: list(csv.DictReader(open(tmp_path / name / "history.csv"))) for name in ("default", "chief")}
    for key in ("loss", "val_loss"):
        losses = {name: [float(row[key]) for row in rows] for name, rows in histories.items()}
        assert len(losses["chief"]) == 2
        assert losses["chief"] == pytest.approx(losses["default"], rel=1e-4)


def test_mixed_precision_is_refused_without_a_gpu():
    import tensorflow as tf

    from serattn.errors import InputError
    from serattn.training.trainer import use_mixed_precision

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present: mixed precision is allowed")
    with pytest.raises(InputError, match="--mixed-precision needs a GPU"):
        use_mixed_precision()
