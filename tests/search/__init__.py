"""Tests of serattn/search/ and search.py."""
