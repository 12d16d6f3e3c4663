"""report.py's page: one self-contained HTML file per run, comparison or corpus; and
compare_runs.py's tables of run groups (``tables``)."""
