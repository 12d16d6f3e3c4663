"""Sharded feature stores: feature sets larger than memory, as a folder of ``.npy`` shards.

A store holds what a ragged ``.npz`` holds (see :mod:`serattn.features.feature_set`),
split in two:

=========================  =====================================================
``index.npz``              the metadata, read eagerly: ``lengths``, ``ids``,
                           ``labels``, ``speakers``, ``split``, ``source_ids``,
                           ``column_NAME``, ``feature_names``, ``meta``, and where
                           each utterance's frames lie: ``shard`` (N,) and
                           ``start`` (N,), its first row in that shard
``shard-00000.npy`` ...    float32 (rows, D) frames, utterance after utterance
=========================  =====================================================

:func:`load_store` returns an ordinary :class:`FeatureSet` whose ``features`` are
:class:`ShardedFrames`: an utterance's frames are read from its shard when asked for
(``os.pread`` at its offset, not a memory map, so that pages read once do not count
in the process's resident memory), subsets and normalization only change pointers and
scales. Anything that needs the whole array (``np.asarray(fs.features)``) still gets
it, read at once.

A store is written into ``STORE.partial/`` and renamed to ``STORE`` when complete, so
a folder named like a store is always a finished one; each shard is written
atomically, so an interrupted extraction resumes at the first missing shard.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from serattn.atomic import write_atomically
from serattn.define import FEATURE_FILE_VERSION
from serattn.errors import InputError
from serattn.features import feature_set as sets

INDEX_FILE = "index.npz"
STORE_VERSION = 1
SHARD_SIZE = 1000  # --shard-size default: utterances per shard (about 40 MB of IS09 frames at 3 s each)
PARTIAL_SUFFIX = ".partial"  # STORE.partial/: a store being written


def shard_name(number):
    return f"shard-{number:05d}.npy"


def is_store(path):
    """True for a finished store: a folder with an index (a ``.partial`` one has none yet)."""
    path = Path(path)
    return path.is_dir() and not path.is_symlink() and (path / INDEX_FILE).is_file()


def partial_path(path):
    """Where the store ``path`` is written until it is complete."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


# --- lazy frames -------------------------------------------------------------------


class ShardedFrames:
    """The (sum(lengths), D) frames of a store's utterances, read from the shards when needed.

    Utterance ``i`` is rows ``start[i]:start[i] + lengths[i]`` of shard ``shard[i]``;
    with scales it is returned as ``(frames - mean[scale[i]]) / std[scale[i]]`` in
    float32, the operations :class:`~serattn.features.normalization.Normalization`
    applies to frames in memory, so both give the same values.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, paths, shard, start, lengths, dim, mean=None, std=None, scale=None, files=None):
        self.paths = [str(p) for p in paths]
        self.shard = np.asarray(shard, dtype=np.int64)
        self.start = np.asarray(start, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.dim = int(dim)
        self.mean, self.std, self.scale = mean, std, scale  # (K, D), (K, D), (N,) or all None
        self.files = files or ShardFiles(self.paths, self.dim)  # shared by every subset and scaled view

    @property
    def shape(self):
        return (int(self.lengths.sum()), self.dim)

    def __len__(self):
        return self.shape[0]

    def __getstate__(self):  # pickled for worker processes: open files stay behind
        return {**self.__dict__, "files": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.files = ShardFiles(self.paths, self.dim)

    def raw(self, i):
        """Utterance ``i``'s frames as stored, (T_i, D) float32."""
        descriptor, offset = self.files.open(int(self.shard[i]))
        size = int(self.lengths[i]) * self.dim * 4
        data = os.pread(descriptor, size, offset + int(self.start[i]) * self.dim * 4)
        if len(data) != size:
            raise InputError(f"shard '{self.paths[int(self.shard[i])]}' is shorter than its index says; "
                             f"the store is damaged: convert or extract it again")
        return np.frombuffer(data, dtype=np.float32).reshape(-1, self.dim).copy()

    def utterance(self, i):
        """Utterance ``i``'s frames, scaled if this view is normalized."""
        frames = self.raw(i)
        if self.scale is not None:
            frames -= self.mean[self.scale[i]]
            frames /= self.std[self.scale[i]]
        return frames

    def sequences(self):
        return Sequences(self)

    def take(self, index):
        """The frames of utterances ``index`` (indices), in that order: pointers only."""
        return ShardedFrames(self.paths, self.shard[index], self.start[index], self.lengths[index], self.dim,
                             self.mean, self.std, None if self.scale is None else self.scale[index], self.files)

    def scaled(self, mean, std, scale):
        """These frames z-normalized: utterance i with row ``scale[i]`` of ``mean`` and ``std`` (K, D)."""
        if self.scale is not None:
            raise ValueError("frames are normalized once")
        return ShardedFrames(self.paths, self.shard, self.start, self.lengths, self.dim,
                             np.asarray(mean, np.float32), np.asarray(std, np.float32), np.asarray(scale), self.files)

    def __array__(self, dtype=None, copy=None):
        frames = np.zeros(self.shape, np.float32)
        row = 0
        for i, length in enumerate(self.lengths):
            frames[row:row + length] = self.utterance(i)
            row += length
        return frames if dtype is None else frames.astype(dtype)

    def astype(self, dtype, copy=True):
        return np.asarray(self).astype(dtype)

    def __getitem__(self, key):  # anything array-like: read all, then index (small sets, converters)
        return np.asarray(self)[key]


class ShardFiles:
    """A store's shards, each opened once on first read: ``(descriptor, offset of its data)``."""

    def __init__(self, paths, dim):
        self.paths, self.dim, self.opened = paths, dim, {}

    def open(self, number):
        if number not in self.opened:
            _, offset = shard_rows(self.paths[number], self.dim)
            self.opened[number] = (os.open(self.paths[number], os.O_RDONLY), offset)
        return self.opened[number]

    def __del__(self):
        for descriptor, _ in self.opened.values():
            try:
                os.close(descriptor)
            except OSError:
                pass


def shard_rows(path, dim):
    """``(rows, offset of the data)`` of a shard: the rows its header promises and its size holds."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(handle)
            offset = handle.tell()
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read shard '{path}': {error}") from None
    if dtype != np.float32 or fortran or len(shape) != 2 or shape[1] != dim:
        raise InputError(f"shard '{path}' holds {dtype} {shape}, expected float32 (rows, {dim})")
    return min(shape[0], (os.path.getsize(path) - offset) // (4 * dim)), offset


class Sequences:
    """A store's utterances as a read-on-index list: ``lengths`` without reading frames."""

    def __init__(self, frames):
        self.frames = frames
        self.lengths = frames.lengths

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.frames.utterance(j) for j in range(len(self))[i]]
        return self.frames.utterance(i)

    def __iter__(self):
        return (self.frames.utterance(i) for i in range(len(self)))


def frame_chunks(feature_set, utterances=None):
    """The frames of ``utterances`` (default all) one utterance at a time, as stored (not scaled)."""
    frames = feature_set.features
    for i in range(len(feature_set)) if utterances is None else utterances:
        yield frames.raw(i) if feature_set.is_lazy else feature_set.sequence(i)


# --- writing -------------------------------------------------------------------------


def _metadata_arrays(feature_set):
    """The arrays of the index: what an .npz holds but the frames."""
    arrays = dict(
        lengths=feature_set.lengths.astype(np.int64),
        ids=feature_set.ids.astype(str),
        labels=feature_set.labels.astype(str),
        speakers=feature_set.speakers.astype(str),
        feature_names=feature_set.feature_names.astype(str),
        meta=np.array(json.dumps({**feature_set.meta, "format_version": FEATURE_FILE_VERSION,
                                  "store_version": STORE_VERSION})),
    )
    if feature_set.split is not None:
        arrays["split"] = feature_set.split.astype(str)
    if feature_set.has_copies:
        arrays["source_ids"] = feature_set.source_ids.astype(str)
    for name, values in feature_set.columns.items():
        arrays[sets.COLUMN_PREFIX + name] = values.astype(str)
    return arrays


def write_shard(folder, number, frames):
    """Write one shard atomically; returns its SHA-256 (recorded in the index)."""
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    path = Path(folder) / shard_name(number)

    def write(temporary):
        with open(temporary, "wb") as handle:
            np.save(handle, frames)

    write_atomically(path, write)
    return file_digest(path)


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def finish_store(feature_set, folder, out, shard_digests, overwrite=False):
    """Write the index of ``feature_set`` (frames in ``folder``'s shards) and rename ``folder`` to ``out``.

    ``feature_set.features`` are :class:`ShardedFrames` over shards of ``folder``.
    """
    frames = feature_set.features
    sets.check_feature_set(feature_set, out)
    arrays = _metadata_arrays(feature_set)
    arrays["shard"], arrays["start"] = frames.shard, frames.start
    arrays["shard_files"] = np.array([Path(p).name for p in frames.paths])
    arrays["shard_sha256"] = np.array(shard_digests)

    def write(temporary):
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)

    write_atomically(Path(folder) / INDEX_FILE, write)
    replace_folder(Path(folder), Path(out), overwrite)


def replace_folder(new, out, overwrite):
    """Rename ``new`` to ``out``; an existing store ``out`` (with ``overwrite``) is moved away first."""
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise InputError(f"'{out}' already exists; choose another --out, or pass --overwrite to replace it")
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(new, out)
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    else:
        os.replace(new, out)


def save_store(feature_set, out, shard_size=SHARD_SIZE, overwrite=False):
    """Write ``feature_set`` (in memory or another store) as a store of ``shard_size`` utterances per shard."""
    if shard_size < 1:
        raise InputError(f"--shard-size must be at least 1 utterance, got {shard_size}")
    sets.check_feature_set(feature_set, out)
    out = Path(out)
    folder = partial_path(out)
    shutil.rmtree(folder, ignore_errors=True)  # a converter has nothing to resume
    folder.mkdir(parents=True)
    try:
        n = len(feature_set)
        shard = np.arange(n) // shard_size
        start = np.zeros(n, np.int64)
        digests = []
        for number, first in enumerate(range(0, n, shard_size)):
            rows = list(frame_chunks(feature_set, range(first, min(first + shard_size, n))))
            if feature_set.is_lazy and feature_set.features.scale is not None:
                raise ValueError("save the unnormalized store")
            frames = np.concatenate(rows)
            if not np.all(np.isfinite(frames)):
                raise InputError(f"'{out}': NaN or infinite feature values in utterances {first}-{first + len(rows) - 1}")
            start[first:first + len(rows)] = sets.offsets_of([len(r) for r in rows])[:-1]
            digests.append(write_shard(folder, number, frames))
        paths = [folder / shard_name(number) for number in range(len(digests))]
        lazy = dataclasses.replace(feature_set, features=ShardedFrames(paths, shard, start, feature_set.lengths,
                                                                       feature_set.dim))
        finish_store(lazy, folder, out, digests, overwrite)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return load_store(out)


# --- reading -------------------------------------------------------------------------


def load_store(path):
    """The feature set of store ``path``: metadata read now, frames when an utterance is asked for.

    Raises:
        InputError: not a finished store, or an index that does not match its shards.
    """
    path = Path(path)
    if not is_store(path):
        partial = " (an extraction still being written or interrupted: run it again to resume)" \
            if path.name.endswith(PARTIAL_SUFFIX) else ""
        raise InputError(f"feature file '{path}' is a folder but not a feature store: it has no {INDEX_FILE}"
                         f"{partial}; give an .npz file or a store written by extract_features.py")
    try:
        with np.load(path / INDEX_FILE, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as error:  # numpy raises many types for a bad file
        raise InputError(f"cannot read the index of feature store '{path}': {error}") from None
    sets._require(arrays, ["shard", "start", "shard_files", "feature_names"], path)
    shard, start, lengths = (np.asarray(arrays[key], np.int64) for key in ("shard", "start", "lengths"))
    files = [path / str(name) for name in arrays["shard_files"]]
    if len(shard) != len(lengths) or len(start) != len(lengths) or (len(shard) and (shard.min() < 0 or
                                                                                      shard.max() >= len(files))):
        raise InputError(f"the index of feature store '{path}' does not match its shards; convert or extract it again")
    for number, file in enumerate(files):
        if not file.is_file():
            raise InputError(f"feature store '{path}' lacks its shard '{file.name}'; convert or extract it again")
        mine = shard == number
        if mine.any():
            rows, _ = shard_rows(file, len(arrays["feature_names"]))
            if int((start[mine] + lengths[mine]).max()) > rows:
                raise InputError(f"shard '{file}' has {rows} rows, fewer than the index of '{path}' points at; "
                                 f"convert or extract it again")
    frames = ShardedFrames(files, shard, start, lengths, len(arrays["feature_names"]))
    feature_set = sets._from_ragged_arrays(arrays, path, lazy_frames=frames)
    sets.check_feature_set(feature_set, path)
    return feature_set


def data_digest(path):
    """SHA-256 identifying a feature file or store (a store's index records its shards' hashes)."""
    path = Path(path)
    return file_digest(path / INDEX_FILE if path.is_dir() else path)


def convert(source, out, shard_size=SHARD_SIZE, overwrite=False):
    """``.npz`` -> store or store -> ``.npz``, whichever ``out`` is (a name ending in .npz is a file)."""
    feature_set = sets.load_feature_set(source)
    out = Path(out)
    if out.suffix == ".npz":
        if (out.exists() or out.is_symlink()) and not overwrite:
            raise InputError(f"'{out}' already exists; choose another --out, or pass --overwrite to replace it")
        meta = {key: value for key, value in feature_set.meta.items() if key != "store_version"}
        sets.save_feature_set(dataclasses.replace(feature_set.with_features(np.asarray(feature_set.features)),
                                                  meta=meta), out)
    else:
        save_store(feature_set, out, shard_size, overwrite)
    print(f"converted '{source}' ({len(feature_set)} utterances, {len(feature_set.features)} frames) -> {out}",
          file=sys.stderr)
