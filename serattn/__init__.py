"""serattn: speech emotion recognition with the published attention LSTM.

The package is grouped by stage; each room owns its data and imports only the rooms
above it in this list (the scripts at the repository root wire flags to them):

* ``serattn.config``: typed, frozen experiment configurations built from the flags.
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
