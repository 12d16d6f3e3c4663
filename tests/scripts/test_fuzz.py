"""Property tests: random input either loads correctly or raises the project's InputError."""

import string

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from serattn.analysis.attention import slot_profiles
from serattn.features.corpora import read_manifest
from serattn.features.feature_set import load_feature_set
from serattn.errors import InputError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

dtypes = st.sampled_from(["float32", "float64", "int16", "int64", "bool", "U3", "complex64"])


@st.composite
def feature_arrays(draw):
    """Arrays shaped roughly like a feature set, often wrong in one way or another."""
    n = draw(st.integers(0, 5))
    dim = draw(st.integers(0, 4))
    lengths = draw(hnp.arrays(draw(st.sampled_from(["int64", "int32", "float64"])), n,
                              elements=st.integers(-2, 6)))
    total = int(np.clip(lengths, 0, None).sum()) + draw(st.integers(-1, 1))
    features = draw(hnp.arrays(draw(dtypes), (max(total, 0), dim)))
    arrays = {"features": features, "lengths": lengths,
              "labels": np.array(draw(st.lists(st.text(string.ascii_letters, max_size=2), min_size=n,
                                               max_size=n + draw(st.integers(0, 1)))), dtype=str)}
    if draw(st.booleans()):
        arrays["ids"] = np.array([f"u{i % max(1, n - draw(st.integers(0, 1)))}" for i in range(n)])
    if draw(st.booleans()):
        arrays["speakers"] = np.array(["s"] * n)
    if draw(st.booleans()):
        arrays["feature_names"] = np.array([f"f{j}" for j in range(dim + draw(st.integers(0, 1)))])
    if draw(st.booleans()):
        arrays.pop(draw(st.sampled_from(sorted(arrays))))
    return arrays


@FUZZ
@given(arrays=feature_arrays())
def test_feature_loader_loads_or_raises_input_error(tmp_path, arrays):
    path = tmp_path / "fuzz.npz"
    np.savez(path, **arrays)
    try:
        feature_set = load_feature_set(path)
    except InputError:
        return
    assert feature_set.features.dtype == np.float32 and np.all(np.isfinite(feature_set.features))
    assert feature_set.lengths.sum() == len(feature_set.features) and np.all(feature_set.lengths > 0)
    assert len(feature_set.ids) == len(set(feature_set.ids)) == len(feature_set.labels) == len(feature_set)


@FUZZ
@given(padded=hnp.arrays("float32", hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
                         elements=st.sampled_from([0.0, 1.0, -2.5, np.nan])),
       labels=st.lists(st.sampled_from(["A", "N", ""]), max_size=6))
def test_padded_loader_loads_or_raises_input_error(tmp_path, padded, labels):
    path = tmp_path / "padded.npz"
    np.savez(path, X=padded, y=np.array(labels, dtype=str))
    try:
        feature_set = load_feature_set(path)
    except InputError:
        return
    assert feature_set.dim == padded.shape[2] and len(feature_set) == padded.shape[0]


csv_text = st.text(alphabet=string.ascii_letters + string.digits + ",\n\"'/._ -", max_size=120)


@FUZZ
@given(header=st.sampled_from(["path,label,speaker", "path,label,speaker,split", "path,label", "", "a,b,c"]),
       body=csv_text)
def test_manifest_reader_reads_or_raises_input_error(tmp_path, header, body):
    path = tmp_path / "manifest.csv"
    path.write_text(header + "\n" + body)
    try:
        manifest = read_manifest(path)
    except InputError:
        return
    for row in manifest.rows:
        assert row["path"] and row["label"] and row["speaker"]


@FUZZ
@given(lengths=st.lists(st.integers(-1, 40), min_size=0, max_size=6), slots=st.integers(-1, 120),
       extra=st.integers(-1, 1))
def test_slot_averaging_profiles_or_raises_input_error(lengths, slots, extra):
    total = max(0, sum(max(0, length) for length in lengths) + extra)
    weights = np.random.default_rng(0).random(total).astype(np.float32)
    try:
        profiles = slot_profiles(weights, np.array(lengths, dtype=np.int64), slots)
    except InputError:
        return
    assert profiles.shape == (len(lengths), slots)
    assert np.all(np.isfinite(profiles)) and np.all(profiles >= 0)
