"""Plots: the published figures (attention slots, t-SNE, one utterance's attention) and
their numbers as CSV/JSON, written atomically (``figures``); attention_visualize.py's
figures from a run folder (``attention``); the report's panels (``report``) and timelines
(``timeline``).

Text is drawn as written: class labels, ids and file names come from the user's
corpus, and a ``$`` in them must not start matplotlib's mathtext (``$\\x{$`` failed
to parse and ended the figure scripts with a traceback).
"""

import matplotlib

matplotlib.rcParams["text.parse_math"] = False
