"""report.py's page: one self-contained HTML file per run, comparison or corpus."""
