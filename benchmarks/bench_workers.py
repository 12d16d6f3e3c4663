"""Timed work for benchmarks/bench.py, each run in a fresh process (one JSON line out).

    python benchmarks/bench_workers.py epoch '{"sequences": 1500, "batch_size": 32}'
    python benchmarks/bench_workers.py search '{"data": "data/emodb_2s.npz", "trials": 6}'

Each worker builds what it measures the way train_attention_lstm.py does
(``training.build_model``, ``training.EpochBatches``, ``training.fit``'s trainer) and
prints one line ``RESULT {json}``; bench.py starts them so that every variant
starts from the same state and no two libraries share a process.
"""

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.workload import FAU_MAX_FRAMES, make_fau_like_set  # noqa: E402

CLASSES = ("A", "E", "N", "P", "R")


def model_args(**overrides):
    """(ModelConfig, TrainConfig) of train_attention_lstm.py at their defaults, with ``overrides``."""
    import dataclasses

    from serattn.config import ModelConfig, TrainConfig

    def make(cls):  # (serattn.config.from_flags, which this called, is gone)
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in overrides.items() if name in names})

    return make(ModelConfig), make(TrainConfig)


def training_data(sequences, seed=0):
    """A FAU-like set of ``sequences`` chunks (one of 2,453 frames): feature set, targets, weights."""
    feature_set = make_fau_like_set(n=sequences, seed=seed)
    targets = np.searchsorted(CLASSES, feature_set.labels)
    return feature_set, targets, np.ones(len(targets), np.float32)


class StepTimes:
    """A Keras callback keeping the wall-clock time of every training step."""

    def __new__(cls):
        import keras

        class _StepTimes(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_train_batch_begin(self, batch, logs=None):
                self.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.times.append(time.perf_counter() - self.start)

        return _StepTimes()


def segment_batches(batches, segment, segments, limit=None):
    """Make ``batches`` yield only one of ``segments`` slices of its epoch (up to ``limit``)."""
    all_batches = batches.batch_indices(0)
    size = -(-len(all_batches) // segments) if limit is None else limit
    chosen = all_batches[segment * size:(segment + 1) * size]

    class Segment(type(batches)):
        def __len__(self):
            return len(chosen)

        def batch_indices(self, epoch):
            return chosen

    batches.__class__ = Segment
    return sum(len(index) for index in chosen), batches


# --- workers -----------------------------------------------------------------------


def epoch_worker(sequences=9_959, batch_size=32, rounds=4, padded_steps_per_round=2, seed=0):
    """Figure 1: bucketed (full epoch) vs fixed padding to 2,453 frames, interleaved.

    The bucketed epoch is cut into ``rounds`` slices; before each slice the padded
    pipeline trains ``padded_steps_per_round`` batches. Throughput = sequences / s.
    """
    import keras

    from serattn.training import trainer as training
    from serattn.training.batches import EpochBatches

    feature_set, targets, weights = training_data(sequences, seed)
    sequences_list = feature_set.sequences()
    args = model_args(batch_size=batch_size)
    model = training.build_model(*args, feature_set.dim, len(CLASSES))
    trainer = training.trainer_for(model, "post")

    def pipeline(bucketed, segment, segments, limit=None):
        batches = EpochBatches(sequences_list, targets, weights, batch_size, seed,
                                        bucketing=bucketed, pad_to=None if bucketed else FAU_MAX_FRAMES)
        return segment_batches(batches, segment, segments, limit)

    # Warm-up: trace the training step once (both pipelines share its (None, None, D) signature).
    start = time.perf_counter()
    _, warm = pipeline(True, 0, 1, limit=2)
    trainer.fit(warm.dataset(), epochs=1, verbose=0, shuffle=False)
    first_fit_s = time.perf_counter() - start

    seconds = {"bucketed": 0.0, "padded": 0.0}
    counts = {"bucketed": 0, "padded": 0}
    frames = {"bucketed": 0, "padded": 0}
    for segment in range(rounds):
        for name, bucketed, limit in (("padded", False, padded_steps_per_round), ("bucketed", True, None)):
            count, batches = pipeline(bucketed, segment, rounds, limit)
            start = time.perf_counter()
            trainer.fit(batches.dataset(), epochs=1, verbose=0, shuffle=False)
            seconds[name] += time.perf_counter() - start
            counts[name] += count
            frames[name] += sum(len(i) * (batches.lengths[i].max() if bucketed else FAU_MAX_FRAMES)
                                for i in batches.batch_indices(0))

    # The input pipeline alone: one bucketed epoch of padded batches, no training.
    batches = EpochBatches(sequences_list, targets, weights, batch_size, seed)
    start = time.perf_counter()
    for _ in batches.dataset():
        pass
    pipeline_s = time.perf_counter() - start

    # Same weights, any padding: the masked model must not care.
    sample = [sequences_list[i] for i in np.argsort(feature_set.lengths)[::max(1, len(feature_set) // 48)]]
    outputs = [training.predict_with_attention(model, sample, batch_size, pad_to, padding)["probabilities"]
               for pad_to, padding in ((None, "post"), (FAU_MAX_FRAMES, "post"), (FAU_MAX_FRAMES, "pre"))]
    invariance = max(float(np.abs(outputs[0] - other).max()) for other in outputs[1:])
    return {
        "sequences": len(feature_set), "batch_size": batch_size, "rounds": rounds,
        "bucketed_sequences": counts["bucketed"], "bucketed_s": seconds["bucketed"],
        "bucketed_frames": frames["bucketed"], "padded_sequences": counts["padded"],
        "padded_s": seconds["padded"], "padded_frames": frames["padded"],
        "real_frames": int(feature_set.lengths.sum()), "first_fit_s": first_fit_s,
        "input_pipeline_epoch_s": pipeline_s, "padding_invariance_max_abs_diff": invariance,
        "keras": keras.__version__,
    }


def keras_step_worker(batch_size=32, frames=200, steps=6, rounds=3, variants=("published",), seed=0,
                      intra_op_threads=0, inter_op_threads=0):
    """Figure 2: seconds per training step on one fixed (batch, frames, 32) batch.

    Variants (interleaved, ``steps`` steps each per round): ``published`` (as
    train_attention_lstm.py trains it), ``lstm_mask`` (the LSTM also consumes the
    mask), ``rd0`` (recurrent dropout 0: the fused LSTM kernel, ``--lstm-kernel auto``),
    ``rd0_keras`` (the same with ``--lstm-kernel keras``), ``recommended`` and
    ``recommended_keras`` (``--preset recommended``'s model and optimizer, functionals
    batch-normalized, with either kernel), ``unmasked`` (``--no-mask`` model),
    ``jit`` (``--jit-compile``: XLA; needs a worker of its own, since the other
    variants turn on op determinism, under which Keras refuses XLA), ``jit_rd0``
    (XLA and recurrent dropout 0).
    """
    import tensorflow as tf

    from serattn.config import PRESETS
    from serattn.training import trainer as training

    tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)  # 0: TensorFlow's choice
    tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((batch_size, frames, 32), dtype=np.float32)
    inputs = {"features": features, "mask": np.ones((batch_size, frames), bool)}
    targets = rng.integers(0, len(CLASSES), batch_size).astype(np.int32)
    weights = np.ones(batch_size, np.float32)
    recommended = {**PRESETS["recommended"], "functionals_norm": "batch"}  # no per-speaker input here
    settings = {"published": {}, "lstm_mask": {}, "rd0": {"recurrent_dropout": 0.0},
                "rd0_keras": {"recurrent_dropout": 0.0, "lstm_kernel": "keras"},
                "recommended": recommended, "recommended_keras": {**recommended, "lstm_kernel": "keras"},
                "unmasked": {"mask": False}, "jit": {"jit_compile": True},
                "jit_rd0": {"jit_compile": True, "recurrent_dropout": 0.0}}
    trainers, traces = {}, {}
    for name in variants:
        model_config, train_config = model_args(**settings[name])
        model = training.build_model(model_config, train_config, 32, len(CLASSES))
        use_view = name != "lstm_mask" and settings[name].get("mask", True)
        kernel = training.lstm_kernel_for(model_config, train_config)
        trainers[name] = training.trainer_for(model, "post", kernel) if use_view else model
    data = tf.data.Dataset.from_tensors((inputs, targets, weights)).repeat(steps)
    times = {name: [] for name in variants}
    for round_ in range(rounds + 1):  # round 0 traces
        for name, trainer in trainers.items():
            callback = StepTimes()
            start = time.perf_counter()
            trainer.fit(data, epochs=1, verbose=0, callbacks=[callback])
            if round_ == 0:
                traces[name] = time.perf_counter() - start
            else:
                times[name] += callback.times
    return {"framework": "keras", "batch_size": batch_size, "frames": frames,
            "step_s": {name: float(np.median(t)) for name, t in times.items()},
            "first_fit_s": traces, "tensorflow": tf.__version__,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}


def torch_step_worker(batch_size=32, frames=200, steps=6, rounds=3, threads=(1, 2),
                      recurrent_dropouts=(0.5, 0.0), seed=0):
    """Figure 2: the same model in PyTorch (benchmarks/torch_model.py), same shapes."""
    import torch

    from benchmarks.torch_model import AttentionLSTM, make_train_step

    torch.manual_seed(seed)
    features = torch.randn(batch_size, frames, 32)
    mask = torch.ones(batch_size, frames, dtype=torch.bool)
    targets = torch.randint(0, len(CLASSES), (batch_size,))
    weights = torch.ones(batch_size)
    step_s = {}
    for rate in recurrent_dropouts:
        step = make_train_step(AttentionLSTM(32, len(CLASSES), recurrent_dropout=rate))
        for count in threads:
            torch.set_num_threads(count)
            step(features, mask, targets, weights)
            times = []
            for _ in range(rounds * steps):
                start = time.perf_counter()
                step(features, mask, targets, weights)
                times.append(time.perf_counter() - start)
            step_s[f"rd{rate:g}_threads{count}"] = float(np.median(times))
    return {"framework": "torch", "batch_size": batch_size, "frames": frames, "step_s": step_s,
            "torch": torch.__version__}


def memory_worker(sequences=9_959, batch_size=32, steps=None, seed=0):
    """Figure 3: peak RSS of a bucketed training process holding ``sequences`` chunks.

    Peak RSS is read from ``/proc/self/status`` (VmHWM) and ``getrusage`` after
    ``steps`` training steps (default: a full epoch) and the analysis pass.
    """
    import tensorflow as tf  # noqa: F401  (counted in the baseline)

    from serattn.training import trainer as training
    from serattn.training.batches import EpochBatches

    rss_after_import = _rss_now()
    feature_set, targets, weights = training_data(sequences, seed)
    data_bytes = feature_set.features.nbytes
    model = training.build_model(*model_args(batch_size=batch_size), feature_set.dim, len(CLASSES))
    trainer = training.trainer_for(model, "post")
    batches = EpochBatches(feature_set.sequences(), targets, weights, batch_size, seed)
    if steps is not None:
        segment_batches(batches, 0, 1, limit=steps)
    trainer.fit(batches.dataset(), epochs=1, verbose=0, shuffle=False)
    training.predict_with_attention(model, feature_set.sequences(), batch_size)
    return {"sequences": len(feature_set), "ragged_bytes": int(data_bytes),
            "padded_bytes": int(len(feature_set) * FAU_MAX_FRAMES * feature_set.dim * 4),
            "rss_after_import": rss_after_import, "peak_rss": _peak_rss(),
            "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def extraction_worker(root, limit=None, rounds=2):
    """Figure 4c: extract_manifest with 1 and 2 workers vs openSMILE's own IS09 LLD pass.

    The bare pass reads each file with opensmile.Smile.process_file (one pipeline run,
    LLDs only); extract_manifest does everything extract_features.py does per file
    (read, hash, check, resample if needed, LLDs and deltas). Rounds are interleaved.
    """
    import opensmile  # before TensorFlow, which this worker never loads

    from serattn.features.corpora import limit as limit_manifest, prepare_corpus
    from serattn.features.extraction import extract_manifest

    manifest = prepare_corpus("emodb", root)
    if limit:
        manifest = limit_manifest(manifest, limit)
    paths = [str(manifest.audio_path(row)) for row in manifest.rows]
    bare = opensmile.Smile(opensmile.FeatureSet.IS09, opensmile.FeatureLevel.LowLevelDescriptors)
    extract_manifest(manifest, jobs=1, progress=False)  # builds the extractors once, as a worker does
    seconds = {"opensmile_lld": [], "manifest_jobs1": [], "manifest_jobs2": [], "cpu_jobs1": [], "cpu_jobs2": []}
    for _ in range(rounds):
        start = time.perf_counter()
        for path in paths:
            bare.process_file(path)
        seconds["opensmile_lld"].append(time.perf_counter() - start)
        for jobs in (1, 2):
            before = os.times()
            start = time.perf_counter()
            extract_manifest(manifest, jobs=jobs, progress=False)
            seconds[f"manifest_jobs{jobs}"].append(time.perf_counter() - start)
            # CPU seconds of this process and its (joined) workers: what the run cost, whatever the load.
            after = os.times()
            seconds[f"cpu_jobs{jobs}"].append(sum(after[:4]) - sum(before[:4]))
    result = {name: float(np.median(values)) for name, values in seconds.items()}
    return {**result, "load_average": os.getloadavg()[0]}


def search_worker(data="data/emodb_2s.npz", trials=6, jobs=(1, 2), epochs=10, inner_folds=3,
                  trainer_flags=("--norm", "speaker", "--val-speakers", "0", "--recurrent-dropout", "0")):
    """docs/SEARCH.md's Workers: distinct search trials per hour with ``--jobs 1`` and ``--jobs 2``.

    Each ``--jobs N`` runs search.py once (a fresh process, a fresh study in a temporary
    --out) over the learning rate alone of the attention LSTM, ``--no-prune``. A trial
    whose values repeat an earlier finished trial's is not counted: the first
    measurement (1.56x) counted workers that drew the same points. ``data: "fabricated"``
    uses a tiny generated feature set (checks the script, measures nothing).
    """
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="bench-search-") as folder:
        folder = Path(folder)
        if data == "fabricated":
            from serattn.features.feature_set import save_feature_set
            from serattn.testing import make_feature_set

            data = folder / "frames.npz"
            save_feature_set(make_feature_set(n=48, speakers=6, split=False), data)
            trainer_flags = (*trainer_flags, "--units", "4", "--attention-units", "2")
        space = folder / "lr.yaml"
        space.write_text("trainer: attention-lstm\nparams:\n  learning-rate: {low: 0.001, high: 0.01, log: true}\n")
        runs = {}
        for count in jobs:
            out = folder / f"jobs{count}"
            command = [sys.executable, str(root / "search.py"), "--space", str(space), "--data", str(data),
                       *trainer_flags, "--epochs", str(epochs), "--trials", str(trials), "--no-prune",
                       "--inner-cv", "kfold-speakers", str(inner_folds), "--quiet", "--jobs", str(count),
                       "--out", str(out)]
            start = time.perf_counter()
            subprocess.run(command, cwd=root, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            record = json.loads((out / "search.json").read_text())
            runs[f"jobs{count}"] = {key: record.get(key) for key in (
                "finished_trials", "distinct_trials", "trial_span_seconds", "trials_per_hour")} | {
                "wall_s": round(wall, 1), "worker_pids": len(set(record.get("worker_pids", [])))}
    first, *others = (runs[f"jobs{count}"]["trials_per_hour"] for count in jobs)
    return {"command": " ".join(command[1:-2]), "runs": runs, "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(),
            "threads_env": {k: os.environ.get(k) for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                                                          "OMP_NUM_THREADS")},
            "speedup": {f"jobs{count}": round(rate / first, 2) for count, rate in zip(jobs[1:], others)}}


def _rss_now():
    return _proc_status("VmRSS")


def _peak_rss():
    return _proc_status("VmHWM")


def _proc_status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return None


WORKERS = {"epoch": epoch_worker, "keras_step": keras_step_worker, "torch_step": torch_step_worker,
           "memory": memory_worker, "extraction": extraction_worker, "search": search_worker}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    name, options = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    result = WORKERS[name](**options)
    print("RESULT " + json.dumps(result, default=lambda value: value.item()), flush=True)  # numpy scalars
    return 0


if __name__ == "__main__":
    sys.exit(main())
