"""openSMILE features of audio files: frame-level low-level descriptors or functionals.

The published system fed the 16 IS09 low-level descriptors and their 16 deltas
(32 values per 10 ms frame) to an attention LSTM. openSMILE computes LLDs and
deltas in two passes whose last frames do not line up (a 2 s file gives 199 LLD
rows and 201 delta rows, with repeated start times at the end), so the two are
joined on frame start time.

Extraction of a manifest runs in a process pool, skips files it cannot use (and
says why), and caches each file's features under a hash of its content and of the
feature settings, so a second run only extracts new files.
"""

import csv
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import opensmile
import soundfile as sf
from scipy.signal import resample_poly
from tqdm import tqdm

import serattn
from serattn.features.corpora import read_manifest
from serattn.atomic import write_atomically
from serattn.features.feature_set import FeatureSet, save_feature_set
from serattn.define import FEATURE_LEVELS, FRAME_RATE, OPENSMILE_SETS, SAMPLE_RATE
from serattn.errors import InputError

MIN_SAMPLES = int(0.025 * SAMPLE_RATE)  # one 25 ms analysis window
CACHE_VERSION = 1  # bump when what a cached array means changes


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
    signal, rate = sf.read(source, dtype="float32", always_2d=True)
    signal = signal.mean(axis=1)
    if rate != SAMPLE_RATE and len(signal):
        divisor = math.gcd(SAMPLE_RATE, rate)
        signal = resample_poly(signal, SAMPLE_RATE // divisor, rate // divisor).astype(np.float32)
    return signal, rate


def extract_signal(signal, feature_set="is09", level="lld"):
    """Features of a 16 kHz signal.

    Returns:
        float32 array of shape (frames, D): at level ``lld`` one row per 10 ms
        frame (LLDs then deltas, joined on frame start time), at ``functionals``
        a single row.
    """
    check_settings(feature_set, level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Segment too short": we check for NaN
        tables = [smile.process_signal(signal, SAMPLE_RATE) for smile in _smiles(feature_set, level)]
    if len(tables) == 1:
        return tables[0].to_numpy(dtype=np.float32)
    lld, deltas = tables
    starts = [t.index.get_level_values("start").to_numpy().astype("int64") for t in tables]
    # intersect1d keeps the first occurrence of a repeated start time, in time order.
    _, in_lld, in_deltas = np.intersect1d(*starts, return_indices=True)
    return np.hstack([lld.to_numpy()[in_lld], deltas.to_numpy()[in_deltas]]).astype(np.float32)


def extract_file(path, feature_set="is09", level="lld"):
    """Features of one audio file, shape (frames, D); see :func:`extract_signal`."""
    signal, _ = load_audio(path)
    return extract_signal(signal, feature_set, level)


# --- a whole manifest --------------------------------------------------------------


def extract_manifest(manifest, out=None, *, feature_set="is09", level="lld", jobs=None,
                     cache_dir=None, progress=True):
    """Extract the features of every file of a manifest.

    Files that are missing, unreadable, empty or shorter than one frame are
    skipped; the others are extracted.

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

    Returns:
        The :class:`serattn.features.feature_set.FeatureSet`: ids are the manifest's ``path``
        values; ``split`` is None when the manifest has none.

    Raises:
        InputError: a bad manifest or setting, or no file could be extracted.
    """
    check_settings(feature_set, level)
    if not hasattr(manifest, "rows"):
        manifest = read_manifest(manifest)
    settings = {"feature_set": feature_set, "level": level, "sample_rate": SAMPLE_RATE,
                "opensmile": opensmile.__version__, "version": CACHE_VERSION}
    tasks = [(str(manifest.audio_path(row)), settings, None if cache_dir is None else str(cache_dir))
             for row in manifest.rows]
    jobs = min(jobs or len(os.sched_getaffinity(0)), len(tasks))
    results = _run(tasks, jobs, progress)

    kept, skipped, rates, cached = [], [], {}, 0
    for row, (frames, reason, rate, hit) in zip(manifest.rows, results):
        if frames is None:
            skipped.append((row["path"], reason))
            continue
        kept.append((row, frames))
        rates[str(rate)] = rates.get(str(rate), 0) + 1
        cached += hit
    if out is not None:
        _write_skipped(skipped, skipped_path(out))
    source = manifest.meta.get("manifest") or manifest.meta.get("corpus_root") or str(manifest.root)
    if not kept:
        first_path, first_reason = skipped[0]
        where = f"; see '{skipped_path(out)}'" if out is not None else ""
        raise InputError(f"nothing extracted from '{source}': all {len(skipped)} files were skipped "
                         f"(first: '{first_path}': {first_reason}){where}")

    rows = [row for row, _ in kept]
    has_split = any(row["split"] for row in rows)
    result = FeatureSet.from_sequences(
        [frames for _, frames in kept],
        ids=[row["path"] for row in rows],
        labels=[row["label"] for row in rows],
        speakers=[row["speaker"] for row in rows],
        feature_names=feature_names(feature_set, level),
        split=[row["split"] for row in rows] if has_split else None,
        meta={"feature_set": feature_set, "level": level,
              "frame_rate": FRAME_RATE if level == "lld" else None,
              "sample_rate": SAMPLE_RATE, **manifest.meta,
              "original_sample_rates": rates, "skipped": len(skipped),
              "opensmile": opensmile.__version__},
    )
    if out is not None:
        save_feature_set(result, out)
    if progress:
        print(_summary(result, len(tasks), cached, len(skipped), out))
    return result


def skipped_path(out):
    """Where the files skipped while extracting ``out`` are listed: ``OUT.skipped.csv``."""
    out = Path(out)
    return out.with_name(out.stem + ".skipped.csv")


def _summary(result, n_files, cached, n_skipped, out):
    """One line: what was extracted, from where, and where it went."""
    line = (f"extracted {len(result)} of {n_files} files ({cached} from cache, {n_skipped} skipped): "
            f"{len(np.unique(result.speakers))} speakers, {len(np.unique(result.labels))} classes, "
            f"{result.dim} features, {len(result.features)} frames")
    if out is not None:
        line += f" -> {out}"
        if n_skipped:
            line += f" (skipped files: {skipped_path(out)})"
    return line


def _run(tasks, jobs, progress):
    bar = dict(total=len(tasks), desc="extracting", unit="file", disable=not progress,
               dynamic_ncols=True)
    if jobs <= 1:
        return [_extract_task(task) for task in tqdm(tasks, **bar)]
    chunksize = max(1, min(16, len(tasks) // (8 * jobs)))
    # Spawned, not forked, workers: forking a process that has loaded TensorFlow
    # (tests, notebooks) copies its thread pools' locks and can hang or crash.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(tqdm(pool.map(_extract_task, tasks, chunksize=chunksize), **bar))


def _extract_task(task):
    """Features of one file, or why not: ``(frames | None, reason, original_rate, cache_hit)``."""
    path, settings, cache_dir = task
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None, "file not found", None, False
    except OSError as error:
        return None, f"cannot read file: {error.strerror or error}", None, False
    if not data:
        return None, "empty file (0 bytes)", None, False
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError) as error:
        return None, f"unreadable audio: {error}", None, False

    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha256(data + json.dumps(settings, sort_keys=True).encode()).hexdigest()
        cache_file = Path(cache_dir) / f"{key}.npy"
        if cache_file.is_file():
            return np.load(cache_file), "", info.samplerate, True

    try:
        signal, rate = load_audio(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError) as error:
        return None, f"unreadable audio: {error}", None, False
    if len(signal) == 0:
        return None, "empty audio (0 samples)", rate, False
    if len(signal) < MIN_SAMPLES:
        return None, (f"too short: {len(signal) / SAMPLE_RATE * 1000:.1f} ms, "
                      f"need at least {MIN_SAMPLES / SAMPLE_RATE * 1000:.0f} ms for one frame"), rate, False
    if not np.any(signal):
        return None, "all silence: every sample is 0", rate, False
    try:
        frames = extract_signal(signal, settings["feature_set"], settings["level"])
    except Exception as error:  # one odd file must not end a long run; its reason is listed
        return None, f"openSMILE failed: {error}", rate, False
    if len(frames) == 0 or not np.all(np.isfinite(frames)):
        return None, "too short or silent: openSMILE returned no finite frames", rate, False
    if cache_file is not None:
        write_atomically(cache_file, lambda temporary: _save_array(temporary, frames))
    return frames, "", rate, False


def _write_skipped(skipped, path):
    """List skipped files in ``path``; remove a stale list when nothing was skipped."""
    if not skipped:
        Path(path).unlink(missing_ok=True)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "reason"])
        writer.writerows(skipped)


def _save_array(path, array):
    with open(path, "wb") as handle:
        np.save(handle, array)
