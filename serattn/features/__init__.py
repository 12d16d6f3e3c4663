"""Features: ragged feature sets (``feature_set``), openSMILE extraction (``extraction``),
corpus recipes and manifests (``corpora``), the synthetic demo corpus (``demo_corpus``)
and z-normalization (``normalization``)."""
