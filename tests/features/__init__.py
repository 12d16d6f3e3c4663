"""Tests of serattn/features/: corpora, extraction, feature sets and stores, label maps."""
