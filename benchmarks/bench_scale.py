"""Workers of bench.py's ``scale`` section (issue 27), each run in a fresh process (one JSON line out).

    python benchmarks/bench_scale.py make_store '{"path": "/tmp/s10k", "sequences": 10000}'
    python benchmarks/bench_scale.py train '{"data": "/tmp/s10k", "steps": 40}'
    python benchmarks/bench_scale.py extract '{"manifest": "/tmp/wavs/manifest.csv", "workers": 2}'

``make_store`` writes a FAU-like synthetic corpus (benchmarks/workload.py's lengths and
classes) as a sharded store, shard by shard, never whole in memory. ``train`` does what
a training run does before and during its first epoch on a store (streaming global
statistics, normalized lazy sequences, bucketed tf.data batches, the published model)
for ``steps`` batches, and reports the process's peak RSS and frames/s; with
``in_memory`` it reads every frame first, as a run on an .npz holds them. ``extract``
times ``extract_manifest`` into a store on a Dask ``LocalCluster`` of ``workers`` processes.
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.bench_workers import CLASSES, _peak_rss, model_args  # noqa: E402
from benchmarks.workload import FAU_DIM, fau_like_labels, fau_like_lengths  # noqa: E402


def make_store_worker(path, sequences, shard_size=1000, seed=0, speakers=100):
    """A FAU-like store of ``sequences`` utterances at ``path`` (standard-normal frames)."""
    from serattn.features.feature_set import FeatureSet, offsets_of
    from serattn.features.store import ShardedFrames, finish_store, partial_path, shard_name, write_shard

    lengths = fau_like_lengths(sequences, seed)
    folder = partial_path(path)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed + 2)
    shard = np.arange(sequences) // shard_size
    start = np.zeros(sequences, np.int64)
    digests = []
    for number, first in enumerate(range(0, sequences, shard_size)):
        rows = lengths[first:first + shard_size]
        start[first:first + len(rows)] = offsets_of(rows)[:-1]
        digests.append(write_shard(folder, number, rng.standard_normal((int(rows.sum()), FAU_DIM), dtype=np.float32)))
    frames = ShardedFrames([folder / shard_name(n) for n in range(len(digests))], shard, start, lengths, FAU_DIM)
    feature_set = FeatureSet.from_arrays(
        frames, lengths, ids=[f"chunk{i:06d}" for i in range(sequences)], labels=fau_like_labels(sequences, seed),
        speakers=[f"spk{i % speakers:03d}" for i in range(sequences)],
        feature_names=[f"f{j}" for j in range(FAU_DIM)], meta={"feature_set": "synthetic-fau"})
    finish_store(feature_set, folder, path, digests)
    return {"sequences": sequences, "frames": int(lengths.sum()), "shards": len(digests)}


def train_worker(data, steps=40, batch_size=32, in_memory=False, seed=0):
    """Peak RSS and frames/s of a training process's first ``steps`` batches on store ``data``."""
    import tensorflow as tf  # noqa: F401  (in every variant alike)

    from serattn.features.feature_set import load_feature_set
    from serattn.features.normalization import Normalization
    from serattn.training import trainer as training
    from serattn.training.batches import EpochBatches

    feature_set = load_feature_set(data)
    if in_memory:  # as a run on the .npz holds it
        feature_set = feature_set.with_features(np.asarray(feature_set.features))
    start = time.perf_counter()
    normalization = Normalization.fit(feature_set, "global")
    feature_set = normalization.apply(feature_set)
    statistics_s = time.perf_counter() - start
    targets = np.searchsorted(CLASSES, feature_set.labels)
    batches = EpochBatches(feature_set.sequences(), targets, np.ones(len(targets), np.float32), batch_size, seed)
    frames = int(sum(feature_set.lengths[index].sum() for index in batches.batch_indices(0)[:steps]))
    model = training.build_model(*model_args(batch_size=batch_size), feature_set.dim, len(CLASSES))
    trainer = training.trainer_for(model, "post")
    dataset = batches.dataset().take(steps)
    trainer.fit(dataset.take(2), epochs=1, verbose=0)  # traces the step: not part of the timing
    start = time.perf_counter()
    trainer.fit(dataset, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return {"sequences": len(feature_set), "steps": steps, "frames": frames, "train_s": seconds,
            "frames_per_s": frames / seconds, "statistics_s": statistics_s, "peak_rss": _peak_rss()}


def extract_worker(manifest, workers, shard_size=4, rounds=1):
    """Seconds of extract_manifest into a store on a LocalCluster of ``workers`` processes (no cache)."""
    import serattn  # noqa: F401  (openSMILE before anything loads TensorFlow)
    from distributed import Client, LocalCluster

    from serattn.features.corpora import limit, read_manifest
    from serattn.features.extraction import extract_manifest

    manifest = read_manifest(manifest)
    seconds, worker_cpu, parent_cpu = [], [], []
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        with tempfile.TemporaryDirectory() as folder:
            # The workers' first shard builds openSMILE's extractors: done once before the timing.
            extract_manifest(limit(manifest, 2 * workers), Path(folder) / "warm", progress=False, shard_size=1,
                             scheduler=cluster.scheduler_address)
            for round_ in range(rounds):
                before, parent = client.run(time.process_time), time.process_time()
                start = time.perf_counter()
                result = extract_manifest(manifest, Path(folder) / f"s{round_}", progress=False, shard_size=shard_size,
                                          scheduler=cluster.scheduler_address)
                seconds.append(time.perf_counter() - start)
                parent_cpu.append(time.process_time() - parent)
                after = client.run(time.process_time)
                worker_cpu.append(sorted(after[address] - before[address] for address in after))
    # CPU seconds the workers got: on an idle machine each worker's share of the wall time is near 1;
    # on a shared one it tells how much of the asked-for cores the scheduler gave.
    middle = int(np.argsort(seconds)[len(seconds) // 2])
    return {"workers": workers, "seconds": float(np.median(seconds)), "files": len(result),
            "audio_s": float(result.lengths.sum()) / 100, "worker_cpu_s": worker_cpu[middle],
            "parent_cpu_s": parent_cpu[middle], "load_average": os.getloadavg()[0]}


WORKERS = {"make_store": make_store_worker, "train": train_worker, "extract": extract_worker}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    name, options = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    result = WORKERS[name](**options)
    print("RESULT " + json.dumps(result, default=lambda value: value.item()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
