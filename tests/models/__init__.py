"""Tests of serattn/models/ (and the pooling registry): layers, pooling variants, the fused LSTM."""
