"""TensorFlow's fused CPU LSTM kernel behind a ``keras.layers.LSTM``'s own weights.

Keras 3 runs an LSTM on CPU as a ``while_loop`` of small ops per time step (and twice as
many in the gradient); TensorFlow's ``BlockLSTM`` op runs the whole sequence as one Eigen
kernel, with a registered gradient (issue 26). :class:`FusedLSTM` wraps a built stock
``LSTM`` and computes what it computes from its variables, so training through it updates
the stock layer: the saved model keeps ``keras.layers.LSTM`` (a stock ``.keras`` file,
exported and loaded as before). It is exact for tanh/sigmoid cells without (recurrent)
dropout, which :func:`fused_is_exact` checks.

Why ``BlockLSTM`` and not ``BlockLSTMV2``: V2 takes the Keras gate order, but TensorFlow
(2.21) registers V1's gradient op for it, which packs the gate gradients as i, c, f, o, so
V2's gradients come out permuted (as large as the gradients themselves, measured). V1 with
``forget_bias=0`` and ``cell_clip=-1`` (no clipping) is the same cell with a consistent
gradient; its gates are i, c (cell input), f, o.

Padding: a one-way LSTM's outputs at the valid frames of a post-padded utterance never
see the padding after them, and every serattn pooling gives padding exactly zero weight,
so post-padded batches need no LSTM mask. Given a mask, the layer moves each utterance's
valid frames to the start (pre-padded input becomes post-padded), runs the kernel and
moves the outputs back; padded positions then hold finite values the poolings ignore,
where the stock layer would hold its masked outputs.
"""

import keras
import tensorflow as tf
from keras import layers


def fused_is_exact(lstm):
    """Why ``BlockLSTM`` would not compute what ``lstm`` computes, or None when it would.

    BlockLSTM has tanh and sigmoid built in and no dropout, and runs forward over every
    sequence of the batch for the same number of steps.
    """
    cell = lstm.cell
    checks = [
        (keras.activations.serialize(cell.activation) == "tanh", "a tanh activation"),
        (keras.activations.serialize(cell.recurrent_activation) == "sigmoid", "a sigmoid recurrent activation"),
        (not cell.recurrent_dropout, "--recurrent-dropout 0"),
        (not cell.dropout, "no input dropout"),
        (cell.use_bias, "a bias"),
        (lstm.return_sequences and not lstm.return_state, "every time step's output and no state"),
        (not lstm.go_backwards and not lstm.stateful, "a forward, stateless LSTM"),
    ]
    missing = [need for ok, need in checks if not ok]
    return f"the fused LSTM kernel needs {', '.join(missing)}" if missing else None


@keras.saving.register_keras_serializable(package="serattn")
class FusedLSTM(layers.Layer):
    """A stock ``keras.layers.LSTM`` run with ``tf.raw_ops.BlockLSTM``: same weights, same outputs.

    Args:
        lstm: the ``keras.layers.LSTM`` whose weights are used (and trained); it must
            pass :func:`fused_is_exact`.

    Call with ``(batch, frames, D)`` frames and optionally the ``(batch, frames)`` padding
    mask (True on real frames, one run of them per utterance); returns ``(batch, frames,
    units)``, equal to the stock layer's on valid frames.
    """

    def __init__(self, lstm, **kwargs):
        super().__init__(**kwargs)
        if isinstance(lstm, dict):  # from get_config
            lstm = keras.saving.deserialize_keras_object(lstm)
        reason = fused_is_exact(lstm)
        if reason:
            raise ValueError(reason)
        self.lstm = lstm
        self.supports_masking = True

    def build(self, frames_shape, mask_shape=None):
        if not self.lstm.built:
            self.lstm.build(frames_shape)

    def call(self, frames, mask=None):
        cell = self.lstm.cell
        units = cell.units
        if mask is not None:  # pre-padded rows: valid frames first (post-padded rows stay as they are)
            mask = tf.cast(mask, "bool")
            steps = tf.shape(frames)[1]
            start = tf.argmax(tf.cast(mask, "int32"), axis=1, output_type="int32")  # (batch,) first valid frame
            order = (tf.range(steps)[None, :] + start[:, None]) % steps  # (batch, frames)
            frames = tf.gather(frames, order, batch_dims=1)
        # Keras: a (D, 4U) and a (U, 4U) kernel, gates i, f, c, o; BlockLSTM: one (D + U, 4U), gates i, c, f, o.
        i, f, c, o = tf.split(tf.concat([cell.kernel, cell.recurrent_kernel], axis=0), 4, axis=1)
        weights = tf.concat([i, c, f, o], axis=1)  # (D + U, 4U)
        bi, bf, bc, bo = tf.split(cell.bias, 4)
        bias = tf.concat([bi, bc, bf, bo], axis=0)  # (4U,)
        time_major = tf.transpose(frames, [1, 0, 2])  # (frames, batch, D)
        batch = tf.shape(frames)[0]
        zeros = tf.zeros(tf.stack([batch, units]), frames.dtype)  # (batch, units): initial state
        peephole = tf.zeros([units], frames.dtype)  # unused with use_peephole=False
        outputs = tf.raw_ops.BlockLSTM(  # forget_bias 0: Keras' bias already holds it; cell_clip < 0: none
            seq_len_max=tf.cast(tf.shape(frames)[1], "int64"), x=time_major, cs_prev=zeros, h_prev=zeros,
            w=tf.cast(weights, frames.dtype), wci=peephole, wcf=peephole, wco=peephole,
            b=tf.cast(bias, frames.dtype), forget_bias=0.0, cell_clip=-1.0, use_peephole=False)
        hidden = tf.transpose(outputs[6], [1, 0, 2])  # (batch, frames, units)
        if mask is not None:  # back to where the frames came from
            hidden = tf.gather(hidden, (tf.range(steps)[None, :] - start[:, None]) % steps, batch_dims=1)
        return hidden

    def compute_mask(self, frames, mask=None):
        return mask  # as keras.layers.LSTM with return_sequences

    def compute_output_shape(self, frames_shape, mask_shape=None):
        return (*frames_shape[:2], self.lstm.cell.units)

    def get_config(self):
        return {**super().get_config(), "lstm": keras.saving.serialize_keras_object(self.lstm)}


def fused_lstm_view(model, keep_mask=False):
    """A model sharing every layer of ``model`` whose ``lstm1`` runs as a :class:`FusedLSTM`.

    ``keep_mask`` passes ``lstm1``'s mask on (pre-padded batches); without it the fused LSTM
    runs without a mask, exact for post-padded batches and for models without a mask.
    """
    def clone(layer):
        return FusedLSTM(layer, name=layer.name) if layer.name == "lstm1" else layer

    def call(layer, *args, **kwargs):
        if layer.name == "lstm1" and not keep_mask:
            kwargs.pop("mask", None)
        return layer(*args, **kwargs)

    return keras.models.clone_model(model, clone_function=clone, call_function=call)
