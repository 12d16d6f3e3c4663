"""Tests of serattn/training/ (and serattn.experiment, serattn.api): protocols, trainers, ensembles, parallel runs."""
