"""Batches of ragged utterances: grouped by length, padded per batch, as tf.data pipelines.

Batches are grouped by length (bucketing): utterances are sorted by a slightly
randomized length each epoch, cut into batches, and each batch is padded only to
its own longest utterance. On FAU-Aibo-like lengths this computes ~13x fewer frames
than padding everything to the longest chunk (benchmarks/RESULTS.md), and with
masking the result does not depend on the padding.
"""

import math

import numpy as np
import serattn
from serattn.features.padding import batch_inputs, inference_batches, pad_batch, sequence_lengths  # noqa: F401 (here since issue 25)

serattn.import_tensorflow()  # before any TensorFlow import: no start-up log lines

import tensorflow as tf

LENGTH_JITTER = 0.1  # lengths within about +-10% mix between epochs


# --- batches -------------------------------------------------------------------


def bucketed_batch_indices(lengths, batch_size, rng):
    """Batches of utterance indices with similar lengths, in random order.

    Sorting by ``length * exp(u)``, ``u ~ U(-0.1, 0.1)``, keeps padding small
    while letting utterances of close length meet different neighbours each epoch.
    """
    keys = np.log(lengths) + rng.uniform(-LENGTH_JITTER, LENGTH_JITTER, size=len(lengths))
    order = np.argsort(keys, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def shuffled_batch_indices(n, batch_size, rng):
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


class EpochBatches:
    """Padded training batches, reshuffled per epoch from ``(seed, epoch)``.

    Drawing each epoch's order from its own seed (not from a running RNG) means
    a run resumed at epoch k sees the same batches as one that never stopped.

    Args:
        sequences: list of (T_i, D) float32 arrays.
        targets: (N,) int class indices, or (N, 1 + K) float: the class index and K
            numeric targets (dimensional and multi-task runs, :mod:`serattn.models.targets`).
        sample_weights: (N,) float loss weights (class weighting).
        batch_size: utterances per batch.
        seed: base seed of the per-epoch shuffles.
        bucketing: group by length (True) or shuffle freely (False).
        pad_to: pad every batch to this many frames (published fixed padding).
        padding: ``"post"`` or ``"pre"`` (published).
        pad_multiple: otherwise pad each batch to a multiple of this many frames.
        utterance_inputs: more model inputs, one row per utterance: ``{name: (N, ...)
            array}`` (e.g. ``speaker_functionals``), batched alongside the frames.
    """

    def __init__(self, sequences, targets, sample_weights, batch_size, seed,
                 bucketing=True, pad_to=None, padding="post", pad_multiple=1, utterance_inputs=None):
        self.sequences = sequences
        self.targets = as_targets(targets)
        self.sample_weights = np.asarray(sample_weights, dtype=np.float32)
        self.lengths = sequence_lengths(sequences)  # a store's from its index: frames are read per batch
        self.batch_size = batch_size
        self.seed = seed
        self.bucketing = bucketing
        self.pad_to = pad_to
        self.padding = padding
        self.pad_multiple = pad_multiple
        self.utterance_inputs = utterance_inputs or {}
        self.epoch = 0

    def __len__(self):
        return math.ceil(len(self.sequences) / self.batch_size)

    def batch_indices(self, epoch):
        rng = np.random.default_rng([self.seed, epoch])
        if self.bucketing:
            return bucketed_batch_indices(self.lengths, self.batch_size, rng)
        return shuffled_batch_indices(len(self.sequences), self.batch_size, rng)

    def __call__(self):
        for index in self.batch_indices(self.epoch):
            batch, mask = pad_batch([self.sequences[i] for i in index], self.pad_to, self.padding,
                                    self.pad_multiple)
            yield batch_inputs(batch, mask, self.utterance_inputs, index), self.targets[index], \
                self.sample_weights[index]

    def dataset(self):
        signature = (
            input_signature(self.sequences[0].shape[1], self.utterance_inputs),
            target_signature(self.targets),
            tf.TensorSpec((None,), tf.float32),
        )
        dataset = tf.data.Dataset.from_generator(self, output_signature=signature)
        return dataset.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(2)


def as_targets(targets):
    """Class indices as int32 (N,), or the float32 (N, 1 + K) rows of numeric targets."""
    targets = np.asarray(targets)
    return targets.astype(np.float32) if targets.ndim == 2 else targets.astype(np.int32)


def target_signature(targets):
    return tf.TensorSpec((None, *targets.shape[1:]), tf.as_dtype(targets.dtype))


def input_signature(dim, utterance_inputs=None):
    """``{name: tf.TensorSpec}`` of a batch's model inputs: frames, mask, and ``utterance_inputs``."""
    return ({"features": tf.TensorSpec((None, None, dim), tf.float32),
             "mask": tf.TensorSpec((None, None), tf.bool)}
            | {name: tf.TensorSpec((None, *values.shape[1:]), tf.as_dtype(values.dtype))
               for name, values in (utterance_inputs or {}).items()})


def evaluation_dataset(sequences, targets, batch_size, pad_to=None, padding="post", pad_multiple=1,
                       utterance_inputs=None):
    """A fixed tf.data pipeline of (inputs, targets) for validation."""
    targets = as_targets(targets)
    batches = list(inference_batches(sequences, batch_size, pad_to, padding, pad_multiple, utterance_inputs))

    def generate():
        for index, inputs in batches:
            yield inputs, targets[index]

    signature = (
        input_signature(sequences[0].shape[1], utterance_inputs),
        target_signature(targets),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)
