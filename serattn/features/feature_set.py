"""Feature sets: ragged frame-level features of labelled utterances, on disk and in memory.

A feature set is one ``.npz`` file holding no padding:

=================  ==============  ===============================================
key                shape           meaning
=================  ==============  ===============================================
``features``       (sum(L), D)     float32 frames of all utterances, concatenated
``lengths``        (N,)            int64 frames per utterance, all > 0
``ids``            (N,)            str, unique utterance ids
``labels``         (N,)            str class labels
``speakers``       (N,)            str speaker ids
``split``          (N,)            str, optional (e.g. ``train``/``test``)
``source_ids``     (N,)            str, optional: the utterance an augmented copy was
                                   made from (its own id for an original); format 2
``column_NAME``    (N,)            str, optional: the manifest's other columns (session,
                                   arousal, partition...), as written in the manifest
``feature_names``  (D,)            str
``meta``           ()              str, optional JSON (feature set, frame rate...)
=================  ==============  ===============================================

The published scripts stored padded arrays instead; :func:`load_feature_set`
also reads those (``X`` of shape (N, T_max, D), zero-padded at the front or the
back) so old feature files keep working.

Augmented copies (``extract_features.py --augment``) are rows whose ``source_ids``
differ from their ``ids``. A copy has its source's label, speaker and split, and its
source is in the same set (checked on load and save), so every speaker or split
partition puts it where its source goes; the training protocols then keep copies in
the fitting part of a training set only (:meth:`FeatureSet.originals`).
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from serattn.atomic import write_atomically
from serattn.define import FEATURE_FILE_VERSION
from serattn.errors import InputError

COLUMN_PREFIX = "column_"  # .npz key of a manifest column: column_session, column_arousal...


@dataclasses.dataclass
class FeatureSet:
    """Variable-length feature sequences with their labels, speakers and ids."""

    features: np.ndarray  # (sum of lengths, D) float32
    lengths: np.ndarray  # (N,) int64
    ids: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) str
    speakers: np.ndarray  # (N,) str
    feature_names: np.ndarray  # (D,) str
    split: np.ndarray | None = None  # (N,) str
    meta: dict = dataclasses.field(default_factory=dict)
    source_ids: np.ndarray | None = None  # (N,) str: a copy's source utterance (None: no copies)
    # The manifest's other columns, name -> (N,) str, carried so that protocols can group or split by
    # any of them (``--group-by``, ``--split-by``) and dimensional values travel with the utterances.
    columns: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.lengths)

    @property
    def dim(self):
        return self.features.shape[1]

    @property
    def offsets(self):
        """Start row of each utterance in ``features``, shape (N + 1,)."""
        return offsets_of(self.lengths)

    @property
    def is_lazy(self):
        """True when the frames stay on disk (a sharded store, see :mod:`serattn.features.store`)."""
        return not isinstance(self.features, np.ndarray)

    def sequence(self, i):
        if self.is_lazy:
            lazy: Any = self.features  # a store's ShardedFrames (serattn.features.store)
            return lazy.utterance(i)
        start, stop = self.offsets[i], self.offsets[i + 1]
        return self.features[start:stop]

    def sequences(self):
        """(T_i, D) frames per utterance: views of the frames, or for a store a list-like that reads
        each utterance when indexed (its ``lengths`` known without reading)."""
        if self.is_lazy:
            lazy: Any = self.features
            return lazy.sequences()
        return np.split(self.features, np.cumsum(self.lengths)[:-1])

    @property
    def is_copy(self):
        """(N,) bool: True for augmented copies, False for original utterances."""
        if self.source_ids is None:
            return np.zeros(len(self), dtype=bool)
        return self.source_ids != self.ids

    @property
    def has_copies(self):
        return bool(self.is_copy.any())

    def column(self, name, flag, source=None):
        """(N,) str values of the manifest column ``name``; InputError naming ``flag`` (and the file) if none."""
        if name not in self.columns:
            where = f"'{source}'" if source else "the feature set"
            listed = ", ".join(sorted(self.columns)) or "none (extract it again from a manifest or recipe)"
            raise InputError(f"{flag} {name}: {where} has no column '{name}'; its columns: {listed}")
        return self.columns[name]

    def numeric_column(self, name, flag="column"):
        """(N,) float64 values of a numeric column (arousal, valence...); NaN where empty."""
        values = self.column(name, flag)
        try:
            return np.array([float(v) if v != "" else np.nan for v in values])
        except ValueError:
            raise InputError(f"{flag} {name}: column '{name}' is not numeric") from None

    def originals(self):
        """The original utterances only: augmented copies dropped (this set itself when it has none)."""
        return self.subset(~self.is_copy) if self.has_copies else self

    def subset(self, selection):
        """The utterances picked by a boolean mask or an index array, in that order.

        Picking every utterance in order returns this set itself, not a copy of its
        frames (feature sets are never changed in place).
        """
        index = np.arange(len(self))[selection]
        if np.array_equal(index, np.arange(len(self))):
            return self
        if self.is_lazy:  # a store's subset points at the same shards: no frame is read
            return self._with_utterances(self.features.take(index), index)
        rows = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in index]) \
            if len(index) else np.zeros(0, dtype=np.int64)
        return self._with_utterances(self.features[rows], index)

    def _with_utterances(self, features, index):
        return dataclasses.replace(
            self,
            features=features,
            lengths=self.lengths[index],
            ids=self.ids[index],
            labels=self.labels[index],
            speakers=self.speakers[index],
            split=None if self.split is None else self.split[index],
            source_ids=None if self.source_ids is None else self.source_ids[index],
            columns={name: values[index] for name, values in self.columns.items()},
        )

    def with_features(self, features):
        """The same utterances with new frame values (e.g. normalized)."""
        return dataclasses.replace(self, features=np.asarray(features, dtype=np.float32))

    @classmethod
    def from_sequences(cls, sequences, ids, labels, speakers, feature_names, split=None, meta=None,
                       source_ids=None, columns=None):
        sequences = [np.asarray(s, dtype=np.float32) for s in sequences]
        dim = len(feature_names)
        features = np.concatenate(sequences) if sequences else np.zeros((0, dim), np.float32)
        return cls.from_arrays(features.reshape(-1, dim), [len(s) for s in sequences], ids, labels, speakers,
                               feature_names, split, meta, source_ids, columns)

    @classmethod
    def from_arrays(cls, features, lengths, ids, labels, speakers, feature_names, split=None, meta=None,
                    source_ids=None, columns=None):
        """A feature set of concatenated ``features`` (an array, or a store's lazy frames) and metadata."""
        return cls(
            features=features,
            lengths=np.asarray(lengths, dtype=np.int64),
            ids=np.asarray(ids, dtype=str),
            labels=np.asarray(labels, dtype=str),
            speakers=np.asarray(speakers, dtype=str),
            feature_names=np.asarray(feature_names, dtype=str),
            split=None if split is None else np.asarray(split, dtype=str),
            meta=dict(meta or {}),
            source_ids=None if source_ids is None else np.asarray(source_ids, dtype=str),
            columns={name: np.asarray(values, dtype=str) for name, values in (columns or {}).items()},
        )


def concatenate(feature_sets):
    """One feature set holding all utterances of several (same features)."""
    first = feature_sets[0]
    has_split = all(fs.split is not None for fs in feature_sets)
    has_sources = any(fs.source_ids is not None for fs in feature_sets)
    shared = [name for name in first.columns if all(name in fs.columns for fs in feature_sets)]
    return dataclasses.replace(
        first,
        features=np.concatenate([np.asarray(fs.features) for fs in feature_sets]),
        lengths=np.concatenate([fs.lengths for fs in feature_sets]),
        ids=np.concatenate([fs.ids for fs in feature_sets]),
        labels=np.concatenate([fs.labels for fs in feature_sets]),
        speakers=np.concatenate([fs.speakers for fs in feature_sets]),
        split=np.concatenate([fs.split for fs in feature_sets]) if has_split else None,
        source_ids=np.concatenate([fs.ids if fs.source_ids is None else fs.source_ids for fs in feature_sets])
        if has_sources else None,
        columns={name: np.concatenate([fs.columns[name] for fs in feature_sets]) for name in shared},
    )


# --- saving ------------------------------------------------------------------


def save_feature_set(feature_set, path):
    """Write ``feature_set`` to ``path`` (.npz) atomically: temp file, then rename."""
    check_feature_set(feature_set, path)
    arrays = dict(
        features=feature_set.features.astype(np.float32),
        lengths=feature_set.lengths.astype(np.int64),
        ids=feature_set.ids.astype(str),
        labels=feature_set.labels.astype(str),
        speakers=feature_set.speakers.astype(str),
        feature_names=feature_set.feature_names.astype(str),
        meta=np.array(json.dumps({**feature_set.meta, "format_version": FEATURE_FILE_VERSION})),
    )
    if feature_set.split is not None:
        arrays["split"] = feature_set.split.astype(str)
    if feature_set.has_copies:
        arrays["source_ids"] = feature_set.source_ids.astype(str)
    for name, values in feature_set.columns.items():
        arrays[COLUMN_PREFIX + name] = values.astype(str)

    def write(temporary):
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)

    write_atomically(path, write)


# --- ragged <-> padded -----------------------------------------------------------


def offsets_of(lengths):
    """Start of each utterance in the concatenated frames, shape (N + 1,)."""
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])


def ragged_from_padded(padded, lengths, padding="post"):
    """Drop the padding of a padded batch and concatenate the valid frames.

    Args:
        padded: (N, T_max) or (N, T_max, D) array, e.g. attention weights as
            the published scripts saved them (padded to 2,453 frames).
        lengths: (N,) valid frames per utterance, each in 1..T_max.
        padding: ``"post"`` (valid frames first, zeros after) or ``"pre"``
            (zeros first, as the published scripts padded).

    Returns:
        (sum(lengths), ...) array of the valid frames, utterance after utterance.
    """
    padded = np.asarray(padded)
    lengths = np.asarray(lengths, dtype=np.int64)
    if padding not in ("pre", "post"):
        raise InputError(f"unknown padding '{padding}'; expected one of: post, pre")
    if padded.ndim < 2 or lengths.shape != (padded.shape[0],):
        raise InputError(f"expected padded (N, T_max, ...) and lengths (N,), "
                         f"got {padded.shape} and {lengths.shape}")
    t_max = padded.shape[1]
    if np.any(lengths < 0) or np.any(lengths > t_max):
        raise InputError(f"lengths must lie in 0..{t_max} (the padded length)")
    frame = np.arange(t_max)
    if padding == "post":
        valid = frame[None, :] < lengths[:, None]  # (N, T_max)
    else:
        valid = frame[None, :] >= t_max - lengths[:, None]
    return padded[valid]  # row-major: utterance 0's frames, then utterance 1's...


def padded_from_ragged(values, lengths, padding="post", t_max=None):
    """The inverse of :func:`ragged_from_padded`: zero-pad to (N, T_max, ...)."""
    values = np.asarray(values)
    lengths = np.asarray(lengths, dtype=np.int64)
    t_max = int(lengths.max()) if t_max is None else t_max
    frame = np.arange(t_max)
    if padding == "post":
        valid = frame[None, :] < lengths[:, None]
    else:
        valid = frame[None, :] >= t_max - lengths[:, None]
    padded = np.zeros((len(lengths), t_max) + values.shape[1:], dtype=values.dtype)
    padded[valid] = values
    return padded


# --- loading -----------------------------------------------------------------


def load_feature_set(path, padding="auto"):
    """Read a feature set from ``.npz`` (ragged or padded) or a padded ``.npy``.

    Args:
        path: a ragged ``.npz`` as written by :func:`save_feature_set`, or the
            published layout: ``.npz`` with ``X`` (N, T_max, D) and ``y`` (labels
            as strings or one-hot; ``labels`` is accepted too), optionally
            ``lengths``, ``ids``, ``speakers``, ``split``; or ``X*.npy`` with its
            labels in the sibling file named with ``X`` replaced by ``y``.
        padding: where padded arrays carry their zeros when ``lengths`` is not
            stored: ``"pre"``, ``"post"`` or ``"auto"`` (the side where more
            utterances start or end with an all-zero frame).

    Raises:
        InputError: the file is missing, unreadable or not a valid feature set.
    """
    path = Path(path)
    if path.is_dir():
        from serattn.features.store import load_store  # a sharded store: metadata now, frames when read

        return load_store(path)
    if not path.is_file():
        raise InputError(f"feature file '{path}' does not exist")
    try:
        if path.suffix == ".npy":
            arrays = {"X": np.load(path, allow_pickle=False), "y": _load_sibling_labels(path)}
        else:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
    except InputError:
        raise
    except Exception as error:  # numpy raises many types for a bad file
        raise InputError(f"cannot read feature file '{path}': {error}") from None

    if "features" in arrays:
        feature_set = _from_ragged_arrays(arrays, path)
    elif "X" in arrays:
        feature_set = _from_padded_arrays(arrays, path, padding)
    else:
        raise InputError(
            f"'{path}' is not a feature set: expected arrays 'features' and 'lengths' "
            f"(ragged) or 'X' (padded), found {sorted(arrays) or 'none'}"
        )
    check_feature_set(feature_set, path)
    return feature_set


def _require(arrays, keys, path):
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise InputError(f"feature file '{path}' lacks the array(s) {', '.join(missing)}")


def _strings(array, name, path):
    array = np.asarray(array)
    if array.dtype.kind not in "USO" and array.dtype.kind not in "iu":
        raise InputError(f"'{name}' in '{path}' must hold strings, got dtype {array.dtype}")
    return array.astype(str)


def _from_ragged_arrays(arrays, path, lazy_frames=None):
    """The feature set of an .npz's arrays; a store passes its metadata arrays and ``lazy_frames``."""
    _require(arrays, ["lengths", "labels"] if lazy_frames is not None else ["features", "lengths", "labels"], path)
    features = np.asarray(arrays["features"]) if lazy_frames is None else lazy_frames
    lengths = np.asarray(arrays["lengths"])
    if features.ndim != 2:
        raise InputError(f"'features' in '{path}' must be 2-d (frames, D), got shape {features.shape}")
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        raise InputError(f"'lengths' in '{path}' must be a 1-d integer array, got {lengths.dtype} {lengths.shape}")
    n = len(lengths)
    ids = arrays.get("ids", np.array([f"utt{i:06d}" for i in range(n)]))
    meta = {}
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"]))
        except ValueError:
            raise InputError(f"'meta' in '{path}' is not valid JSON") from None
    version = meta.get("format_version", 1) if isinstance(meta, dict) else 1
    if not isinstance(version, int) or version > FEATURE_FILE_VERSION:
        raise InputError(f"feature file '{path}' has format version {version}, newer than this serattn reads "
                         f"({FEATURE_FILE_VERSION}); update serattn")
    if lazy_frames is not None:
        frames = lazy_frames
    else:
        with np.errstate(over="ignore"):  # values beyond float32 become inf, reported by check_feature_set
            frames = features.astype(np.float32, copy=False) if features.dtype.kind == "f" \
                else _float_frames(features, path)
    return FeatureSet(
        features=frames,
        lengths=lengths.astype(np.int64),
        ids=_strings(ids, "ids", path),
        labels=_labels(arrays["labels"], n, path),
        speakers=_strings(arrays.get("speakers", ids), "speakers", path),
        feature_names=_strings(
            arrays.get("feature_names", np.array([f"f{j}" for j in range(features.shape[1])])),
            "feature_names", path),
        split=_strings(arrays["split"], "split", path) if "split" in arrays else None,
        meta=meta,
        source_ids=_strings(arrays["source_ids"], "source_ids", path) if "source_ids" in arrays else None,
        columns={key[len(COLUMN_PREFIX):]: _strings(values, key, path) for key, values in arrays.items()
                 if key.startswith(COLUMN_PREFIX)},
    )


def _float_frames(features, path):
    if features.dtype.kind not in "iu":
        raise InputError(f"'features' in '{path}' must be numbers, got dtype {features.dtype}")
    return features.astype(np.float32)


def _labels(labels, n, path):
    """Class labels as strings; one-hot rows become their column index."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        if labels.shape[0] != n or not np.all(np.isin(labels, (0, 1))) or not np.all(labels.sum(1) == 1):
            raise InputError(f"one-hot labels in '{path}' must be (N, classes) with a single 1 per row, "
                             f"got shape {labels.shape}")
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        raise InputError(f"labels in '{path}' must be 1-d strings or 2-d one-hot, got shape {labels.shape}")
    return _strings(labels, "labels", path)


def _load_sibling_labels(path):
    if "X" not in path.name:
        raise InputError(f"cannot find labels for '{path}': name the file X*.npy and store labels in y*.npy")
    label_path = path.with_name(path.name.replace("X", "y", 1))
    if not label_path.is_file():
        raise InputError(f"labels for '{path}' not found: expected '{label_path}'")
    return np.load(label_path, allow_pickle=False)


def _from_padded_arrays(arrays, path, padding):
    padded = np.asarray(arrays["X"])
    if padded.ndim != 3:
        raise InputError(f"'X' in '{path}' must be 3-d (N, T_max, D), got shape {padded.shape}")
    if padded.dtype.kind not in "fiu":
        raise InputError(f"'X' in '{path}' must be numbers, got dtype {padded.dtype}")
    n, t_max, dim = padded.shape
    label_key = "y" if "y" in arrays else "labels"
    _require(arrays, [label_key], path)
    if padding not in ("pre", "post", "auto"):
        raise InputError(f"unknown padding '{padding}'; expected one of: auto, post, pre")

    nonzero = np.any(padded != 0, axis=2)  # (N, T_max)
    if "lengths" in arrays:
        lengths = np.asarray(arrays["lengths"]).astype(np.int64)
        if lengths.shape != (n,) or np.any(lengths < 1) or np.any(lengths > t_max):
            raise InputError(f"'lengths' in '{path}' must be N={n} values in 1..{t_max}")
    else:
        first = nonzero.argmax(axis=1)
        last = t_max - nonzero[:, ::-1].argmax(axis=1)
        lengths = np.where(nonzero.any(axis=1), np.where(_padding_side(nonzero, padding) == "pre",
                                                         t_max - first, last), 0)
    side = _padding_side(nonzero, padding)
    rows = np.split(ragged_from_padded(padded, lengths, side), np.cumsum(lengths)[:-1])
    ids = arrays.get("ids", np.array([f"utt{i:06d}" for i in range(n)]))
    return FeatureSet.from_sequences(
        rows,
        ids=_strings(ids, "ids", path),
        labels=_labels(arrays[label_key], n, path),
        speakers=_strings(arrays.get("speakers", ids), "speakers", path),
        feature_names=_strings(arrays.get("feature_names", np.array([f"f{j}" for j in range(dim)])),
                               "feature_names", path),
        split=_strings(arrays["split"], "split", path) if "split" in arrays else None,
        meta={"converted_from": "padded", "padding": side},
    )


def _padding_side(nonzero, padding):
    if padding != "auto":
        return padding
    starts_with_zero = np.sum(~nonzero[:, 0])
    ends_with_zero = np.sum(~nonzero[:, -1])
    return "pre" if starts_with_zero > ends_with_zero else "post"


# --- validation ----------------------------------------------------------------


def check_feature_set(fs, source):
    """Raise InputError unless ``fs`` is internally consistent and finite."""
    n = len(fs.lengths)
    if n == 0:
        raise InputError(f"'{source}' holds no utterances")
    if fs.features.ndim != 2:
        raise InputError(f"features in '{source}' must be 2-d (frames, D), got shape {fs.features.shape}")
    if np.any(fs.lengths <= 0):
        bad = fs.ids[np.flatnonzero(fs.lengths <= 0)[0]]
        raise InputError(f"'{source}' has utterances with no frames (first: '{bad}'); remove them")
    if int(fs.lengths.sum()) != len(fs.features):
        raise InputError(f"lengths in '{source}' add up to {int(fs.lengths.sum())} frames "
                         f"but 'features' has {len(fs.features)} rows")
    optional = tuple(name for name in ("split", "source_ids") if getattr(fs, name) is not None)
    for name in ("ids", "labels", "speakers") + optional:
        values = getattr(fs, name)
        if values.shape != (n,):
            raise InputError(f"'{name}' in '{source}' has shape {values.shape}, expected ({n},) "
                             f"like 'lengths'")
    for name, values in fs.columns.items():
        if values.shape != (n,):
            raise InputError(f"column '{name}' in '{source}' has shape {values.shape}, expected ({n},) "
                             f"like 'lengths'")
    if fs.feature_names.shape != (fs.dim,):
        raise InputError(f"'feature_names' in '{source}' has {fs.feature_names.size} names "
                         f"for {fs.dim} features")
    if not fs.is_lazy and not np.all(np.isfinite(fs.features)):  # a store's shards are checked as written
        row = int(np.flatnonzero(~np.all(np.isfinite(fs.features), axis=1))[0])
        utterance = fs.ids[np.searchsorted(fs.offsets, row, side="right") - 1]
        raise InputError(f"'{source}' has NaN or infinite feature values (first in utterance "
                         f"'{utterance}'); re-extract or drop it")
    if len(np.unique(fs.ids)) != n:
        raise InputError(f"utterance ids in '{source}' are not unique")
    if np.any(fs.labels == ""):
        raise InputError(f"'{source}' has utterances with an empty label")
    check_copies(fs, source)


def check_copies(fs, source):
    """Raise InputError unless every augmented copy's source is an original of ``fs`` with the
    copy's label, speaker and split: what keeps a copy on its source's side of every split."""
    copies = np.flatnonzero(fs.is_copy)
    if not len(copies):
        return
    row_of = {utterance: i for i, utterance in enumerate(fs.ids)}
    for i in copies:
        source_row = row_of.get(fs.source_ids[i])
        if source_row is None or fs.is_copy[source_row]:
            raise InputError(f"augmented copy '{fs.ids[i]}' in '{source}' names source '{fs.source_ids[i]}', "
                             f"which is not an original utterance of that file; re-extract it")
        for name, what in (("labels", "label"), ("speakers", "speaker"), ("split", "split")):
            values = getattr(fs, name)
            if values is not None and values[i] != values[source_row]:
                raise InputError(f"augmented copy '{fs.ids[i]}' in '{source}' has {what} '{values[i]}' but its "
                                 f"source '{fs.source_ids[i]}' has '{values[source_row]}'; a copy must go where "
                                 f"its source goes: re-extract it")


def check_same_features(train, test, train_source, test_source):
    """Raise InputError unless two feature sets have the same features per frame."""
    if train.dim != test.dim:
        raise InputError(f"expected {train.dim} features per frame as in '{train_source}', "
                         f"got {test.dim} in '{test_source}'")
    if not np.array_equal(train.feature_names, test.feature_names):
        raise InputError(f"feature names of '{test_source}' differ from those of '{train_source}'")
