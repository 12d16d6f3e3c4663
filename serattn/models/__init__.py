"""Models: the attention LSTM and its basic variant (Keras), static scikit-learn models.

``import serattn.models`` registers every custom Keras object (see :mod:`.layers`),
which is all a saved ``model.keras`` needs to load with ``safe_mode=True``.
"""

from serattn.models import layers  # noqa: F401  (registers the custom objects)
