"""Batching, class weights, validation split, training loop and inference.

Batches are grouped by length (bucketing): utterances are sorted by a slightly
randomized length each epoch, cut into batches, and each batch is padded only to
its own longest utterance. On FAU-Aibo-like lengths this computes ~13x fewer frames
than padding everything to the longest chunk (see ../shared/PERF_NOTES.md), and with
masking the result does not depend on the padding.
"""

import json
import math
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from sklearn.utils.class_weight import compute_class_weight

from serattn.data import pad_batch
from serattn.distribute import build_from_local_batch, get_strategy, split_across_workers
from serattn.errors import InputError
from serattn.model import build_analysis_model
from serattn.pooling import unmasked_lstm_view

LENGTH_JITTER = 0.1  # lengths within about +-10% mix between epochs


# --- monitoring ---------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="serattn")
class UnweightedAverageRecall(keras.metrics.Metric):
    """UA as a streaming Keras metric, for monitoring and early stopping.

    Sample weights (e.g. from class weighting) are ignored on purpose: UA already
    weighs every class equally, and weighting the counts would change its meaning.
    Classes with no true examples seen so far are left out of the mean, as
    scikit-learn's ``balanced_accuracy_score`` does.
    """

    def __init__(self, num_classes, name="ua", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.confusion = self.add_variable(shape=(num_classes, num_classes), initializer="zeros",
                                           name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.num_classes)
        predicted = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes)
        self.confusion.assign_add(ops.matmul(ops.transpose(true), predicted))

    def result(self):
        support = ops.sum(self.confusion, axis=1)
        recall = ops.diagonal(self.confusion) / ops.maximum(support, 1.0)
        present = ops.cast(support > 0, recall.dtype)
        return ops.sum(recall * present) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


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
        targets: (N,) int class indices.
        sample_weights: (N,) float loss weights (class weighting).
        batch_size: utterances per batch.
        seed: base seed of the per-epoch shuffles.
        bucketing: group by length (True) or shuffle freely (False).
        pad_to: pad every batch to this many frames (published fixed padding).
        padding: ``"post"`` or ``"pre"`` (published).
    """

    def __init__(self, sequences, targets, sample_weights, batch_size, seed,
                 bucketing=True, pad_to=None, padding="post"):
        self.sequences = sequences
        self.targets = np.asarray(targets, dtype=np.int32)
        self.sample_weights = np.asarray(sample_weights, dtype=np.float32)
        self.lengths = np.array([len(s) for s in sequences])
        self.batch_size = batch_size
        self.seed = seed
        self.bucketing = bucketing
        self.pad_to = pad_to
        self.padding = padding
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
            batch, mask = pad_batch([self.sequences[i] for i in index], self.pad_to, self.padding)
            yield {"features": batch, "mask": mask}, self.targets[index], self.sample_weights[index]

    def dataset(self):
        dim = self.sequences[0].shape[1]
        signature = (
            {"features": tf.TensorSpec((None, None, dim), tf.float32),
             "mask": tf.TensorSpec((None, None), tf.bool)},
            tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec((None,), tf.float32),
        )
        dataset = tf.data.Dataset.from_generator(self, output_signature=signature)
        return dataset.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(2)


class EpochSeeds(keras.callbacks.Callback):
    """Sets each epoch's batch order and dropout randomness from ``(seed, epoch)``.

    Keras keeps recurrent dropout's random state in a variable that checkpoints do
    not save; deriving it from the epoch makes a resumed run draw the same masks as
    one that never stopped.
    """

    def __init__(self, batches, seed):
        super().__init__()
        self.batches = batches
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.epoch = epoch
        states = [v for v in self.model.variables if v.name == "seed_generator_state"]
        for i, state in enumerate(states):
            state.assign(ops.cast([self.seed * 1000 + i, epoch * 2**20], state.dtype))


def inference_batches(sequences, batch_size, pad_to=None, padding="post"):
    """Length-sorted padded batches for prediction, with the indices they hold."""
    order = np.argsort([len(s) for s in sequences], kind="stable")
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        batch, mask = pad_batch([sequences[i] for i in index], pad_to, padding)
        yield index, {"features": batch, "mask": mask}


def evaluation_dataset(sequences, targets, batch_size, pad_to=None, padding="post"):
    """A fixed tf.data pipeline of (inputs, targets) for validation."""
    targets = np.asarray(targets, dtype=np.int32)
    batches = list(inference_batches(sequences, batch_size, pad_to, padding))
    dim = sequences[0].shape[1]

    def generate():
        for index, inputs in batches:
            yield inputs, targets[index]

    signature = (
        {"features": tf.TensorSpec((None, None, dim), tf.float32),
         "mask": tf.TensorSpec((None, None), tf.bool)},
        tf.TensorSpec((None,), tf.int32),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)


# --- class weights and validation speakers -----------------------------------------


def parse_class_weight(text, classes, labels):
    """``balanced``, ``none`` or ``A=1.1,E=0.5,...`` -> weight per class index."""
    if text == "none":
        return np.ones(len(classes))
    if text == "balanced":
        return compute_class_weight("balanced", classes=np.asarray(classes), y=np.asarray(labels))
    weights = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            weights[name] = float(value)
        except ValueError:
            weights[name] = -1.0
        if not sep or weights[name] < 0:
            raise InputError(f"--class-weight: expected balanced, none or CLASS=WEIGHT,... with "
                             f"non-negative weights, got '{item}'")
        if name not in classes:
            raise InputError(f"--class-weight names class '{name}', which the training set does not "
                             f"have; classes: {', '.join(classes)}")
    return np.array([weights.get(c, 1.0) for c in classes])


# --- training --------------------------------------------------------------------


def build_model(args, num_features, num_classes):
    """The model named by the training flags, seeded, deterministic and compiled."""
    from serattn.model import build_attention_lstm, build_basic_lstm

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    if getattr(args, "mixed_precision", False):
        use_mixed_precision()
    with get_strategy(getattr(args, "strategy", "default")).scope():  # variables on every replica
        if args.model == "basic-lstm":
            model = build_basic_lstm(num_features, num_classes, units=args.units, activation=args.activation,
                                     recurrent_dropout=args.recurrent_dropout, pooling=args.pooling,
                                     masked=args.mask)
        else:
            model = build_attention_lstm(
                num_features, num_classes, units=args.units, activation=args.activation,
                recurrent_dropout=args.recurrent_dropout, attention_units=args.attention_units,
                attention_activation=args.attention_activation, masked=args.mask,
                **attention_variant_args(args))
        compile_model(model, num_classes, args.learning_rate, args.clipnorm,
                      weight_decay=getattr(args, "weight_decay", 0.0),
                      label_smoothing=getattr(args, "label_smoothing", 0.0))
    return model


def attention_variant_args(args):
    """Pooling and regularization keywords of ``build_attention_lstm`` from the flags.

    Flags absent from ``args`` (older configs, callers that build their own
    namespace) keep the published model.
    """
    augment = {"time_mask": getattr(args, "time_mask", 0), "feature_mask": getattr(args, "feature_mask", 0),
               "count": getattr(args, "mask_count", 2), "noise_std": getattr(args, "input_noise", 0.0),
               "seed": args.seed}
    active = augment["time_mask"] or augment["feature_mask"] or augment["noise_std"]
    return {"pooling": getattr(args, "pooling", None) or "attention", "heads": getattr(args, "heads", 1),
            "augment": augment if active else None, "pooled_dropout": getattr(args, "pooled_dropout", 0.0),
            "pool_inputs": getattr(args, "pool_inputs", False)}


def use_mixed_precision():
    """float16 compute with float32 weights (GPU only: on CPU float16 is slower, not faster)."""
    if not tf.config.list_physical_devices("GPU"):
        raise InputError("--mixed-precision needs a GPU (float16 matmuls are emulated and slower on CPU), "
                         "and TensorFlow sees none; drop the flag to train in float32")
    keras.mixed_precision.set_global_policy("mixed_float16")  # Adam gets loss scaling in compile()


def tensorboard_callbacks(out):
    return [keras.callbacks.TensorBoard(log_dir=str(Path(out) / "tensorboard"))]


def compile_model(model, num_classes, learning_rate, clipnorm=None, optimizer=None, weight_decay=0.0,
                  label_smoothing=0.0, loss=None):
    """Compile with Adam (AdamW when ``weight_decay`` > 0) and sparse cross-entropy.

    ``label_smoothing`` > 0 smooths the targets towards uniform
    (:class:`serattn.augment.SmoothedSparseCategoricalCrossentropy`).
    """
    from serattn.augment import SmoothedSparseCategoricalCrossentropy

    if optimizer is None and weight_decay:
        optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay,
                                           clipnorm=clipnorm)
    optimizer = optimizer or keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm)
    if loss is None:
        loss = (SmoothedSparseCategoricalCrossentropy(label_smoothing) if label_smoothing
                else keras.losses.SparseCategoricalCrossentropy())
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=[UnweightedAverageRecall(num_classes), keras.metrics.SparseCategoricalAccuracy(name="wa")],
    )


def trainer_for(model, padding):
    """The model to fit on batches padded at ``padding``: ``model``, or a faster view of it.

    A one-way LSTM's outputs at the valid frames of a post-padded utterance never
    see the padding, and the attention (or pooling) already ignores padded frames,
    so with post-padding the LSTM's own mask changes nothing but the time it takes
    (per-step selects in the loop and their gradients; ~10%, see benchmarks/). The
    view shares every layer, weight and the optimizer with ``model`` and runs the
    LSTM without its mask; ``model`` keeps the mask, so it stays correct for any
    padding when saved or used for prediction. Pre-padding gets ``model`` itself.
    """
    lstm = model.get_layer("lstm1")
    if padding != "post" or not _lstm_is_masked(model):
        return model
    if not _is_published_head(model):  # pooling variants, augmentation, pooled dropout
        view = unmasked_lstm_view(model)
        compile_model(view, model.output.shape[-1], None, optimizer=model.optimizer, loss=model.loss)
        return view
    features = keras.Input(shape=model.input["features"].shape[1:], name="features")
    mask = keras.Input(shape=model.input["mask"].shape[1:], dtype="bool", name="mask")
    outputs = lstm(features)  # (batch, frames, units), exact on valid frames for post-padding
    names = [layer.name for layer in model.layers]
    if "attention_weights" in names:
        scores = model.get_layer("attention_dense2")(model.get_layer("attention_dense1")(outputs))
        weights = model.get_layer("attention_weights")(scores, mask)  # (batch, frames)
        representation = model.get_layer("attention_representation")(outputs, weights)  # (batch, units)
    else:
        representation = model.get_layer("attention_representation")(outputs, mask)  # (batch, units)
    view = keras.Model({"features": features, "mask": mask}, model.get_layer("output")(representation),
                       name=model.name)
    compile_model(view, model.output.shape[-1], None, optimizer=model.optimizer, loss=model.loss)
    return view


def _is_published_head(model):
    """Whether ``model`` is the published attention LSTM or the basic LSTM, nothing added."""
    published = {"features", "mask", "lstm1", "attention_dense1", "attention_dense2", "attention_weights",
                 "attention_representation", "output"}
    return {layer.name for layer in model.layers} <= published and \
        type(model.get_layer("attention_representation")).__name__ in ("AttentionPooling", "MaskedPooling")


def _lstm_is_masked(model):
    """Whether ``lstm1`` was wired to the mask input (``masked=True`` models)."""
    node = model.get_layer("lstm1")._inbound_nodes[0]
    return node.arguments.kwargs.get("mask") is not None


class ResumableEarlyStopping(keras.callbacks.Callback):
    """Early stopping on validation UA that can resume after the process dies.

    After every epoch it writes ``checkpoint/epoch-K/`` (weights with the optimizer
    state, the best weights so far, and the stopping state), then points
    ``checkpoint/latest`` at it with an atomic rename, so a kill at any moment leaves
    a complete checkpoint behind. At the end the best epoch's weights are restored
    (the last epoch's when there is no validation set); the run folder removes the
    checkpoint once everything else is written.

    Args:
        directory: the checkpoint folder, inside the run folder.
        patience: epochs without a better ``val_ua`` before stopping; None never stops.
    """

    def __init__(self, directory, patience=None):
        super().__init__()
        self.directory = Path(directory)
        self.patience = patience
        self.state = {"epochs_done": 0, "best_ua": None, "best_epoch": None, "wait": 0}
        self.best_weights = None

    def restore(self):
        """Load the latest checkpoint into the model; returns the epochs already done."""
        latest = self.directory / "latest"
        if not latest.is_file():
            return 0
        folder = self.directory / latest.read_text().strip()
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(folder / "state.weights.h5")
        self.state = json.loads((folder / "state.json").read_text())
        if (folder / "best.npz").is_file():
            with np.load(folder / "best.npz") as best:
                self.best_weights = [best[f"arr_{i}"] for i in range(len(best.files))]
        return self.state["epochs_done"]

    def on_epoch_end(self, epoch, logs=None):
        ua = (logs or {}).get("val_ua")
        state = self.state
        loss = (logs or {}).get("loss")
        diverged = loss is not None and not np.isfinite(loss)
        if diverged:
            state["diverged_epoch"] = state.get("diverged_epoch") or epoch + 1
            self.model.stop_training = True  # NaN or inf weights never recover
        if ua is not None and not diverged and (state["best_ua"] is None or ua > state["best_ua"]):
            state.update(best_ua=float(ua), best_epoch=epoch + 1, wait=0)
            self.best_weights = self.model.get_weights()
        elif ua is not None:
            state["wait"] += 1
        state["epochs_done"] = epoch + 1
        self._save(epoch + 1)
        if self.patience is not None and state["wait"] >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
        else:
            self.state["best_epoch"] = self.state["epochs_done"]

    def _save(self, epochs_done):
        folder = self.directory / f"epoch-{epochs_done:04d}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.model.save_weights(folder / "state.weights.h5")
        if self.best_weights is not None:
            np.savez(folder / "best.npz", *self.best_weights)
        (folder / "state.json").write_text(json.dumps(self.state))
        pointer = self.directory / "latest.tmp"
        pointer.write_text(folder.name)
        os.replace(pointer, self.directory / "latest")  # the checkpoint counts from here
        for old in self.directory.glob("epoch-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)


def fit(model, train_batches, validation, epochs, patience, checkpoint_dir, history_path,
        callbacks=(), verbose=1):
    """Train with early stopping on validation UA; the best epoch's weights are kept.

    Resumes from ``checkpoint_dir`` if an interrupted run left a checkpoint there.

    Args:
        model: a compiled model.
        train_batches: an :class:`EpochBatches`.
        validation: a tf.data validation dataset, or None to train all ``epochs``
            and keep the last weights.
        epochs, patience: the most epochs to run; epochs without a better
            validation UA before stopping.
        checkpoint_dir: where per-epoch checkpoints are kept until training ends.
        history_path: CSV of the per-epoch losses and metrics (appended on resume).
        callbacks: further Keras callbacks (history logger, TensorBoard...).

    Training stops at the first epoch whose loss is NaN or infinite (the weights
    are then NaN too); the best epoch before it is kept when there is a
    validation set, the broken last one otherwise.

    Returns:
        ``(best_epoch, initial_epoch, diverged_epoch)``: the epoch whose weights are
        kept (from 1), the epochs restored from a checkpoint (0 for a fresh run),
        and the epoch whose loss was not finite (None if none was).
    """
    with model.distribute_strategy.scope():
        model = trainer_for(model, train_batches.padding)  # shares the weights of the model passed in
    stopper = ResumableEarlyStopping(checkpoint_dir, patience if validation is not None else None)
    stopper.set_model(model)
    initial_epoch = stopper.restore()
    keep_history_rows(history_path, initial_epoch)  # drop epochs logged after the checkpoint
    history = keras.callbacks.CSVLogger(str(history_path), append=initial_epoch > 0)
    callbacks = [EpochSeeds(train_batches, train_batches.seed), history, *callbacks, stopper]
    finished = (stopper.state["wait"] >= patience and validation is not None) or stopper.state.get("diverged_epoch")
    if initial_epoch < epochs and not finished:
        build_from_local_batch(model, model.distribute_strategy)
        dataset, validation = split_across_workers(train_batches.dataset(), validation)
        model.fit(dataset, validation_data=validation, epochs=epochs,
                  initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
                  shuffle=False)  # EpochBatches shuffles
    else:
        stopper.on_train_end()  # the run had finished training before it was interrupted
    return stopper.state["best_epoch"], initial_epoch, stopper.state.get("diverged_epoch")


def keep_history_rows(path, epochs):
    """Keep the header and the first ``epochs`` rows of a CSVLogger file."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1 + epochs]) if epochs else "")


# --- inference ---------------------------------------------------------------------


def predict_with_attention(model, sequences, batch_size=64, pad_to=None, padding="post"):
    """Class probabilities, attention weights and representations per utterance.

    Returns:
        dict with ``probabilities`` (N, classes), ``weights`` (list of (T_i,)
        arrays over each utterance's own frames), ``z`` (N, units) and
        ``padding_mass`` (N,), the attention that fell on padding (0 when masked);
        for a multi-head model also ``head_weights`` (list of (T_i, heads) arrays,
        whose mean over heads is ``weights``).
    """
    analysis = build_analysis_model(model)
    multihead = "attention_heads" in [layer.name for layer in model.layers]
    if multihead:  # per-head weights too, (batch, frames, heads)
        analysis = keras.Model(analysis.inputs, [*analysis.outputs, model.get_layer("attention_heads").output])
    # One trace for every batch shape; Keras' predict_on_batch would retrace per length.
    signature = [{"features": tf.TensorSpec((None, None, sequences[0].shape[1]), tf.float32),
                  "mask": tf.TensorSpec((None, None), tf.bool)}]
    step = tf.function(lambda inputs: analysis(inputs, training=False), input_signature=signature)
    n = len(sequences)
    probabilities = np.zeros((n, model.output.shape[-1]), np.float32)
    z = np.zeros((n, analysis.outputs[2].shape[-1]), np.float32)
    weights = [None] * n
    padding_mass = np.zeros(n, np.float32)
    head_weights = [None] * n
    for index, inputs in inference_batches(sequences, batch_size, pad_to, padding):
        batch_probabilities, batch_weights, batch_z, *batch_heads = (np.asarray(t) for t in step(inputs))
        probabilities[index] = batch_probabilities
        z[index] = batch_z
        for row, i in enumerate(index):
            valid = inputs["mask"][row]
            weights[i] = batch_weights[row][valid]
            padding_mass[i] = batch_weights[row][~valid].sum()
            if multihead:
                head_weights[i] = batch_heads[0][row][valid]  # (frames, heads)
    result = {"probabilities": probabilities, "weights": weights, "z": z, "padding_mass": padding_mass}
    if multihead:
        result["head_weights"] = head_weights
    return result
