"""Ragged utterances padded into batches: numpy only, so models and training both use it.

Frames are zero-padded per batch and a boolean mask marks the real frames; with
masking the model's outputs do not depend on the padding.
"""

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np


def pad_batch(sequences: Sequence[np.ndarray], length: int | None = None, padding: str = "post",
              multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad sequences into one array and their validity mask.

    Args:
        sequences: list of (T_i, D) arrays.
        length: pad to this many frames (default: the longest); longer sequences
            keep their last ``length`` frames with ``padding="pre"`` and their
            first ones with ``"post"``.
        padding: ``"post"`` (zeros after the frames) or ``"pre"`` (before, as the
            published scripts did).
        multiple: without ``length``, round the longest up to a multiple of this,
            so that XLA compiles one program per length class, not per length.

    Returns:
        ``(batch, mask)``: float32 (B, length, D) and bool (B, length).
    """
    length = length or multiple * math.ceil(max(len(s) for s in sequences) / multiple)
    dim = sequences[0].shape[1]
    batch = np.zeros((len(sequences), length, dim), dtype=np.float32)
    mask = np.zeros((len(sequences), length), dtype=bool)
    for i, sequence in enumerate(sequences):
        if padding == "pre":
            sequence = sequence[-length:]
            batch[i, length - len(sequence):] = sequence
            mask[i, length - len(sequence):] = True
        else:
            sequence = sequence[:length]
            batch[i, :len(sequence)] = sequence
            mask[i, :len(sequence)] = True
    return batch, mask


def batch_inputs(batch: np.ndarray, mask: np.ndarray, utterance_inputs: Mapping[str, np.ndarray] | None,
                 index: np.ndarray) -> dict[str, np.ndarray]:
    """A batch's model inputs: padded frames, their mask, and rows ``index`` of ``utterance_inputs``."""
    return {"features": batch, "mask": mask} | {name: values[index] for name, values in (utterance_inputs or {}).items()}


def inference_batches(sequences: Sequence[np.ndarray], batch_size: int, pad_to: int | None = None,
                      padding: str = "post", pad_multiple: int = 1,
                      utterance_inputs: Mapping[str, np.ndarray] | None = None
                      ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Length-sorted padded batches for prediction, with the indices they hold."""
    order = np.argsort(sequence_lengths(sequences), kind="stable")
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        batch, mask = pad_batch([sequences[i] for i in index], pad_to, padding, pad_multiple)
        yield index, batch_inputs(batch, mask, utterance_inputs, index)


def sequence_lengths(sequences: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) frames per sequence; a store's sequences know them without reading frames."""
    lengths = getattr(sequences, "lengths", None)
    return np.asarray(lengths if lengths is not None else [len(s) for s in sequences])
