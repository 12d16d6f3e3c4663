"""serattn: speech emotion recognition with the published attention LSTM.

The package is grouped by stage; each room owns its data and imports only the rooms
above it in this list (the scripts at the repository root wire flags to them):

* ``serattn.config`` / ``serattn.experiment``: typed, frozen experiment configurations;
  :class:`Experiment` is one experiment as a value (``from_dict``/``to_dict``, recipes).
* ``serattn.features``: feature sets on disk and in memory, openSMILE extraction,
  corpus recipes and the demo corpus, normalization.
* ``serattn.models``: the Keras layers and model builders; ``import serattn.models``
  registers every custom object, so ``keras.saving.load_model(path, safe_mode=True)``
  loads a run's ``model.keras``.
* ``serattn.training``: batches, the Keras training loop, speaker protocols
  (validation speakers, cross-validation, seeds), static scikit-learn models,
  ensembles, tf.distribute.
* ``serattn.runs``: the run folder (``RunFolder`` writes it, ``open_run`` reads it).
* ``serattn.analysis``: UA/WA and confusion matrices, attention slot profiles and
  cue mass.
* ``serattn.plots``: the figures and their numbers.

``serattn.run(experiment)`` trains and evaluates an experiment (``serattn.api``);
``serattn.define`` holds shared names (class sets, colors, feature sets),
``serattn.errors`` the one user-facing error type, ``serattn.atomic`` the one
atomic file writer and ``serattn.testing`` small fabricated feature sets.
"""

import sys

# openSMILE's native library corrupts the heap ("malloc(): invalid size") when it is
# loaded after TensorFlow (seen with opensmile 2.6 and tensorflow 2.21), and loaded
# before it both work. Importing serattn loads it first; serattn.features.extraction refuses to
# extract if TensorFlow came first anyway.
TENSORFLOW_LOADED_FIRST = "tensorflow" in sys.modules

import opensmile  # noqa: E402,F401

from serattn.experiment import Experiment  # noqa: E402,F401


def run(experiment, **options):
    """Train and evaluate ``experiment``: see :func:`serattn.api.run` (imported on first use: TensorFlow loads there)."""
    from serattn.api import run as run_experiment

    return run_experiment(experiment, **options)


def import_tensorflow():
    """Import TensorFlow and Keras, dropping the start-up log lines of TensorFlow's C++ core.

    Those lines (oneDNN, CUDA probing, CPU features) are written to file
    descriptor 2 before ``TF_CPP_MIN_LOG_LEVEL`` takes effect, so they would stand
    before a user's one-line error. Anything else written meanwhile is passed on.
    """
    if "keras" in sys.modules:
        return
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _native_log_dropped():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe logs here, not at import


_ONEDNN_NOTE_DONE = []


def silence_onednn_bool_note():
    """Provoke oneDNN's once-per-process note on boolean ops while it is dropped.

    On CPUs without AVX-512 oneDNN logs, at the first transpose of booleans (the
    masks), an "E0000 ... oneDNN supports DT_BOOL only on platforms with AVX-512"
    line: noise in every training run and prediction. Called once a distribution
    strategy exists (a multi-worker strategy must come before any op runs).
    """
    if _ONEDNN_NOTE_DONE:
        return
    import tensorflow as tf

    with _native_log_dropped():
        tf.transpose(tf.constant([[True]]))
    _ONEDNN_NOTE_DONE.append(True)


class _native_log_dropped:
    """Capture file descriptor 2; pass on what is not a native TensorFlow log line."""

    STARTUP_LINE = (r"WARNING: All log messages before absl|[IWEF]\d{4} [\d:.]+ +\d+ |"
                    r"To enable the following instructions")

    def __enter__(self):
        import os
        import tempfile

        sys.stderr.flush()
        self.captured = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.captured.fileno(), 2)
        return self

    def __exit__(self, *exc):
        import os
        import re

        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.captured.seek(0)
        lines = self.captured.read().decode(errors="replace").splitlines()
        self.captured.close()
        passed_on = [line for line in lines if not re.match(self.STARTUP_LINE, line)]
        if passed_on:
            print("\n".join(passed_on), file=sys.stderr)
        return False
