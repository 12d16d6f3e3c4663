"""Run one pickled task in a fresh Python process: ``python -m serattn.training.worker TASK RESULT``.

Dask workers run tasks in threads beside their event loop, which draws from Python's
global ``random``; Keras seeds its weight initializers from that same generator, so
a model built in such a thread is not the one its seed promises. A fold sent to a
Dask cluster therefore runs in a process of its own (see
:func:`serattn.training.protocols.run_tasks`), where it gives the numbers of a local run.

:func:`end_with_parent` makes a pool's worker process exit when the command that
started it dies, even by SIGKILL.
"""

import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cloudpickle

_WATCHED = set()  # parent pids this process already watches (a pool's worker runs many tasks)


def run_in_fresh_process(task):
    """``task()`` in a new Python process; its exception, if any, is raised here."""
    with tempfile.TemporaryDirectory(prefix="serattn-task-") as folder:
        task_file, result_file = Path(folder, "task.pkl"), Path(folder, "result.pkl")
        task_file.write_bytes(cloudpickle.dumps(task))
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        process = subprocess.run([sys.executable, "-m", "serattn.training.worker", str(task_file), str(result_file)],
                                 env=environment, stdout=subprocess.DEVNULL)
        if not result_file.is_file():
            raise RuntimeError(f"the worker process for {task!r:.200} ended with status {process.returncode} "
                               f"and no result")
        failed, value = pickle.loads(result_file.read_bytes())
    if failed:
        raise value
    return value


def end_with_parent(parent, interval=0.5):
    """Exit this process (status 1, no clean-up) as soon as its parent process ``parent`` is gone.

    joblib's loky workers outlive a parent killed with SIGKILL (which runs no clean-up
    of its own) until their task ends: a search's workers went on training for minutes.
    A daemon thread polls ``os.getppid()``, which changes when the parent dies (the
    orphan is adopted by init). Nothing of a task of a dead command is kept: a search
    trial's heartbeat stops, and the next run retries it.
    """
    if os.getppid() != parent or parent in _WATCHED:  # not our parent: nothing to follow
        return
    _WATCHED.add(parent)

    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def main(task_file, result_file):
    task = pickle.loads(Path(task_file).read_bytes())
    try:
        outcome = (False, task())
    except Exception as error:  # handed back to the caller, which raises it
        outcome = (True, error)
    Path(result_file).write_bytes(cloudpickle.dumps(outcome))


if __name__ == "__main__":
    main(*sys.argv[1:3])
