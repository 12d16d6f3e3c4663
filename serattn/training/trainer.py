"""The Keras training loop: model construction, resumable early stopping, inference.

Batches come from :mod:`serattn.training.batches`; every epoch is checkpointed so an
interrupted run resumes where it stopped and ends with the same numbers.
"""

import json
import os
import shutil
from pathlib import Path

import serattn

serattn.import_tensorflow()  # before any TensorFlow import: no start-up log lines

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from serattn.training.batches import inference_batches, input_signature
from serattn.training.distribute import build_from_local_batch, get_strategy, split_across_workers
from serattn.training.functionals_fit import FITTED_INPUT, cross_fitted_view
from serattn.training.frame_loss import FRAME_TARGETS, frame_loss_view
from serattn import silence_onednn_bool_note
from serattn.errors import InputError
from serattn.models.attention_lstm import build_analysis_model
from serattn.models.targets import TargetLoss, target_metrics
from serattn.runs.folder import CHECKPOINT_BEST_FILE, CHECKPOINT_STATE_FILE
from serattn.models.fused_lstm import fused_lstm_view
from serattn.models.pooling import NO_WEIGHT_DECAY, FrameGuide, unmasked_lstm_view
from serattn.poolings import POOLINGS
from serattn.targets import EMOTION, dimensions, parse_loss_weights, selection_score

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


# --- training --------------------------------------------------------------------


def build_model(model_config, train_config, num_features, num_classes):
    """The model of a :class:`~serattn.config.ModelConfig`, seeded, deterministic and compiled.

    Args:
        model_config: which model and its sizes.
        train_config: the seed, strategy, precision and optimizer settings.
        num_features: D, features per frame.
        num_classes: size of the softmax output.
    """
    from serattn.models.attention_lstm import build_attention_lstm, build_basic_lstm

    keras.utils.set_random_seed(train_config.seed)
    if not train_config.jit_compile:  # Keras turns XLA off under op determinism; XLA on CPU is deterministic
        tf.config.experimental.enable_op_determinism()
    if train_config.mixed_precision:
        use_mixed_precision()
    m = model_config
    dims = dimensions(m.target)
    num_outputs = num_classes if EMOTION in m.target else 0
    loss = None
    if dims:  # a regression head next to (or instead of) the softmax, serattn.models.targets
        weights = parse_loss_weights(train_config.loss_weights, m.target)
        loss = TargetLoss(num_outputs, dims, [weights.get(EMOTION, 0.0), *(weights[d] for d in dims)],
                          train_config.target_loss, train_config.label_smoothing)
    strategy = get_strategy(train_config.strategy)
    silence_onednn_bool_note()
    with strategy.scope():  # variables on every replica
        if m.model == "basic-lstm":
            model = build_basic_lstm(num_features, num_outputs, units=m.units, activation=m.activation,
                                     recurrent_dropout=m.recurrent_dropout, pooling=m.pooling, masked=m.mask,
                                     functionals_norm=m.functionals_norm, num_values=len(dims),
                                     functionals_fit=m.functionals_fit)
        else:
            model = build_attention_lstm(
                num_features, num_outputs, units=m.units, activation=m.activation,
                recurrent_dropout=m.recurrent_dropout, attention_units=m.attention_units,
                attention_activation=m.attention_activation, masked=m.mask, num_values=len(dims),
                **attention_variant_args(m, train_config))
        compile_model(model, num_classes, train_config.learning_rate, train_config.clipnorm,
                      weight_decay=train_config.weight_decay, label_smoothing=train_config.label_smoothing,
                      loss=loss, jit_compile=train_config.jit_compile)
    return model


def attention_variant_args(model_config, train_config):
    """Pooling and regularization keywords of ``build_attention_lstm`` from the configs
    (their defaults build the published model)."""
    m = model_config
    augment = {"time_mask": m.time_mask, "feature_mask": m.feature_mask, "count": m.mask_count,
               "noise_std": m.input_noise, "seed": train_config.seed}
    active = m.time_mask or m.feature_mask or m.input_noise
    return {"pooling": m.pooling, "heads": m.heads, "augment": augment if active else None,
            "pooled_dropout": m.pooled_dropout, "pool_inputs": m.pool_inputs, "functionals_norm": m.functionals_norm,
            "functionals_fit": m.functionals_fit}


def utterance_inputs(feature_set, functionals_norm="batch"):
    """The model's inputs beyond frames and mask for the (normalized) ``feature_set``:
    ``{"speaker_functionals": (N, 2, F)}`` with ``--functionals-norm speaker``, else ``{}``."""
    if functionals_norm != "speaker" or not len(feature_set):
        return {}
    from serattn.models.pooling import speaker_functional_statistics

    return {"speaker_functionals": speaker_functional_statistics(feature_set.sequences(), feature_set.speakers,
                                                                 feature_set.is_copy)}


def use_mixed_precision():
    """float16 compute with float32 weights (GPU only: on CPU float16 is slower, not faster)."""
    if not tf.config.list_physical_devices("GPU"):
        raise InputError("--mixed-precision needs a GPU (float16 matmuls are emulated and slower on CPU), "
                         "and TensorFlow sees none; drop the flag to train in float32")
    keras.mixed_precision.set_global_policy("mixed_float16")  # Adam gets loss scaling in compile()


def tensorboard_callbacks(out):
    return [keras.callbacks.TensorBoard(log_dir=str(Path(out) / "tensorboard"))]


def compile_model(model, num_classes, learning_rate, clipnorm=None, optimizer=None, weight_decay=0.0,
                  label_smoothing=0.0, loss=None, jit_compile=False):
    """Compile with Adam (AdamW when ``weight_decay`` > 0) and sparse cross-entropy, UA and WA
    (with a :class:`~serattn.models.targets.TargetLoss`, the metrics of its targets).

    ``label_smoothing`` > 0 smooths the targets towards uniform
    (:class:`serattn.models.augment.SmoothedSparseCategoricalCrossentropy`); ``jit_compile``
    makes XLA compile the train and test steps.
    """
    from serattn.models.augment import SmoothedSparseCategoricalCrossentropy

    if optimizer is None and weight_decay:
        optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay,
                                           clipnorm=clipnorm)
    optimizer = optimizer or keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm)
    if weight_decay and any(isinstance(layer, FrameGuide) for layer in model.layers):
        optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
    if loss is None:
        loss = (SmoothedSparseCategoricalCrossentropy(label_smoothing) if label_smoothing
                else keras.losses.SparseCategoricalCrossentropy())
    model.compile(
        optimizer=optimizer,
        jit_compile=jit_compile,
        loss=loss,
        metrics=target_metrics(loss, num_classes),
    )


def compiled_like(view, model):
    """``view``, a model sharing ``model``'s layers, compiled as ``model`` is: its optimizer (whose state the
    two then share), loss and XLA setting."""
    compile_model(view, model.output.shape[-1], None, optimizer=model.optimizer, loss=model.loss,
                  jit_compile=model.jit_compile)
    return view


def lstm_kernel_for(model_config, train_config):
    """``"fused"`` or ``"keras"``: the LSTM kernel that ``--lstm-kernel`` resolves to.

    ``auto`` takes the fused kernel wherever it is exact (:func:`serattn.config.fused_lstm_blocker`)
    and no GPU is visible (there Keras picks cuDNN); ``fused`` elsewhere is refused when the
    configuration is checked.
    """
    from serattn.config import fused_lstm_blocker

    kernel = train_config.lstm_kernel
    if kernel == "auto":
        exact = fused_lstm_blocker(model_config, train_config) is None
        kernel = "fused" if exact and not tf.config.list_physical_devices("GPU") else "keras"
    return kernel


def trainer_for(model, padding, lstm_kernel="keras"):
    """The model to fit on batches padded at ``padding``: ``model``, or a faster view of it.

    With ``lstm_kernel="fused"`` the view runs ``lstm1`` as a
    :class:`~serattn.models.fused_lstm.FusedLSTM` (TensorFlow's one-op LSTM, same weights,
    same outputs), masked only for pre-padded batches. Otherwise:

    A one-way LSTM's outputs at the valid frames of a post-padded utterance never
    see the padding, and the attention (or pooling) already ignores padded frames,
    so with post-padding the LSTM's own mask changes nothing but the time it takes
    (per-step selects in the loop and their gradients; ~10%, see benchmarks/). The
    view shares every layer, weight and the optimizer with ``model`` and runs the
    LSTM without its mask; ``model`` keeps the mask, so it stays correct for any
    padding when saved or used for prediction. Pre-padding gets ``model`` itself.
    """
    lstm = model.get_layer("lstm1")
    if lstm_kernel == "fused":
        return compiled_like(fused_lstm_view(model, keep_mask=padding != "post" and _lstm_is_masked(model)), model)
    if padding != "post" or not _lstm_is_masked(model):
        return model
    if not _is_published_head(model):  # pooling variants, augmentation, pooled dropout
        return compiled_like(unmasked_lstm_view(model), model)
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
    return compiled_like(view, model)


def _is_published_head(model):
    """Whether ``model`` is the published attention LSTM or the basic LSTM, nothing added."""
    published = {"features", "mask", "lstm1", "attention_dense1", "attention_dense2", "attention_weights",
                 "attention_representation", "output"}
    heads = {pooling.layer for pooling in POOLINGS.values() if pooling.published}  # serattn.poolings
    return {layer.name for layer in model.layers} <= published and \
        type(model.get_layer("attention_representation")).__name__ in heads


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
        selection: the validation metrics whose weighted mean is the score
            (:func:`serattn.targets.selection_weights`; default UA alone). The state keeps
            the best score under ``best_ua`` whatever it is, so checkpoints read alike.
    """

    def __init__(self, directory, patience=None, selection=None):
        super().__init__()
        self.directory = Path(directory)
        self.patience = patience
        self.selection = selection or {"ua": 1.0}
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
        self.state = json.loads((folder / CHECKPOINT_STATE_FILE).read_text())
        if (folder / CHECKPOINT_BEST_FILE).is_file():
            with np.load(folder / CHECKPOINT_BEST_FILE) as best:
                self.best_weights = [best[f"arr_{i}"] for i in range(len(best.files))]
        return self.state["epochs_done"]

    def on_epoch_end(self, epoch, logs=None):
        ua = selection_score(logs, self.selection)
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
            np.savez(folder / CHECKPOINT_BEST_FILE, *self.best_weights)
        (folder / CHECKPOINT_STATE_FILE).write_text(json.dumps(self.state))
        pointer = self.directory / "latest.tmp"
        pointer.write_text(folder.name)
        os.replace(pointer, self.directory / "latest")  # the checkpoint counts from here
        for old in self.directory.glob("epoch-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)


def fit(model, train_batches, validation, epochs, patience, checkpoint_dir, history_path,
        callbacks=(), verbose=1, lstm_kernel="keras", selection=None):
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
        lstm_kernel: ``"keras"`` or ``"fused"`` (:func:`lstm_kernel_for`), see :func:`trainer_for`.
        selection: what picks the best epoch (:class:`ResumableEarlyStopping`); default validation UA.

    Training stops at the first epoch whose loss is NaN or infinite (the weights
    are then NaN too); the best epoch before it is kept when there is a
    validation set, the broken last one otherwise.

    Returns:
        ``(best_epoch, initial_epoch, diverged_epoch)``: the epoch whose weights are
        kept (from 1), the epochs restored from a checkpoint (0 for a fresh run),
        and the epoch whose loss was not finite (None if none was).
    """
    with model.distribute_strategy.scope():
        if FITTED_INPUT in train_batches.utterance_inputs:  # --functionals-fit logreg: on cross-fitted logits
            model = compiled_like(cross_fitted_view(model), model)
        if FRAME_TARGETS in train_batches.utterance_inputs:  # guided-evidence-attention: the frame loss joins in
            model = compiled_like(frame_loss_view(model), model)
        model = trainer_for(model, train_batches.padding, lstm_kernel)  # shares the weights of the model passed in
    stopper = ResumableEarlyStopping(checkpoint_dir, patience if validation is not None else None, selection)
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
    """Keep the header and the first ``epochs`` rows of a CSVLogger file.

    Read and written as bytes: CSVLogger ends its rows with CRLF (the csv module's
    default), and text mode would turn the kept ones into LF, mixing the two once
    the resumed run appends.
    """
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:1 + epochs]) if epochs else b"")


# --- inference ---------------------------------------------------------------------


def predict_with_attention(model, sequences, batch_size=64, pad_to=None, padding="post", utterance_inputs=None):
    """Class probabilities, attention weights and representations per utterance.

    ``utterance_inputs`` are the model's inputs beyond frames and mask, one row per
    utterance (see :class:`~serattn.training.batches.EpochBatches`).

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
    signature = [input_signature(sequences[0].shape[1], utterance_inputs)]
    step = tf.function(lambda inputs: analysis(inputs, training=False), input_signature=signature)
    n = len(sequences)
    probabilities = np.zeros((n, model.output.shape[-1]), np.float32)
    z = np.zeros((n, analysis.outputs[2].shape[-1]), np.float32)
    weights = [None] * n
    padding_mass = np.zeros(n, np.float32)
    head_weights = [None] * n
    for index, inputs in inference_batches(sequences, batch_size, pad_to, padding, utterance_inputs=utterance_inputs):
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
