"""Tests of serattn/deploy/: the recognizer, exported models, loading saved models."""
