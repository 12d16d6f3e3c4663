"""Training past one device: tf.distribute strategies for ``train_attention_lstm.py --strategy``.

- ``default``: one device (the CPU or the first GPU), as without tf.distribute.
- ``mirrored``: ``MirroredStrategy``, every GPU of this machine (or the logical
  devices a test made); each batch of ``--batch-size`` is split across them and the
  gradients are summed, so results match ``default`` up to floating-point order.
- ``multiworker``: ``MultiWorkerMirroredStrategy`` across machines described by the
  ``TF_CONFIG`` environment variable; every worker runs the same command, builds the
  same batches from the same seed and trains on every N-th of them (N workers), so
  one step sees N batches. Only the chief (worker 0) writes the run folder.

The model is built and compiled inside ``strategy.scope()`` (see ``training.build_model``).
"""

import functools
import json
import os

from serattn.errors import InputError

STRATEGIES = ("default", "mirrored", "multiworker")


@functools.cache
def get_strategy(name="default"):
    """The strategy named ``name``, created once per process (TensorFlow allows no second one)."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise InputError(f"unknown strategy '{name}'; expected one of: {', '.join(STRATEGIES)}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    check_tf_config(os.environ.get("TF_CONFIG"))
    return tf.distribute.MultiWorkerMirroredStrategy()


def check_tf_config(text):
    """Raise InputError unless ``text`` (TF_CONFIG) names a cluster and this process's task."""
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text:
        raise InputError(f"--strategy multiworker needs the TF_CONFIG environment variable on every "
                         f"machine, e.g. {example} (index 1 on the second)")
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError):
        raise InputError(f"TF_CONFIG is not valid: expected JSON like {example}, got {text!r}") from None
    if task.get("type") == "worker" and not 0 <= index < len(workers):
        raise InputError(f"TF_CONFIG task index {index} is outside the {len(workers)} workers of its cluster")
    return config


def is_chief(strategy):
    """Whether this process writes the run folder (always, except non-chief workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def num_workers(strategy):
    """Machines taking part (1 unless multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 1
    return len(resolver.cluster_spec().as_dict().get("worker", [])) + \
        len(resolver.cluster_spec().as_dict().get("chief", []))


def worker_out(out):
    """The run folder this worker writes: ``out`` on the chief, ``out-workerK`` elsewhere."""
    strategy = get_strategy("multiworker")
    if is_chief(strategy):
        return out
    return f"{out}-worker{strategy.cluster_resolver.task_id}"


def distributable(dataset, strategy):
    """``dataset`` with a float mask under a non-default strategy (TensorFlow casts it back).

    Keras' first step under a strategy averages one batch across replicas to build
    the model, and TensorFlow has no bool kernel for that sum; the model's bool
    ``mask`` input converts the 0/1 floats back, so nothing else changes.
    """
    import tensorflow as tf

    if dataset is None or strategy is tf.distribute.get_strategy():
        return dataset
    return dataset.map(lambda inputs, *rest: ({**inputs, "mask": tf.cast(inputs["mask"], tf.float32)}, *rest))
