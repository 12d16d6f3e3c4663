"""Plots: the published figures (attention slots, t-SNE, one utterance's attention) and
their numbers as CSV/JSON, written atomically (``figures``)."""
