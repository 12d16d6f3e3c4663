"""Training past one device: tf.distribute strategies for ``train_attention_lstm.py --strategy``.

- ``default``: one device (the CPU or the first GPU), as without tf.distribute.
- ``mirrored``: ``MirroredStrategy``, every GPU of this machine (or the logical
  devices a test made); each batch of ``--batch-size`` is split across them and the
  gradients are summed, so results match ``default`` up to floating-point order.
- ``multiworker``: ``MultiWorkerMirroredStrategy`` across the machines in
  ``TF_CONFIG``, set on every machine (``"index"`` 0, 1, ...), each running the same
  command with the same ``--out``. Every worker runs the same code in lockstep:
  each batch of ``--batch-size`` (training and validation) is split across the
  workers, and the logged loss and UA are those of the whole batch, so all take
  the same early-stopping decision. Only the chief (worker 0) keeps its run folder;
  the others write into a temporary folder removed at exit. Keras 3.15 needs a
  shim for it (``average_scalar_logs_across_workers``), which patches Keras internals
  and so refuses any other Keras version (``check_keras_version``). Tested with two worker
  processes on one CPU machine (tests/training/test_distribute.py), not on several
  machines or on GPUs.

The model is built and compiled inside ``strategy.scope()`` (see ``training.build_model``).
"""

import atexit
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

from serattn.errors import InputError

STRATEGIES = ("default", "mirrored", "multiworker")
# The Keras release whose internals average_scalar_logs_across_workers patches (major.minor).
PATCHED_KERAS = "3.15"


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
    average_scalar_logs_across_workers()
    return tf.distribute.MultiWorkerMirroredStrategy()  # waits for every worker of TF_CONFIG


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


def is_chief(config):
    """Whether TF_CONFIG ``config`` is the chief's: task ``chief`` if the cluster has one, else worker 0."""
    task_type = config["task"].get("type", "worker")
    if "chief" in config["cluster"]:
        return task_type == "chief"
    return task_type == "worker" and int(config["task"]["index"]) == 0


def worker_out(out):
    """Where this worker writes the run folder ``out`` under ``--strategy multiworker``.

    Every worker runs the same code, writing included, since each step needs all of
    them; only the chief's folder is kept. The others write into a temporary folder
    removed at exit, the pattern of TensorFlow's multi-worker Keras tutorial.
    Called first under that strategy, it also refuses a bad TF_CONFIG or Keras
    version before any data is read.
    """
    config = check_tf_config(os.environ.get("TF_CONFIG"))
    check_keras_version()
    if is_chief(config):
        return out
    scratch = tempfile.mkdtemp(prefix=f"serattn-worker{config['task']['index']}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return str(Path(scratch) / Path(out).name)


def split_across_workers(train, validation):
    """The training and validation datasets with each batch split across the workers.

    tf.distribute cuts every batch into one part per replica; DATA sharding gives
    worker k the k-th part (possibly empty), so every worker does the same number
    of steps on its own utterances. (The default, AUTO, would first try to give
    each worker its own files.) Keras sums its metric counts over the replicas at
    each update, so the loss, UA and validation UA it logs are those of the whole
    batch or set, the same on every worker, and so is the early-stopping decision.
    Changes nothing on a single worker.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return train.with_options(options), validation.with_options(options) if validation is not None else None


def check_keras_version(installed=None):
    """Raise InputError unless Keras (``installed``, default: the imported one) is PATCHED_KERAS.x.

    The multiworker shim replaces a private Keras function; under another release it
    could fail or silently change what is averaged, so it refuses instead.
    """
    if installed is None:
        import keras

        installed = keras.__version__
    if installed.split(".")[:2] != PATCHED_KERAS.split("."):
        raise InputError(f"--strategy multiworker patches Keras {PATCHED_KERAS} internals "
                         f"(serattn/training/distribute.py) but Keras {installed} is installed; install "
                         f"Keras {PATCHED_KERAS}.x (pip install -r requirements.lock) or use --strategy default")


def average_scalar_logs_across_workers():
    """Let Keras 3.15's ``fit`` run under MultiWorkerMirroredStrategy.

    After each step Keras (``backend/tensorflow/trainer.py``, ``reduce_per_replica``)
    averages the logs over the workers with ``strategy.reduce("MEAN", value, axis=0)``.
    The logs (loss, metrics) are scalars, which have no axis 0, so ``fit`` fails with
    "Invalid reduction dimension 0 for input with 0 dimensions"
    (https://github.com/tensorflow/tensorflow/issues/72388). Here scalars are
    averaged over the replicas with ``axis=None``, as Keras already does for them on
    one machine; everything else goes to Keras unchanged. Installed only for
    ``--strategy multiworker``, and only under Keras 3.15 (``check_keras_version``).
    """
    check_keras_version()
    from keras import tree
    from keras.src.backend.tensorflow import trainer

    keras_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not trainer._collective_all_reduce_multi_worker(strategy):
            return keras_reduce(values, strategy, reduction)

        def reduce(value):
            if strategy.experimental_local_results(value)[0].shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return keras_reduce(value, strategy, reduction)

        return tree.map_structure(reduce, values)

    trainer.reduce_per_replica = reduce_per_replica  # looked up by name when fit traces its step


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
