import numpy as np
import pytest

from serattn.features.feature_set import (FeatureSet, check_same_features, concatenate, load_feature_set,
                                         save_feature_set)
from serattn.features.normalization import Normalization, _mean_std
from serattn.training.batches import pad_batch
from serattn.errors import InputError
from serattn.testing import make_feature_set


def test_round_trip_keeps_every_array(tmp_path, feature_set):
    path = tmp_path / "fs.npz"
    save_feature_set(feature_set, path)
    loaded = load_feature_set(path)
    for key in ("features", "lengths", "ids", "labels", "speakers", "feature_names", "split"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(feature_set, key))
    assert loaded.features.dtype == np.float32 and loaded.lengths.dtype == np.int64
    assert loaded.meta["feature_set"] == "synthetic"
    assert [p.name for p in tmp_path.iterdir()] == ["fs.npz"]  # no temp file left
    assert path.stat().st_mode & 0o044  # readable by others, as a plain new file (not mkstemp's 0600)


def test_sequences_and_subset_follow_lengths(feature_set):
    sequences = feature_set.sequences()
    assert [len(s) for s in sequences] == feature_set.lengths.tolist()
    np.testing.assert_array_equal(sequences[3], feature_set.sequence(3))
    picked = feature_set.subset(np.array([5, 2]))
    np.testing.assert_array_equal(picked.sequence(0), sequences[5])
    np.testing.assert_array_equal(picked.sequence(1), sequences[2])
    assert picked.ids.tolist() == [feature_set.ids[5], feature_set.ids[2]]
    both = concatenate([picked, feature_set.subset(np.array([0]))])
    assert len(both) == 3 and both.features.shape[0] == both.lengths.sum()


def _save_arrays(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(features=np.full_like(a["features"], np.nan)), "NaN or infinite"),
    (lambda a: a.update(lengths=a["lengths"] + 1), "add up to"),
    (lambda a: a.update(lengths=np.r_[0, a["lengths"][1:]]), "no frames"),
    (lambda a: a.update(labels=a["labels"][:-1]), "'labels'.*shape"),
    (lambda a: a.pop("lengths"), "lacks the array"),
    (lambda a: a.update(features=a["features"][:, :, None]), "must be 2-d"),
    (lambda a: a.update(ids=np.zeros(len(a["ids"]), dtype=str).astype("U3")), "not unique|empty"),
])
def test_loader_rejects_inconsistent_files(tmp_path, feature_set, change, message):
    arrays = dict(features=feature_set.features, lengths=feature_set.lengths, ids=feature_set.ids,
                  labels=feature_set.labels, speakers=feature_set.speakers,
                  feature_names=feature_set.feature_names)
    change(arrays)
    path = _save_arrays(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match=message):
        load_feature_set(path)


def test_loader_names_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_feature_set(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="cannot read feature file .*junk.npz"):
        load_feature_set(tmp_path / "junk.npz")


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("onehot", [False, True])
def test_padded_layout_is_unpadded(tmp_path, feature_set, padding, onehot):
    padded, mask = pad_batch(feature_set.sequences(), padding=padding)
    classes = sorted(set(feature_set.labels))
    labels = feature_set.labels
    if onehot:
        labels = np.eye(len(classes))[[classes.index(c) for c in labels]]
    path = _save_arrays(tmp_path / "padded.npz", X=padded, y=labels)
    loaded = load_feature_set(path)  # lengths inferred, side detected
    assert loaded.lengths.tolist() == feature_set.lengths.tolist()
    np.testing.assert_allclose(loaded.features, feature_set.features)
    if not onehot:
        assert loaded.labels.tolist() == feature_set.labels.tolist()
    else:
        assert loaded.labels.tolist() == [str(classes.index(c)) for c in feature_set.labels]


def test_padded_npy_with_sibling_labels_and_given_lengths(tmp_path, feature_set):
    padded, _ = pad_batch(feature_set.sequences(), padding="pre")
    np.save(tmp_path / "X_train.npy", padded)
    np.save(tmp_path / "y_train.npy", feature_set.labels)
    loaded = load_feature_set(tmp_path / "X_train.npy")
    assert loaded.lengths.tolist() == feature_set.lengths.tolist()
    np.savez(tmp_path / "given.npz", X=padded, y=feature_set.labels, lengths=feature_set.lengths)
    assert load_feature_set(tmp_path / "given.npz", padding="pre").lengths.tolist() == feature_set.lengths.tolist()
    (tmp_path / "y_train.npy").unlink()
    with pytest.raises(InputError, match="y_train.npy"):
        load_feature_set(tmp_path / "X_train.npy")


def test_feature_dimension_mismatch_is_named():
    train, test = make_feature_set(dim=8), make_feature_set(dim=7)
    with pytest.raises(InputError, match="expected 8 features per frame as in 'train.npz', got 7 in 'test.npz'"):
        check_same_features(train, test, "train.npz", "test.npz")


def test_global_normalization_uses_given_statistics(feature_set):
    train = feature_set.subset(feature_set.split == "train")
    test = feature_set.subset(feature_set.split == "test")
    norm = Normalization.fit(train, "global")
    normalized = norm.apply(train).features
    np.testing.assert_allclose(normalized.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(normalized.std(0), 1, atol=1e-4)
    restored = Normalization.from_dict(norm.to_dict())
    np.testing.assert_allclose(restored.apply(test).features, norm.apply(test).features)


def test_speaker_normalization_zeroes_each_speaker(feature_set):
    normalized = Normalization.fit(feature_set, "speaker").apply(feature_set)
    frame_speakers = np.repeat(feature_set.speakers, feature_set.lengths)
    for speaker in np.unique(frame_speakers):
        np.testing.assert_allclose(normalized.features[frame_speakers == speaker].mean(0), 0, atol=1e-5)


def test_chunked_statistics_match_float64_numpy():
    rng = np.random.default_rng(0)
    frames = (rng.normal(size=(1000, 4)) * [1, 10, 1e-3, 0] + [0, 1e4, -5, 7]).astype(np.float32)
    mean, std = _mean_std(frames, chunk=64)  # many chunks and a ragged last one
    exact = frames.astype(np.float64)
    np.testing.assert_allclose(mean, exact.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std[:3], exact.std(0)[:3], rtol=1e-5)
    assert std[3] == 1.0  # the constant feature is left as it is, not divided by zero
    normalized = Normalization("global", mean, std).apply(
        FeatureSet.from_sequences([frames], ["u"], ["A"], ["s"], list("abcd")))
    assert normalized.features.dtype == np.float32
    np.testing.assert_allclose(normalized.features[:, 3], 0)


def test_pad_batch_pre_and_post():
    a, b = np.ones((2, 3), np.float32), 2 * np.ones((4, 3), np.float32)
    post, post_mask = pad_batch([a, b])
    assert post.shape == (2, 4, 3) and post_mask[0].tolist() == [True, True, False, False]
    pre, pre_mask = pad_batch([a, b], length=5, padding="pre")
    assert pre_mask[0].tolist() == [False, False, False, True, True]
    assert pre[1, 0].sum() == 0 and pre[1, 1:].min() == 2
    truncated, _ = pad_batch([np.arange(6, dtype=np.float32)[:, None]], length=3, padding="pre")
    assert truncated[0, :, 0].tolist() == [3, 4, 5]  # keeps the last frames, as Keras pad_sequences


def test_speaker_statistics_scale_copies_by_their_originals():
    from serattn.features.normalization import speaker_statistics

    speakers = np.array(["b", "a", "b", "a", "c"])
    is_copy = np.array([False, False, True, True, True])  # c has only a copy
    seen = {tuple(u): tuple(s) for u, s in speaker_statistics(speakers, is_copy, lambda sources: sources)}
    assert seen == {(1, 3): (1,), (0, 2): (0,), (4,): (4,)}  # sorted by speaker; sources = originals
    assert [tuple(u) for u, _ in speaker_statistics(speakers, None, len)] == [(1, 3), (0, 2), (4,)]


def test_models_import_no_training_module():
    """The layers sit below training: models/ may not import serattn.training (issue 25)."""
    import ast
    from pathlib import Path

    import serattn.models

    for path in Path(serattn.models.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            assert not any(n.startswith("serattn.training") for n in names), f"{path.name} imports {names}"
