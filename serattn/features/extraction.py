"""openSMILE features of audio files: frame-level low-level descriptors or functionals.

The published system fed the 16 IS09 low-level descriptors and their 16 deltas
(32 values per 10 ms frame) to an attention LSTM. IS09's LLDs and deltas come from
one openSMILE pass (``lld_with_deltas.conf`` joins the two levels of the feature
set's own config), not from opensmile-python's two feature levels, each of which
runs the whole pipeline. openSMILE repeats the last frame's start time at the end
of the input; the repeated frames are dropped. ComParE keeps the two passes joined
on frame start time: there one pass gives other deltas on the last frame.

Extraction of a manifest runs in a process pool, skips files it cannot use and
says why (among them anything but a regular file, since a FIFO blocks for ever and
``/dev/zero`` never ends; files over a size limit; float audio outside [-1, 1],
which openSMILE's int16 conversion would wrap around), and caches each file's
features under a hash of its content and of the feature settings, so a second run
only extracts new files. The same recording listed twice (one file under two
spellings of its path, or two files whose decoded samples are identical, e.g. a WAV
and its FLAC copy) is extracted once: with the same label and speaker the other rows are
dropped as duplicates, with different ones the manifest is refused, since one
recording could otherwise land in training and test at once.

Augmentation (``augment={"speed": (0.9, 1.1)}``) adds, for every kept file, one
speed-perturbed copy per factor, extracted like the original: the samples are
read as if recorded at ``rate * factor`` and resampled to 16 kHz, so tempo and
pitch change together and the copy lasts ``1 / factor`` as long (the speed
perturbation of Kaldi and ESPnet, Ko et al., Interspeech 2015). A copy's id is
``PATH#speed0.9``; it has its source's label, speaker and split, and its
``source_ids`` entry names the source, so training can keep it on the source's side
of every split (see :mod:`serattn.training.protocols`).
"""

import csv
import functools
from fractions import Fraction
import hashlib
import io
import json
import math
import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import opensmile
import soundfile as sf
from scipy.signal import resample_poly
from tqdm import tqdm

import serattn
from serattn.features.corpora import check_inside_root, read_manifest
from serattn.atomic import write_atomically
from serattn.features.feature_set import FeatureSet, save_feature_set
from serattn.define import FEATURE_LEVELS, FRAME_RATE, OPENSMILE_SETS, SAMPLE_RATE
from serattn.errors import InputError, describe_mode

MIN_SAMPLES = int(0.025 * SAMPLE_RATE)  # one 25 ms analysis window
CACHE_VERSION = 3  # bump when what a cached array means changes (2: NaN samples skipped, 3: samples > 1)
NON_FINITE = "non-finite samples"  # start of the reason for audio with NaN or infinite samples
OUT_OF_RANGE = "samples outside [-1, 1]"  # start of the reason for float audio at another scale
MAX_FILE_MB = 256  # --max-file-mb default: about 2 h of 16 kHz 16-bit mono, far beyond an utterance
# opensmile-python hands openSMILE int16 samples (x * 32768, cast without clipping): 1.0 would wrap.
INT16_PEAK = 32767 / 32768
AUGMENTATIONS = ("speed",)
SPEED_RANGE = (0.5, 2.0)  # speed factors allowed, exclusive of 1 (Kaldi's recipes use 0.9 and 1.1)
ONE_PASS_SETS = ("is09",)  # LLDs and deltas in one pass; tested equal to the two passes joined on time
ONE_PASS_CONFIG = Path(__file__).with_name("lld_with_deltas.conf")
OPENSMILE_CONFIGS = {"is09": "is09-13/IS09_emotion.conf"}  # inside opensmile's package, for ONE_PASS_SETS


def parse_augment(spec):
    """Parse ``--augment``: ``"speed=0.9,1.1"`` -> ``{"speed": (0.9, 1.1)}``.

    Raises:
        InputError: an unknown augmentation, or factors that are not distinct
            numbers in ``SPEED_RANGE`` other than 1.
    """
    if spec is None:
        return {}
    kind, equals, values = spec.partition("=")
    kind = kind.strip()
    if kind not in AUGMENTATIONS:
        raise InputError(f"--augment: unknown augmentation '{kind}' in '{spec}'; expected one of: "
                         f"{', '.join(AUGMENTATIONS)} (e.g. --augment speed=0.9,1.1)")
    low, high = SPEED_RANGE
    factors = []
    for value in values.split(",") if equals else [""]:
        try:
            factor = float(value)
        except ValueError:
            factor = math.nan
        if not (low <= factor <= high) or factor == 1 or factor in factors:
            raise InputError(f"--augment speed: expected distinct factors from {low:g} to {high:g} other than 1, "
                             f"e.g. speed=0.9,1.1; got '{value.strip()}' in '{spec}'")
        factors.append(factor)
    return {kind: tuple(factors)}


def copy_id(source_id, factor):
    """The id of the speed-perturbed copy of utterance ``source_id``: ``ID#speed0.9``."""
    return f"{source_id}#speed{factor:g}"


def check_settings(feature_set, level):
    """Raise InputError unless ``feature_set`` and ``level`` are known names."""
    if feature_set not in OPENSMILE_SETS:
        raise InputError(f"unknown feature set '{feature_set}'; expected one of: "
                         f"{', '.join(OPENSMILE_SETS)}")
    if level not in FEATURE_LEVELS:
        raise InputError(f"unknown feature level '{level}'; expected one of: {', '.join(FEATURE_LEVELS)}")


@functools.lru_cache(maxsize=None)
def _smiles(feature_set, level):
    """The openSMILE extractors for a setting; built once per process (they parse configs)."""
    if serattn.TENSORFLOW_LOADED_FIRST:
        raise RuntimeError("openSMILE crashes when it is loaded after TensorFlow; import serattn "
                           "(or opensmile) before tensorflow, or extract in a fresh process")
    name, has_deltas = OPENSMILE_SETS[feature_set]
    opensmile_set = opensmile.FeatureSet[name]
    if level == "functionals":
        return (opensmile.Smile(opensmile_set, opensmile.FeatureLevel.Functionals),)
    if has_deltas and feature_set in ONE_PASS_SETS:
        config = Path(opensmile.__file__).parent / "core" / "config" / OPENSMILE_CONFIGS[feature_set]
        return (opensmile.Smile(str(ONE_PASS_CONFIG), "lld_with_deltas", options={"featureSetConf": str(config)}),)
    lld = opensmile.Smile(opensmile_set, opensmile.FeatureLevel.LowLevelDescriptors)
    if not has_deltas:
        return (lld,)
    return lld, opensmile.Smile(opensmile_set, opensmile.FeatureLevel.LowLevelDescriptors_Deltas)


def feature_names(feature_set="is09", level="lld"):
    """Names of the features, in column order: the LLDs, then their deltas."""
    check_settings(feature_set, level)
    return [name for smile in _smiles(feature_set, level) for name in smile.feature_names]


def load_audio(source):
    """Read audio as 16 kHz mono float32.

    Args:
        source: a path or a file-like object in any format soundfile reads.

    Returns:
        ``(signal, original_rate)``: shape (samples,), channels averaged.
    """
    signal, rate = read_audio(source)
    return to_sample_rate(signal, rate), rate


def read_audio(source):
    """Read audio as mono float32 at its own rate: ``(signal (samples,), rate)``."""
    signal, rate = sf.read(source, dtype="float32", always_2d=True)
    return signal.mean(axis=1), rate


def to_sample_rate(signal, rate, speed=1):
    """``signal`` resampled from ``rate`` to the 16 kHz the features are defined at.

    With ``speed`` other than 1 the samples are read as if recorded at ``rate *
    speed``: the result plays ``speed`` times faster, pitch raised by that factor
    (speed perturbation), and has about ``len(signal) / speed`` samples at 16 kHz.
    """
    source_rate = Fraction(rate) * Fraction(speed).limit_denominator(1000)
    if source_rate != SAMPLE_RATE and len(signal):
        ratio = Fraction(SAMPLE_RATE) / source_rate  # in lowest terms: the smallest polyphase filter
        signal = resample_poly(signal, ratio.numerator, ratio.denominator).astype(np.float32)
    return signal


def signal_problem(signal, rate):
    """Why a mono signal at ``rate`` gives no meaningful features, or None if it does.

    Checked before resampling, whose filter would smear NaN over the signal and
    turn a constant one into a ramp at its ends. A constant non-zero signal (DC
    only) would give features of an offset, not of sound.
    """
    if len(signal) == 0:
        return "empty audio (0 samples)"
    finite = np.isfinite(signal)
    if not finite.all():
        return f"{NON_FINITE}: {np.count_nonzero(~finite)} of {len(signal)} are NaN or infinite"
    peak = float(np.abs(signal).max())
    if peak > 1:
        return (f"{OUT_OF_RANGE} (peak {peak:.6g}; float audio is read at full scale 1, this looks like "
                f"integer-scaled samples): rescale the file to [-1, 1]")
    if len(signal) * SAMPLE_RATE / rate < MIN_SAMPLES:
        return (f"too short: {len(signal) / rate * 1000:.1f} ms, "
                f"need at least {MIN_SAMPLES / SAMPLE_RATE * 1000:.0f} ms for one frame")
    if not np.any(signal):
        return "all silence: every sample is 0"
    if np.all(signal == signal[0]):
        return f"constant signal (DC only): every sample is {signal[0]:.6g}, no sound to describe"
    return None


def extract_signal(signal, feature_set="is09", level="lld"):
    """Features of a 16 kHz signal.

    Returns:
        float32 array of shape (frames, D): at level ``lld`` one row per 10 ms
        frame (LLDs then deltas), at ``functionals`` a single row.
    """
    check_settings(feature_set, level)
    # Resampling can overshoot full scale a little; clipped here, it cannot wrap in the int16 cast.
    signal = np.clip(signal, -1, INT16_PEAK)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Segment too short": we check for NaN
        # Smile.process gives (starts, ends, values) without building a DataFrame.
        passes = [smile.process(signal, SAMPLE_RATE) for smile in _smiles(feature_set, level)]
    if level == "functionals" or not OPENSMILE_SETS[feature_set][1]:
        return passes[0][2].astype(np.float32)
    # openSMILE repeats the last frame's start time at the end of the input: such frames
    # are dropped, and two passes are joined on start time (unique keeps the first).
    starts = [starts.to_numpy().astype("int64") for starts, _, _ in passes]
    if len(passes) == 1:
        _, first = np.unique(starts[0], return_index=True)
        return passes[0][2][first].astype(np.float32)
    _, in_lld, in_deltas = np.intersect1d(*starts, return_indices=True)
    (_, _, lld), (_, _, deltas) = passes
    return np.hstack([lld[in_lld], deltas[in_deltas]]).astype(np.float32)


def extract_file(path, feature_set="is09", level="lld"):
    """Features of one audio file, shape (frames, D); see :func:`extract_signal`."""
    signal, _ = load_audio(path)
    return extract_signal(signal, feature_set, level)


# --- a whole manifest --------------------------------------------------------------


def extract_manifest(manifest, out=None, *, feature_set="is09", level="lld", jobs=None,
                     cache_dir=None, progress=True, augment=None, max_file_mb=MAX_FILE_MB,
                     allow_outside_root=False, shard_size=None, scheduler=None, overwrite=False):
    """Extract the features of every file of a manifest.

    Files that are missing, unreadable, empty, shorter than one frame, not regular
    files or larger than ``max_file_mb`` are skipped; the others are extracted.

    Args:
        manifest: a manifest CSV path or a :class:`serattn.features.corpora.Manifest`.
        out: if given, the feature set is saved there (``.npz``, atomically) and
            the skipped files are listed, with the reason, in ``OUT.skipped.csv``
            (columns path,reason).
        feature_set: one of ``OPENSMILE_SETS``.
        level: ``lld`` (one row per 10 ms frame) or ``functionals`` (one row per
            utterance).
        jobs: worker processes (default: all cores).
        cache_dir: folder of cached per-file features (default: no cache).
        progress: show a progress bar and print a one-line summary.
        augment: ``{"speed": factors}`` (see :func:`parse_augment`): one
            speed-perturbed copy of every kept file per factor, after the
            originals, with ``source_ids`` naming its source.
        max_file_mb: larger files are skipped unread (memory stays bounded).
        allow_outside_root: read rows whose path leads out of the manifest's folder.
        shard_size: write ``out`` as a sharded store (see :mod:`serattn.features.store`) of
            this many files per shard, extracted shard by shard and resumable
            (:mod:`serattn.features.scale_out`); the returned set's frames stay on disk.
        scheduler: address of a Dask scheduler whose workers extract the shards
            (with ``shard_size``), instead of ``jobs`` local processes.
        overwrite: replace an existing store ``out`` (an .npz is replaced by its caller's rename).

    Returns:
        The :class:`serattn.features.feature_set.FeatureSet`: ids are the manifest's ``path``
        values (``PATH#speedF`` for copies); ``split`` is None when the manifest has none.

    Raises:
        InputError: a bad manifest or setting, a path outside the manifest's folder
            (unless allowed), or no file could be extracted.
    """
    check_settings(feature_set, level)
    if not (max_file_mb > 0 and math.isfinite(max_file_mb)):
        raise InputError(f"--max-file-mb must be a positive number of megabytes, got {max_file_mb}")
    if not hasattr(manifest, "rows"):
        manifest = read_manifest(manifest)
    if not allow_outside_root:
        check_inside_root(manifest)
    settings = {"feature_set": feature_set, "level": level, "sample_rate": SAMPLE_RATE,
                "opensmile": opensmile.__version__, "version": CACHE_VERSION}
    # One file named twice (wav/a.wav, ./wav/a.wav): extracted once, checked before any work.
    duplicates = same_files(manifest)
    check_duplicates(manifest, duplicates)
    todo = [i for i in range(len(manifest.rows)) if i not in duplicates]
    # Copies are extracted in the same pass; the factor is part of their settings, so of their cache key.
    factors = tuple((augment or {}).get("speed", ()))
    keys = [(i, None) for i in todo] + [(i, factor) for factor in factors for i in todo]
    sharded = shard_size is not None
    place = os.path.abspath if sharded else str  # a Dask worker may run in another folder
    tasks = [(place(manifest.audio_path(manifest.rows[i])),
              settings if factor is None else {**settings, "speed": factor},
              None if cache_dir is None else place(cache_dir), int(max_file_mb * 2 ** 20))
             for i, factor in keys]
    jobs = min(jobs or len(os.sched_getaffinity(0)), len(tasks))
    if sharded:  # frames stay in the shards: results carry (shard, start, length) pointers
        from serattn.features import scale_out, store

        folder = store.partial_path(os.path.abspath(out))
        dim = len(feature_names(feature_set, level))
        finished, shard_paths, digests = scale_out.run_sharded(tasks, folder, shard_size, dim, jobs, scheduler,
                                                               progress)
        everything = dict(zip(keys, finished))
    else:
        everything = dict(zip(keys, _run(tasks, jobs, progress)))
    results = {i: everything[i, None] for i in todo}

    # One recording under different names or encodings: found by a hash of its decoded samples.
    first_with_content = {}
    for i, (frames, _, _, _, content) in results.items():
        if frames is not None:
            first = first_with_content.setdefault(content, i)
            if first != i:
                duplicates[i] = (first, "identical audio content")
    check_duplicates(manifest, duplicates)

    kept, skipped, dropped, rates, cached = [], [], [], {}, 0
    for i, row in enumerate(manifest.rows):
        if i in duplicates:
            first, how = duplicates[i]
            dropped.append((row["path"], f"duplicate of '{manifest.rows[first]['path']}' ({how})"))
            continue
        frames, reason, rate, hit, _ = results[i]
        if frames is None:
            skipped.append((row["path"], reason))
            continue
        kept.append((i, row, frames))
        rates[str(rate)] = rates.get(str(rate), 0) + 1
        cached += hit
    copies, skipped_copies = [], []  # copies: (source row, factor, frames) of kept files, factor by factor
    for factor in factors:
        for i, row, _ in kept:
            frames, reason, _, _, _ = everything[i, factor]
            if frames is None:
                skipped_copies.append((copy_id(row["path"], factor), reason))
            else:
                copies.append((row, factor, frames))
    if out is not None:
        _write_skipped(skipped + dropped + skipped_copies, skipped_path(out))
    source = manifest.meta.get("manifest") or manifest.meta.get("corpus_root") or str(manifest.root)
    if not kept:
        first_path, first_reason = skipped[0]
        where = f"; see '{skipped_path(out)}'" if out is not None else ""
        raise InputError(f"nothing extracted from '{source}': all {len(skipped)} files were skipped "
                         f"(first: '{first_path}': {first_reason}){where}")

    rows = [row for _, row, _ in kept] + [row for row, _, _ in copies]
    ids = [row["path"] for _, row, _ in kept] + [copy_id(row["path"], factor) for row, factor, _ in copies]
    has_split = any(row["split"] for row in rows)
    augmentation = {"augment": {"speed": list(factors)}, "augmented_copies": len(copies),
                    "augmented_copies_skipped": len(skipped_copies)} if factors else {}
    frames = [frames for _, _, frames in kept] + [frames for _, _, frames in copies]
    build = FeatureSet.from_sequences
    if sharded:
        lazy = scale_out.lazy_frames(frames, shard_paths, dim)
        frames = lazy.lengths

        def build(lengths, **metadata):
            return FeatureSet.from_arrays(lazy, lengths, **metadata)
    result = build(
        frames,
        ids=ids,
        labels=[row["label"] for row in rows],
        speakers=[row["speaker"] for row in rows],
        feature_names=feature_names(feature_set, level),
        split=[row["split"] for row in rows] if has_split else None,
        meta={"feature_set": feature_set, "level": level,
              "frame_rate": FRAME_RATE if level == "lld" else None,
              "sample_rate": SAMPLE_RATE, **manifest.meta,
              "original_sample_rates": rates, "skipped": len(skipped), "duplicates": len(dropped),
              **augmentation, "opensmile": opensmile.__version__},
        source_ids=[row["path"] for row in rows] if factors else None,
        columns={name: [row.get(name) or "" for row in rows] for name in extra_columns(manifest)},
    )
    if sharded:
        store.finish_store(result, folder, out, digests, overwrite)
        result = store.load_store(out)
    elif out is not None:
        save_feature_set(result, out)
    if progress:
        print(_summary(result, len(manifest.rows), cached, len(skipped), len(dropped), out, len(skipped_copies),
                       factors))
    return result


def extra_columns(manifest):
    """The manifest's columns beyond path, label, speaker and split, in first-seen order."""
    names = {}
    for row in manifest.rows:
        names.update(dict.fromkeys(name for name in row if name not in ("path", "label", "speaker", "split")))
    return list(names)


def same_files(manifest):
    """Rows naming a file that an earlier row names too: ``{row: (first row, "same file")}``."""
    first_of_file, duplicates = {}, {}
    for i, row in enumerate(manifest.rows):
        first = first_of_file.setdefault(os.path.realpath(manifest.audio_path(row)), i)
        if first != i:
            duplicates[i] = (first, "same file")
    return duplicates


def check_duplicates(manifest, duplicates):
    """Raise InputError if one recording is listed with two labels or speakers, naming both rows."""
    for i, (first, how) in sorted(duplicates.items()):
        row, other = manifest.rows[i], manifest.rows[first]
        if (row["label"], row["speaker"]) != (other["label"], other["speaker"]):
            raise InputError(
                f"'{other['path']}' (label {other['label']}, speaker {other['speaker']}) and '{row['path']}' "
                f"(label {row['label']}, speaker {row['speaker']}) are the same recording ({how}); "
                f"keep one row, or give both the same label and speaker")


def skipped_path(out):
    """Where the files skipped while extracting ``out`` are listed: ``OUT.skipped.csv``."""
    out = Path(out)
    return out.with_name(out.stem + ".skipped.csv")


def _summary(result, n_files, cached, n_skipped, n_duplicates, out, n_skipped_copies=0, factors=()):
    """One line: what was extracted, from where, and where it went."""
    n_copies = int(result.is_copy.sum())
    augmented = ""
    if factors:
        augmented = f", {n_copies} speed-perturbed {'copy' if n_copies == 1 else 'copies'}"
        if n_skipped_copies:
            augmented += f" ({n_skipped_copies} skipped)"
    line = (f"extracted {len(result) - n_copies} of {n_files} files ({cached} from cache, {n_skipped} skipped), "
            f"{n_duplicates} duplicate{'' if n_duplicates == 1 else 's'} dropped{augmented}: "
            f"{len(np.unique(result.speakers))} speakers, {len(np.unique(result.labels))} classes, "
            f"{result.dim} features, {len(result.features)} frames")
    if out is not None:
        line += f" -> {out}"
        if n_skipped or n_duplicates or n_skipped_copies:
            line += f" (skipped files: {skipped_path(out)})"
    return line


def _run(tasks, jobs, progress):
    bar = dict(total=len(tasks), desc="extracting", unit="file", disable=not progress,
               dynamic_ncols=True)
    if jobs <= 1:
        return [_extract_task(task) for task in tqdm(tasks, **bar)]
    chunksize = max(1, min(16, len(tasks) // (8 * jobs)))
    # Forked workers start at once with openSMILE loaded. A process that has loaded
    # TensorFlow (tests, notebooks) spawns them instead: forking it copies its thread
    # pools' locks and can hang or crash.
    start_method = "spawn" if "tensorflow" in sys.modules else "fork"
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(start_method)) as pool:
        return list(tqdm(pool.map(_extract_task, tasks, chunksize=chunksize), **bar))


def _extract_task(task):
    """Features of one file, or why not.

    Returns:
        ``(frames | None, reason, original_rate, cache_hit, samples_sha256)``; the
        hash of the decoded samples (and rate) finds one recording under two names or
        encodings (a WAV and its FLAC copy).
    """
    path, settings, cache_dir, max_bytes = task
    data, reason = read_regular_file(path, max_bytes)
    if data is None:
        return None, reason, None, False, None
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        return None, f"unreadable audio: {error}", None, False, None
    content = hashlib.sha256(np.ascontiguousarray(samples).tobytes() + f"{rate},{samples.shape[1]}".encode())
    content = content.hexdigest()

    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha256(data + json.dumps(settings, sort_keys=True).encode()).hexdigest()
        cache_file = Path(cache_dir) / f"{key}.npy"
        if cache_file.is_file():
            return np.load(cache_file), "", rate, True, content

    signal = samples.mean(axis=1)
    problem = signal_problem(signal, rate)
    if problem:
        return None, problem, rate, False, content
    try:
        frames = extract_signal(to_sample_rate(signal, rate, settings.get("speed", 1)), settings["feature_set"],
                                settings["level"])
    except Exception as error:  # one odd file must not end a long run; its reason is listed
        return None, f"openSMILE failed: {error}", rate, False, content
    if len(frames) == 0 or not np.all(np.isfinite(frames)):
        return None, "too short or silent: openSMILE returned no finite frames", rate, False, content
    if cache_file is not None:
        write_atomically(cache_file, lambda temporary: _save_array(temporary, frames))
    return frames, "", rate, False, content


def read_regular_file(path, max_bytes):
    """``(bytes, "")`` of a regular file of at most ``max_bytes``, else ``(None, why not)``.

    Opened without blocking and checked on the open descriptor: a FIFO would block
    the worker for ever and a device such as ``/dev/zero`` never ends, and a file
    swapped for one between a check and the read is caught too.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, "file not found"
    except OSError as error:
        return None, f"cannot read file: {error.strerror or error}"
    try:
        status = os.fstat(descriptor)
        kind = describe_mode(status.st_mode)
        if kind is not None:
            return None, f"not a regular file: {kind}"
        if status.st_size > max_bytes:
            return None, (f"file too large: {status.st_size / 2 ** 20:.1f} MB, over the "
                          f"--max-file-mb limit of {max_bytes / 2 ** 20:.3g} MB")
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)  # a file that grew since fstat is still bounded
    except OSError as error:
        return None, f"cannot read file: {error.strerror or error}"
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        return None, f"file too large: over the --max-file-mb limit of {max_bytes / 2 ** 20:.3g} MB"
    if not data:
        return None, "empty file (0 bytes)"
    return data, ""


SKIPPED_HEADER = "path,reason"


def check_output(out, overwrite):
    """Raise InputError unless ``out`` (and its skipped list) may be written.

    An existing feature file is replaced only with ``overwrite``, and only if it is
    a feature set; an existing ``OUT.skipped.csv`` only if extraction wrote it.
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise InputError(f"feature file '{out}' already exists; choose another --out, "
                             f"or pass --overwrite to replace it")
        if out.suffix != ".npz":
            from serattn.features.store import is_store

            if not is_store(out):
                raise InputError(f"'{out}' is not a feature store; --overwrite replaces only feature sets: "
                                 f"choose another --out")
        elif not _is_feature_file(out):
            raise InputError(f"'{out}' is not a feature-set file; --overwrite replaces only feature sets: "
                             f"choose another --out")
    listed = skipped_path(out)
    if listed.exists() and not _is_skipped_list(listed):
        raise InputError(f"'{listed}' was not written by extract_features.py; not replacing it: "
                         f"move it or choose another --out")


def _is_feature_file(path):
    """A regular .npz file holding a feature set's frames (ragged ``features`` or padded ``X``)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return "features" in arrays.files or "X" in arrays.files
    except Exception:  # numpy raises many types for what is not an .npz
        return False


def _is_skipped_list(path):
    try:
        with open(path, newline="") as handle:
            return path.is_file() and not path.is_symlink() and handle.readline().strip() == SKIPPED_HEADER
    except (OSError, UnicodeDecodeError):
        return False


def _write_skipped(skipped, path):
    """List skipped files in ``path``; remove a stale list when nothing was skipped."""
    if not skipped:
        if _is_skipped_list(Path(path)):
            Path(path).unlink()
        return

    def write(temporary):
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(SKIPPED_HEADER.split(","))
            writer.writerows(skipped)

    write_atomically(path, write)


def _save_array(path, array):
    with open(path, "wb") as handle:
        np.save(handle, array)
