"""Training past one device: tf.distribute strategies for ``train_attention_lstm.py --strategy``.

- ``default``: one device (the CPU or the first GPU), as without tf.distribute.
- ``mirrored``: ``MirroredStrategy``, every GPU of this machine (or the logical
  devices a test made); each batch of ``--batch-size`` is split across them and the
  gradients are summed, so results match ``default`` up to floating-point order.
- ``multiworker``: ``MultiWorkerMirroredStrategy`` across the machines in
  ``TF_CONFIG``. Refused for now: Keras 3.15's ``fit`` fails under it (its per-step
  log reduction takes axis 0 of scalars, tensorflow/tensorflow#72388), and every
  worker would also need the same early-stopping decision from a validation set
  that tf.distribute shards. Spread seeds or folds over machines instead (README).

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
    raise InputError("--strategy multiworker: Keras 3.15 cannot train under MultiWorkerMirroredStrategy "
                     "yet (tensorflow/tensorflow#72388); run one seed or fold per machine instead, e.g. "
                     "--seed K --out OUT-seedK on machine K, then compare_runs.py over the folders")


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


def build_from_local_batch(model, strategy):
    """Let Keras build ``model`` from one replica's first batch under ``strategy``.

    Before the first step under a strategy, Keras (3.15, ``TensorFlowTrainer.
    _maybe_symbolic_build``) averages one batch across the replicas only to learn
    the input shapes, and TensorFlow has no bool kernel for that sum of the mask.
    One replica's own batch has the same shapes; training itself is unchanged.
    """
    import tensorflow as tf
    from keras import tree

    if strategy is tf.distribute.get_strategy():
        return model

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(local, next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build
    return model
