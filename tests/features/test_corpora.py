import collections

import pytest

from serattn.features import corpora
from serattn.errors import InputError
from tests.fabricate import fabricate_emodb, fabricate_fau_aibo, fabricate_ravdess, write_manifest


def test_fau_aibo_reads_labels_speakers_and_the_challenge_split(tmp_path):
    labels = fabricate_fau_aibo(tmp_path)
    manifest = corpora.prepare_corpus("fau-aibo", tmp_path)
    rows = {row["path"]: row for row in manifest.rows}
    assert set(rows) == {f"wav/{stem}.wav" for stem in labels}  # the unlabelled chunk is left out
    assert rows["wav/Ohm_01_000_01.wav"]["label"] == "A"
    assert rows["wav/Ohm_02_010_00.wav"]["speaker"] == "Ohm_02"
    assert {row["speaker"] for row in manifest.rows if row["split"] == "train"} == {"Ohm_01", "Ohm_02"}
    assert {row["speaker"] for row in manifest.rows if row["split"] == "test"} == {"Mont_03"}
    assert manifest.audio_path(rows["wav/Mont_03_000_00.wav"]).is_file()
    assert manifest.meta == {"corpus": "fau-aibo", "corpus_root": str(tmp_path.resolve())}


def test_fau_aibo_rejects_a_chunk_of_an_unknown_school(tmp_path):
    fabricate_fau_aibo(tmp_path)
    label_file = tmp_path / corpora.FAU_AIBO_LABELS
    label_file.write_text(label_file.read_text() + "Pasing_01_000_00 N 1.0\n")
    with pytest.raises(InputError, match=r"line 10: expected a chunk name starting with Ohm_ or Mont_"):
        corpora.prepare_fau_aibo(tmp_path)


def test_emodb_keeps_german_letters_and_has_no_split(tmp_path):
    names = fabricate_emodb(tmp_path)
    manifest = corpora.prepare_corpus("emodb", tmp_path)
    assert [row["path"] for row in manifest.rows] == sorted(f"wav/{name}" for name in names)
    assert collections.Counter(row["label"] for row in manifest.rows) == {e: 3 for e in "WLEAFTN"}
    assert {row["speaker"] for row in manifest.rows} == {"03", "08", "10"}
    assert all(row["split"] == "" for row in manifest.rows)
    assert set(corpora.EMODB_EMOTIONS) == set("WLEAFTN")


def test_ravdess_keeps_speech_only_with_english_names(tmp_path):
    speech = fabricate_ravdess(tmp_path)
    manifest = corpora.prepare_corpus("ravdess", tmp_path)
    assert [row["path"] for row in manifest.rows] == sorted(speech)  # no songs, no video
    assert {row["label"] for row in manifest.rows} == set(corpora.RAVDESS_EMOTIONS.values())
    first = manifest.rows[0]
    assert (first["label"], first["speaker"]) == ("neutral", "Actor_01")
    angry = [row for row in manifest.rows if row["path"] == "Actor_02/03-01-05-01-01-01-02.wav"]
    assert angry[0]["label"] == "angry" and angry[0]["speaker"] == "Actor_02"


def test_csv_corpus_is_the_manifest_with_paths_relative_to_it(tmp_path):
    write_manifest(tmp_path / "sub" / "m.csv", [dict(path="a.wav", label="x", speaker="s", split="train")])
    manifest = corpora.prepare_corpus("csv", tmp_path / "sub" / "m.csv")
    assert manifest.audio_path(manifest.rows[0]) == (tmp_path / "sub" / "a.wav").resolve()
    assert manifest.meta["manifest"] == str((tmp_path / "sub" / "m.csv").resolve())


@pytest.mark.parametrize("name, expected", [
    ("emodb", "does not look like EmoDB: expected wav/SSTTTEV.wav"),
    ("fau-aibo", "does not look like FAU Aibo: expected the label file"),
    ("ravdess", "does not look like RAVDESS: expected speech files Actor_XX/"),
])
def test_a_root_without_the_layout_is_an_input_error_naming_it(tmp_path, name, expected):
    (tmp_path / "wav").mkdir()
    with pytest.raises(InputError, match=f"'{tmp_path}' {expected}"):
        corpora.prepare_corpus(name, tmp_path)


def test_unknown_corpus_and_missing_root(tmp_path):
    with pytest.raises(InputError,
                       match="unknown corpus 'x'; expected one of: csv, emodb, fau-aibo, ravdess"):
        corpora.prepare_corpus("x", tmp_path)
    with pytest.raises(InputError, match="emodb root '.*nowhere' does not exist"):
        corpora.prepare_corpus("emodb", tmp_path / "nowhere")


def test_a_registered_recipe_is_one_entry(tmp_path, monkeypatch):
    """A recipe the table gains is listed by the CLI's error, takes --classes only with class sets."""
    assert corpora.CORPORA == ("csv", "emodb", "fau-aibo", "ravdess", "iemocap", "msp-podcast", "crema-d")
    assert [name for name, recipe in corpora.RECIPES.items() if recipe.class_sets] == ["iemocap"]
    write_manifest(tmp_path / "manifest.csv", [{"path": f"{label}.wav", "label": label, "speaker": speaker}
                                               for label, speaker in [("hap", "s1"), ("neu", "s2"), ("fru", "s2")]],
                   columns=("path", "label", "speaker"))

    def prepare_toy(root, classes):
        rows = corpora.read_manifest(root / "manifest.csv").rows
        keep = {"hap", "neu"} if classes == "2" else None
        return [row for row in rows if keep is None or row["label"] in keep], sum(
            keep is not None and row["label"] not in keep for row in rows)

    monkeypatch.setitem(corpora.RECIPES, "toy", corpora.CorpusRecipe("toy", prepare_toy, {"2": {}}))
    monkeypatch.setattr(corpora, "CORPORA", ("csv", *corpora.RECIPES))
    manifest = corpora.prepare_corpus("toy", tmp_path, classes="2")
    assert [row["label"] for row in manifest.rows] == ["hap", "neu"]
    assert manifest.meta == {"corpus": "toy", "corpus_root": str(tmp_path.resolve()), "classes": "2",
                             "dropped_by_classes": 1}
    assert len(corpora.prepare_corpus("toy", tmp_path).rows) == 3
    with pytest.raises(InputError, match="--classes 4: corpus emodb has no class sets"):
        corpora.prepare_corpus("emodb", tmp_path, classes="4")
    with pytest.raises(InputError, match="expected one of: csv, emodb, .*, crema-d, toy"):
        corpora.prepare_corpus("x", tmp_path)


# --- manifests ----------------------------------------------------------------------


def test_read_manifest_keeps_extra_columns_and_fills_split(tmp_path):
    path = write_manifest(tmp_path / "m.csv", [dict(path="a.wav", label="x", speaker="s", cue="1")],
                          columns=("path", "label", "speaker", "cue"))
    row = corpora.read_manifest(path).rows[0]
    assert row == {"path": "a.wav", "label": "x", "speaker": "s", "cue": "1", "split": ""}


@pytest.mark.parametrize("text, message", [
    ("path,label\na.wav,x\n", r"lacks the column\(s\) speaker: expected a header with path,label,speaker"),
    ("", "lacks the column.*got an empty file"),
    ("path,label,speaker\n", "lists no audio files"),
    ("path,label,speaker\na.wav,x,s\nb.wav,,s\n", "line 3: empty 'label' \\(path 'b.wav'\\)"),
    ("path,label,speaker\na.wav,x,s\na.wav,y,s\n", "line 3: path 'a.wav' repeats line 2"),
])
def test_read_manifest_errors_name_the_manifest_and_the_row(tmp_path, text, message):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(InputError, match=f"manifest '.*m.csv'.*{message}"):
        corpora.read_manifest(tmp_path / "m.csv")


def test_read_manifest_of_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="manifest '.*nope.csv' does not exist"):
        corpora.read_manifest(tmp_path / "nope.csv")


# --- selecting and renaming -------------------------------------------------------------


def test_parse_label_map_renames_merges_and_keeps():
    assert corpora.parse_label_map("W=angry, F=happy,N=neutral,L=neutral,T") == \
        {"W": "angry", "F": "happy", "N": "neutral", "L": "neutral", "T": "T"}


@pytest.mark.parametrize("spec, message", [
    ("W=angry,=sad", "expected OLD=NEW pairs"),
    ("W=", "expected OLD=NEW pairs"),
    ("W=a,W=b", "class 'W' is mapped twice"),
])
def test_parse_label_map_rejects_malformed_specs(spec, message):
    with pytest.raises(InputError, match=message):
        corpora.parse_label_map(spec)


def test_relabel_drops_unlisted_classes_and_merges(tmp_path):
    fabricate_emodb(tmp_path)
    manifest = corpora.prepare_corpus("emodb", tmp_path)
    merged = corpora.relabel(manifest, corpora.parse_label_map("W=negative,T=negative,N=neutral,L=neutral"))
    assert collections.Counter(row["label"] for row in merged.rows) == {"negative": 6, "neutral": 6}
    assert merged.meta["labels"]["T"] == "negative"
    assert len(manifest.rows) == 21  # the original is left alone
    with pytest.raises(InputError, match="class\\(es\\) 'X' that the corpus does not have; "
                                         "its classes are: A, E, F, L, N, T, W"):
        corpora.relabel(manifest, {"X": "x"})


def test_limit_is_a_deterministic_spread(tmp_path):
    fabricate_emodb(tmp_path)
    manifest = corpora.prepare_corpus("emodb", tmp_path)
    picked = corpora.limit(manifest, 6)
    assert [row["path"] for row in picked.rows] == [row["path"] for row in corpora.limit(manifest, 6).rows]
    assert len(picked.rows) == 6 and {row["speaker"] for row in picked.rows} == {"03", "08", "10"}
    assert corpora.limit(manifest, 100) is manifest
    with pytest.raises(InputError, match="--limit must be at least 1, got 0"):
        corpora.limit(manifest, 0)


def test_a_split_on_some_rows_only_is_an_input_error(tmp_path):
    (tmp_path / "m.csv").write_text("path,label,speaker,split\na.wav,x,s,train\nb.wav,y,s,\n")
    with pytest.raises(InputError, match="line 3: empty 'split' while 1 other rows have one"):
        corpora.read_manifest(tmp_path / "m.csv")
