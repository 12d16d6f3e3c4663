"""serattn: speech emotion recognition with the published attention LSTM."""

import sys

# openSMILE's native library corrupts the heap ("malloc(): invalid size") when it is
# loaded after TensorFlow (seen with opensmile 2.6 and tensorflow 2.21), and loaded
# before it both work. Importing serattn loads it first; serattn.features.extraction refuses to
# extract if TensorFlow came first anyway.
TENSORFLOW_LOADED_FIRST = "tensorflow" in sys.modules

import opensmile  # noqa: E402,F401
