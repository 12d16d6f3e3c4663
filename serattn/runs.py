"""The run folder: one self-contained directory per training run.

``results/NAME/`` holds ``config.json`` (every resolved flag, data hashes, package
versions, git commit), ``model.keras``, ``normalization.json``, ``history.csv``,
``metrics.json``, ``predictions.csv`` and ``attention.npz``. While a run is being
written the folder holds a file ``INCOMPLETE``; it is removed last.
"""

import csv
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from serattn.data import atomic_path
from serattn.errors import InputError

RUN_FORMAT = 1
INCOMPLETE = "INCOMPLETE"
PACKAGES = ("tensorflow", "keras", "numpy", "scikit-learn", "opensmile", "soundfile", "matplotlib")


def create_run_dir(path, overwrite=False):
    """Make an empty run folder marked incomplete; refuse to replace one silently."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise InputError(f"output folder '{path}' already exists; choose another --out, "
                             f"or pass --overwrite to replace it")
        if not path.is_dir():
            raise InputError(f"--out '{path}' is a file, not a folder")
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True)
        (path / INCOMPLETE).write_text("this run is being written or was interrupted\n")
    except OSError as error:
        raise InputError(f"cannot create output folder '{path}': {error.strerror}") from None
    return path


def mark_complete(path):
    """Drop the training checkpoint and the INCOMPLETE marker: the run is done."""
    shutil.rmtree(Path(path) / "checkpoint", ignore_errors=True)
    (Path(path) / INCOMPLETE).unlink(missing_ok=True)


def run_config(flags, out, classes, feature_set, data_files, **resolved):
    """The config.json of a run: its flags, what the run resolved, its data and environment."""
    return {**flags, "out": str(out), "classes": classes, **resolved, "data_files": data_files,
            "feature_meta": feature_set.meta, "feature_names": feature_set.feature_names.tolist(),
            "run_format": RUN_FORMAT, **environment_info()}


def write_json(path, values):
    """Write JSON atomically (temp file, then rename)."""
    temporary = atomic_path(path)
    try:
        temporary.write_text(json.dumps(values, indent=2, default=_to_builtin) + "\n")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_predictions(path, ids, speakers, split, true_labels, predicted_labels, probabilities, classes):
    """predictions.csv: id, speaker, split, true, predicted, p_<class>..."""
    temporary = atomic_path(path)
    try:
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "speaker", "split", "true", "predicted", *(f"p_{c}" for c in classes)])
            for row in zip(ids, speakers, split, true_labels, predicted_labels, probabilities):
                *fields, probs = row
                writer.writerow([*fields, *(f"{p:.6f}" for p in probs)])
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_attention(path, weights, z, ids, labels, speakers, split, padding_mass, head_weights=None):
    """attention.npz: ragged weights (sum of lengths,) with lengths, z (N, units), ids...

    ``head_weights`` (list of (T_i, heads) arrays), when given, is saved as
    ``head_weights`` (sum of lengths, heads): the per-head attention of a multi-head
    model, whose mean over heads is ``weights``.
    """
    temporary = atomic_path(path)
    extra = {} if head_weights is None else {"head_weights": np.concatenate(head_weights).astype(np.float32)}
    try:
        with open(temporary, "wb") as handle:
            np.savez(
                handle,
                **extra,
                weights=np.concatenate(weights).astype(np.float32),
                lengths=np.array([len(w) for w in weights], dtype=np.int64),
                z=np.asarray(z, np.float32),
                ids=np.asarray(ids, str),
                labels=np.asarray(labels, str),
                speakers=np.asarray(speakers, str),
                split=np.asarray(split, str),
                padding_mass=np.asarray(padding_mass, np.float32),
            )
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_data_files(sources):
    """``{name: {"path": absolute path, "sha256": ...}}`` for config.json."""
    return {name: {"path": os.path.abspath(path), "sha256": file_sha256(path)} for name, path in sources.items()}


def environment_info():
    """Python, package versions and the git commit of the code that ran."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"versions": versions, "git_commit": git_commit()}


def git_commit():
    """HEAD of the repository holding this package, '+dirty' if it has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def remove_run_dir(path):
    """Delete a run folder that a failed run created, so nothing half-written stays."""
    shutil.rmtree(path, ignore_errors=True)


def read_config(path):
    """The config.json of a run, for --config and --resume."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"'{path}' not found; expected the config.json of a run folder")
    try:
        config = json.loads(path.read_text())
    except ValueError as error:
        raise InputError(f"'{path}' is not valid JSON ({error})") from None
    if not isinstance(config, dict) or "run_format" not in config:
        raise InputError(f"'{path}' is not a serattn run config (no 'run_format')")
    if config["run_format"] > RUN_FORMAT:
        raise InputError(f"'{path}' was written by a newer serattn (run format {config['run_format']}); "
                         f"update serattn")
    return config


def reopen_run_dir(path, data_files):
    """An interrupted run folder to resume, checked to match its data."""
    path = Path(path)
    if not (path / INCOMPLETE).exists():
        raise InputError(f"run '{path}' finished; nothing to resume (start a new run with "
                         f"--config {path / 'config.json'} --out NEW)")
    saved = read_config(path / "config.json")
    for name, current in data_files.items():
        if saved["data_files"][name]["sha256"] != current["sha256"]:
            raise InputError(f"the {name} data '{current['path']}' changed since run '{path}' started; "
                             f"cannot resume on different data")
    return path


def warn_if_data_changed(saved_config, data_files):
    if not saved_config:
        return
    for name, current in data_files.items():
        before = saved_config.get("data_files", {}).get(name, {}).get("sha256")
        if before and before != current["sha256"]:
            print(f"warning: the {name} data '{current['path']}' differs from the one the saved config "
                  f"was trained on", file=sys.stderr)


def write_evaluation(out, parts, outputs, classes):
    """predictions.csv and attention.npz for every split of a run.

    Args:
        out: the run folder.
        parts: ``[(split name, FeatureSet), ...]`` in the order to write.
        outputs: split name -> :func:`serattn.training.predict_with_attention` result.
        classes: class labels in model output order.

    Returns:
        split name -> predicted labels (N,).
    """
    predicted = {name: np.asarray(classes)[outputs[name]["probabilities"].argmax(1)] for name, _ in parts}

    def joined(key):
        return np.concatenate([getattr(fs, key) for _, fs in parts])

    split = np.concatenate([[name] * len(fs) for name, fs in parts])
    write_predictions(out / "predictions.csv", joined("ids"), joined("speakers"), split, joined("labels"),
                      np.concatenate([predicted[name] for name, _ in parts]),
                      np.concatenate([outputs[name]["probabilities"] for name, _ in parts]), classes)
    write_attention(out / "attention.npz", [w for name, _ in parts for w in outputs[name]["weights"]],
                    np.concatenate([outputs[name]["z"] for name, _ in parts]),
                    joined("ids"), joined("labels"), joined("speakers"), split,
                    np.concatenate([outputs[name]["padding_mass"] for name, _ in parts]),
                    head_weights=([w for name, _ in parts for w in outputs[name]["head_weights"]]
                                  if "head_weights" in outputs[parts[0][0]] else None))
    return predicted


def is_complete(path):
    path = Path(path)
    return (path / "metrics.json").is_file() and not (path / INCOMPLETE).exists()
