"""Tests of serattn/analysis/: metrics, statistics, attention diagnostics."""
