"""Models: the attention LSTM and its basic variant (Keras), static scikit-learn models.

``import serattn.models`` registers every custom Keras object (the published layers
and the UA metric in :mod:`.layers`, the pooling variants in :mod:`.pooling`, the
training-only augmentation and smoothed loss in :mod:`.augment`, the fused LSTM
kernel of training in :mod:`.fused_lstm`, the loss and metrics of dimensional targets in
:mod:`.targets`), which is all a
saved ``model.keras`` needs to load with ``safe_mode=True``.
"""

from serattn.models import augment, fused_lstm, layers, pooling, targets  # noqa: F401  (registers the custom objects)
