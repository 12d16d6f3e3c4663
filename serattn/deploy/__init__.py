"""From a run to an application: one recognizer, exported models, and timelines of long or live audio.

* :mod:`serattn.deploy.recognizer`: :class:`~serattn.deploy.recognizer.Recognizer`, a run's
  model with its normalization, feature settings and padding; every inference on new
  audio or frames goes through it (predict.py, timelines, ``--stream``, export's parity check).
* :mod:`serattn.deploy.export`: a run's Keras model as a SavedModel, TFLite or ONNX
  graph that takes raw IS09 frames, with a ``model_card.json`` and parity checks.
* :mod:`serattn.deploy.timeline`: sliding windows over a recording's frames (features
  extracted once) and over a live 16 kHz PCM stream.
* :mod:`serattn.deploy.outputs`: the files predict.py writes, checked before any work.
"""
