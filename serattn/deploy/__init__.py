"""From a run to an application: exported models, and timelines of long or live audio.

* :mod:`serattn.deploy.export`: a run's Keras model as a SavedModel, TFLite or ONNX
  graph that takes raw IS09 frames, with a ``model_card.json`` and parity checks.
* :mod:`serattn.deploy.timeline`: sliding windows over a recording's frames (features
  extracted once) and over a live 16 kHz PCM stream.
"""
