"""Extraction into a sharded store: shard by shard, in local processes or on a Dask cluster, resumable.

The files to extract (originals, then each speed factor's copies, as
:func:`serattn.features.extraction.extract_manifest` orders them) are cut into
groups of ``shard_size``; a worker extracts one group and writes its frames as one
shard of ``STORE.partial/`` plus a small sidecar (``shard-00000.json``: per file the
reason it was skipped, its sample rate, its content hash and its number of frames),
both atomically, the sidecar last. The parent then decides, from the sidecars
alone, which files are kept, exactly as for an ``.npz``, and writes the index: the
store holds the same arrays as a one-process extraction.

A shard whose sidecar exists is done: a killed extraction, run again with the same
files and settings, extracts only the missing shards. Dask workers must see the same
paths (a shared file system) for the audio, the cache and the store.
"""

import hashlib
import json
import multiprocessing
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from serattn.atomic import write_atomically
from serattn.errors import InputError
from serattn.features import store as stores

PLAN_FILE = "plan.json"  # STORE.partial/plan.json: what the shards are shards of


def sidecar_path(folder, number):
    return Path(folder) / stores.shard_name(number).replace(".npy", ".json")


def extract_shard(number, tasks, folder, dim):
    """Extract ``tasks`` (see ``extraction._extract_task``) and write shard ``number`` of ``folder``.

    Returns:
        ``number``, once the shard and its sidecar are on disk.
    """
    from serattn.features.extraction import _extract_task

    results = [_extract_task(task) for task in tasks]
    frames = [result[0] for result in results if result[0] is not None]
    digest = stores.write_shard(folder, number, np.concatenate(frames) if frames else np.zeros((0, dim), np.float32))
    entries = [{"reason": reason, "rate": rate, "cache_hit": bool(hit), "content": content,
                "frames": None if values is None else len(values)} for values, reason, rate, hit, content in results]

    def write(temporary):
        Path(temporary).write_text(json.dumps({"sha256": digest, "files": entries}))

    write_atomically(sidecar_path(folder, number), write)
    return number


def run_sharded(tasks, folder, shard_size, dim, jobs=1, scheduler=None, progress=True):
    """Results of ``tasks`` as ``extraction._run`` gives them, but with each file's frames left in its shard.

    Returns:
        ``(results, paths, digests)``: per task ``(pointer | None, reason, rate, cache_hit, content)``
        with ``pointer = (shard, start, length)``; the shard paths and their SHA-256.
    """
    folder = Path(folder)
    groups = [tasks[first:first + shard_size] for first in range(0, len(tasks), shard_size)]
    _prepare(folder, {"tasks": hashlib.sha256(json.dumps(tasks).encode()).hexdigest(), "shard_size": shard_size,
                      "shards": len(groups)})
    missing = [number for number in range(len(groups)) if not sidecar_path(folder, number).is_file()]
    if progress and len(missing) < len(groups):
        print(f"resuming '{folder}': {len(groups) - len(missing)} of {len(groups)} shards already extracted",
              file=sys.stderr)
    if progress and scheduler is None and len(groups) < jobs:
        print(f"note: {len(groups)} shard(s) of {shard_size} files for {jobs} workers: a smaller --shard-size "
              f"spreads the work over more of them", file=sys.stderr)
    bar = tqdm(total=len(missing), desc="extracting", unit="shard", disable=not progress, dynamic_ncols=True)
    arguments = [(number, groups[number], str(folder), dim) for number in missing]
    if scheduler is not None:
        from dask.distributed import as_completed as dask_completed

        from serattn.training.protocols import connect_to_scheduler

        client = connect_to_scheduler(scheduler)
        try:
            futures = [client.submit(extract_shard, *argument, pure=False, key=f"serattn-shard-{argument[0]}")
                       for argument in arguments]
            for future in dask_completed(futures):
                future.result()
                bar.update()
        finally:
            client.close()
    elif jobs <= 1 or len(arguments) <= 1:
        for argument in arguments:
            extract_shard(*argument)
            bar.update()
    else:
        # Forked workers start at once with openSMILE loaded; after TensorFlow, spawned (see extraction._run).
        start_method = "spawn" if "tensorflow" in sys.modules else "fork"
        with ProcessPoolExecutor(max_workers=min(jobs, len(arguments)),
                                 mp_context=multiprocessing.get_context(start_method)) as pool:
            for future in as_completed([pool.submit(extract_shard, *argument) for argument in arguments]):
                future.result()
                bar.update()
    bar.close()

    results, digests = [], []
    for number in range(len(groups)):
        sidecar = json.loads(sidecar_path(folder, number).read_text())
        digests.append(sidecar["sha256"])
        start = 0
        for entry in sidecar["files"]:
            pointer = None
            if entry["frames"] is not None:
                pointer = (number, start, entry["frames"])
                start += entry["frames"]
            results.append((pointer, entry["reason"], entry["rate"], entry["cache_hit"], entry["content"]))
    return results, [folder / stores.shard_name(number) for number in range(len(groups))], digests


def _prepare(folder, plan):
    """Make ``folder`` ready for ``plan``: kept when it holds shards of the same plan (resume), else started anew."""
    plan_file = folder / PLAN_FILE
    if folder.exists():
        if not plan_file.is_file():
            raise InputError(f"'{folder}' exists but was not started by extract_features.py; move it away")
        if json.loads(plan_file.read_text()) == plan:
            return
        print(f"'{folder}' holds an unfinished extraction of other files or settings; starting again",
              file=sys.stderr)
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    write_atomically(plan_file, lambda temporary: Path(temporary).write_text(json.dumps(plan)))


def lazy_frames(pointers, paths, dim):
    """:class:`~serattn.features.store.ShardedFrames` of kept files' ``(shard, start, length)`` pointers."""
    shard, start, lengths = (np.array([pointer[j] for pointer in pointers], np.int64) for j in range(3))
    return stores.ShardedFrames(paths, shard, start, lengths, dim)
