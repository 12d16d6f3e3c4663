import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serattn.features import extraction as features
from serattn.errors import InputError
from serattn.features.extraction import extract_file, extract_manifest, feature_names, load_audio
from tests.fabricate import read_csv, write_manifest, write_wav


@pytest.fixture
def good_wavs(tmp_path):
    """Two readable 1 s wavs of different speakers, and their manifest rows."""
    rows = []
    for i, speaker in enumerate(("s1", "s2")):
        write_wav(tmp_path / "wav" / f"good{i}.wav", 1.0, seed=i)
        rows.append(dict(path=f"wav/good{i}.wav", label="A" if i else "N", speaker=speaker, split="train"))
    return rows


@pytest.mark.parametrize("duration_s", [0.5, 2.0, 3.33])
def test_is09_lld_frames_are_32_values_at_100_per_second(tmp_path, duration_s):
    frames = extract_file(write_wav(tmp_path / "a.wav", duration_s), "is09", "lld")
    assert frames.dtype == np.float32 and frames.shape[1] == 32
    assert abs(len(frames) - 100 * duration_s) <= 3
    assert np.all(np.isfinite(frames))


def test_feature_names_are_the_16_llds_then_their_16_deltas():
    names = feature_names("is09", "lld")
    assert len(names) == 32 and names[0] == "pcm_RMSenergy_sma" and names[15] == "F0_sma"
    assert [n.replace("_de", "") for n in names[16:]] == names[:16]


def _two_passes_joined_on_time(signal):
    """IS09 as extracted before the one-pass config: opensmile-python's LLD and delta
    levels, each a whole pass, joined on frame start time (first occurrence kept)."""
    import opensmile

    tables = [opensmile.Smile(opensmile.FeatureSet.IS09, level).process_signal(signal, 16_000)
              for level in (opensmile.FeatureLevel.LowLevelDescriptors,
                            opensmile.FeatureLevel.LowLevelDescriptors_Deltas)]
    starts = [table.index.get_level_values("start").to_numpy().astype("int64") for table in tables]
    _, in_lld, in_deltas = np.intersect1d(*starts, return_indices=True)
    return np.hstack([tables[0].to_numpy()[in_lld], tables[1].to_numpy()[in_deltas]]).astype(np.float32)


def test_one_pass_is09_equals_the_two_opensmile_passes_joined_on_time(tmp_path):
    from serattn.features.demo_corpus import draw_speakers, synthesize

    rng = np.random.default_rng(0)
    speakers = draw_speakers(rng, 2)
    signals = [synthesize(rng, speakers[i % 2], label, duration, 0.2, duration - 0.2)
               for i, (label, duration) in enumerate([("A", 2.0), ("N", 0.6), ("P", 3.37), ("E", 1.21)])]
    signals += [load_audio(write_wav(tmp_path / f"{d}.wav", d, seed=3))[0] for d in (0.05, 0.5)]
    assert len(features._smiles("is09", "lld")) == 1  # one openSMILE pass
    for signal in signals:
        one_pass, reference = features.extract_signal(signal), _two_passes_joined_on_time(signal)
        assert one_pass.shape == reference.shape, len(signal)
        np.testing.assert_allclose(one_pass, reference, rtol=1e-6, atol=1e-6, err_msg=f"{len(signal)} samples")


@pytest.mark.parametrize("rate, channels", [(44_100, 1), (8_000, 1), (16_000, 2), (22_050, 2)])
def test_other_rates_and_stereo_become_16k_mono_with_the_same_pitch(tmp_path, rate, channels):
    path = write_wav(tmp_path / "x.wav", 1.5, rate=rate, channels=channels, f0=150.0)
    signal, original_rate = load_audio(path)
    assert original_rate == rate and signal.ndim == 1 and signal.dtype == np.float32
    assert len(signal) == pytest.approx(1.5 * 16_000, abs=2)
    frames = extract_file(path)
    assert frames.shape[1] == 32 and abs(len(frames) - 150) <= 3
    reference = extract_file(write_wav(tmp_path / "ref.wav", 1.5, f0=150.0))
    f0, energy = feature_names().index("F0_sma"), feature_names().index("pcm_RMSenergy_sma")
    assert np.median(frames[frames[:, f0] > 0, f0]) == \
        pytest.approx(np.median(reference[reference[:, f0] > 0, f0]), rel=0.02)
    length = min(len(frames), len(reference))
    assert np.corrcoef(frames[:length, energy], reference[:length, energy])[0, 1] > 0.99


@pytest.mark.parametrize("feature_set, level, dim", [
    ("is09", "functionals", 384),
    ("egemaps", "lld", 25),
    ("compare", "lld", 130),
])
def test_other_feature_sets_and_levels(tmp_path, feature_set, level, dim):
    frames = extract_file(write_wav(tmp_path / "a.wav", 1.0), feature_set, level)
    assert frames.shape[1] == dim == len(feature_names(feature_set, level))
    if level == "functionals":
        assert len(frames) == 1
    else:
        assert abs(len(frames) - 100) <= 6


def test_unknown_feature_set_or_level_is_an_input_error():
    with pytest.raises(InputError,
                       match="unknown feature set 'is10'; expected one of: is09, egemaps, compare"):
        feature_names("is10")
    with pytest.raises(InputError, match="unknown feature level 'frames'"):
        feature_names("is09", "frames")


def test_unusable_files_are_skipped_with_a_reason_and_the_rest_extracted(tmp_path, good_wavs):
    wav = tmp_path / "wav"
    (wav / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(200)))
    (wav / "empty.wav").write_bytes(b"")
    sf.write(wav / "no_samples.wav", np.zeros(0, np.float32), 16_000)
    write_wav(wav / "short.wav", 0.01)
    bad = ["corrupt", "empty", "no_samples", "short", "missing"]
    rows = good_wavs + [dict(path=f"wav/{name}.wav", label="N", speaker="s3", split="test")
                        for name in bad]
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    out = tmp_path / "out" / "feats.npz"

    fs = extract_manifest(manifest, out, jobs=1, progress=False)

    assert list(fs.ids) == ["wav/good0.wav", "wav/good1.wav"]
    assert fs.meta["skipped"] == 5
    skipped = {row["path"]: row["reason"] for row in read_csv(out.parent / "feats.skipped.csv")}
    assert set(skipped) == {f"wav/{name}.wav" for name in bad}
    assert "unreadable" in skipped["wav/corrupt.wav"]
    assert "empty" in skipped["wav/empty.wav"] and "empty" in skipped["wav/no_samples.wav"]
    assert "too short" in skipped["wav/short.wav"]
    assert "not found" in skipped["wav/missing.wav"]


def test_nothing_extracted_is_an_input_error_and_still_lists_the_files(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not a wav file at all")
    manifest = write_manifest(tmp_path / "m.csv", [dict(path="bad.wav", label="A", speaker="s")])
    with pytest.raises(InputError, match=r"nothing extracted from '.*m\.csv': all 1 files were skipped "
                                         r"\(first: 'bad\.wav': unreadable"):
        extract_manifest(manifest, tmp_path / "f.npz", jobs=1, progress=False)
    assert read_csv(tmp_path / "f.skipped.csv")[0]["path"] == "bad.wav"
    assert not (tmp_path / "f.npz").exists()


def test_feature_set_carries_manifest_values_and_json_meta(tmp_path, good_wavs):
    for row in good_wavs:
        row["split"] = ""
    manifest = write_manifest(tmp_path / "m.csv", good_wavs)
    fs = extract_manifest(manifest, jobs=1, progress=False)
    assert list(fs.labels) == ["N", "A"] and list(fs.speakers) == ["s1", "s2"]
    assert fs.split is None  # an empty split column means no split
    assert json.loads(json.dumps(fs.meta))["manifest"] == str(manifest.resolve())
    assert {k: fs.meta[k] for k in ("feature_set", "level", "frame_rate", "sample_rate")} == \
        {"feature_set": "is09", "level": "lld", "frame_rate": 100, "sample_rate": 16_000}
    assert fs.meta["original_sample_rates"] == {"16000": 2}


def test_cache_extracts_only_new_files_on_a_second_run(tmp_path, good_wavs, monkeypatch):
    calls = []
    original = features.extract_signal
    monkeypatch.setattr(features, "extract_signal", lambda *a: calls.append(1) or original(*a))
    manifest = write_manifest(tmp_path / "m.csv", good_wavs)
    cache = tmp_path / "cache"

    first = extract_manifest(manifest, jobs=1, cache_dir=cache, progress=False)
    assert len(calls) == 2 and len(list(cache.glob("*.npy"))) == 2

    write_wav(tmp_path / "wav" / "new.wav", 0.7, seed=5)
    write_manifest(manifest, good_wavs + [dict(path="wav/new.wav", label="E", speaker="s3", split="test")])
    second = extract_manifest(manifest, jobs=1, cache_dir=cache, progress=False)
    assert len(calls) == 3
    np.testing.assert_array_equal(second.subset(np.arange(2)).features, first.features)

    extract_manifest(manifest, jobs=1, cache_dir=cache, level="functionals", progress=False)
    assert len(calls) == 6  # other settings, other cache entries


def test_a_process_pool_gives_the_same_features(tmp_path, good_wavs):
    manifest = write_manifest(tmp_path / "m.csv", good_wavs)
    serial = extract_manifest(manifest, jobs=1, progress=False)
    pooled = extract_manifest(manifest, jobs=2, progress=False)
    np.testing.assert_array_equal(serial.features, pooled.features)
    np.testing.assert_array_equal(serial.ids, pooled.ids)


def test_tensorflow_loaded_first_is_refused_not_a_crash():
    """openSMILE's library corrupts the heap when TensorFlow was loaded before it."""
    import subprocess
    import sys
    code = ("import tensorflow, numpy as np\n"
            "from serattn.features.extraction import extract_signal\n"
            "try:\n"
            "    extract_signal(np.zeros(16000, np.float32))\n"
            "except RuntimeError as error:\n"
            "    print('refused:', error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-500:]
    assert "refused: openSMILE crashes when it is loaded after TensorFlow" in result.stdout
