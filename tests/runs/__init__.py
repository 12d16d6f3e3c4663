"""Tests of serattn/runs/: run folders, the run record, what readers refuse."""
