"""Hyperparameter search over speaker folds with Optuna (``search.py``).

``space`` reads the search space (for each trainer flag a range, a log-range or
choices); ``study`` opens the storage and runs trials, each a speaker-grouped
cross-validation over the search speakers only; ``report`` writes trials.csv,
best/config.json, search.json and Optuna's figures.
"""
