"""The tests, grouped like the package: features, models, training, runs, analysis, report, search, deploy,
and scripts (command lines end to end, docs, bad input, safety). Shared helpers stay here: conftest.py
(fixtures), fabricate.py (miniature corpora), fake_runs.py (fabricated run folders)."""
