"""Manifests: which audio files make a corpus, with their labels, speakers and split.

Extraction works on manifests only. A manifest is a CSV file with the columns
``path,label,speaker`` and optionally ``split`` (other columns are kept); ``path``
is relative to the manifest's folder (or absolute). Each corpus as distributed
has a recipe, ``prepare_<corpus>(root)`` (as in SpeechBrain), that reads labels,
speakers and the standard split from the corpus's own files and names:

==========  =====================================================================
corpus      layout under ROOT
==========  =====================================================================
fau-aibo    ``wav/Ohm_01_000_00.wav``..., labels in
            ``labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt``
            (file, class A/E/N/P/R, confidence); speaker = school + child;
            Ohm = train, Mont = test (Interspeech 2009 Emotion Challenge)
emodb       ``wav/03a01Fa.wav``: speaker, text, German emotion letter, version;
            no fixed split (evaluate speaker-independently)
ravdess     ``Actor_01/03-01-05-01-02-01-01.wav``: modality, vocal channel,
            emotion, intensity, statement, repetition, actor; speech only
csv         a manifest file (ROOT is the CSV itself)
==========  =====================================================================

IEMOCAP, MSP-Podcast and CREMA-D have their recipes in
:mod:`serattn.features.corpora_natural`.
"""

import csv
import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from serattn.errors import InputError, file_kind
from serattn.features import corpora_natural as natural

MANIFEST_REQUIRED = ("path", "label", "speaker")

# EmoDB keeps its German initials as labels; their English names:
EMODB_EMOTIONS = {
    "W": "anger",  # Wut
    "L": "boredom",  # Langeweile
    "E": "disgust",  # Ekel
    "A": "fear",  # Angst
    "F": "happiness",  # Freude
    "T": "sadness",  # Trauer
    "N": "neutral",
}
RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}
FAU_AIBO_LABELS = Path("labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt")
FAU_AIBO_SPLITS = {"Ohm": "train", "Mont": "test"}  # school -> challenge partition


@dataclasses.dataclass(frozen=True)
class CorpusRecipe:
    """How one corpus as distributed becomes manifest rows (``extract_features.py --corpus NAME``).

    Attributes:
        name: the ``--corpus`` value.
        prepare: ``prepare(root) -> rows``; with class sets ``prepare(root, classes) ->
            (rows, number dropped by the class set)``.
        class_sets: the ``--classes`` values it takes, each old label -> class.
    """

    name: str
    prepare: Callable
    class_sets: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Manifest:
    """Rows of a corpus and the folder their ``path`` values are relative to."""

    rows: list  # dicts with at least path, label, speaker, split (str, may be "")
    root: Path
    meta: dict = dataclasses.field(default_factory=dict)  # provenance, JSON-serializable

    def audio_path(self, row):
        return self.root / row["path"]

    def outside_root(self):
        """Rows whose ``path`` leads out of :attr:`root` (``../x.wav``, ``/elsewhere/x.wav``)."""
        return [row for row in self.rows if confined_path(self.root, row["path"]) is None]

    def columns(self):
        """The rows as ``{column: (N,) str array}``, for vectorized look-ups by the figure scripts."""
        names = list(self.rows[0])
        return {name: np.array([row[name] or "" for row in self.rows], dtype=str) for name in names}


def confined_path(root, relative):
    """``root / relative`` if it stays inside ``root``, else None.

    Checked on the path as written (``..`` and absolute paths), not through symlinks:
    a corpus folder that links to the disk holding its audio is the user's own layout.
    """
    root = Path(os.path.abspath(root))
    path = Path(os.path.normpath(root / relative))
    return path if path.is_relative_to(root) else None


def check_inside_root(manifest):
    """Raise InputError if a manifest row names audio outside the manifest's folder.

    A manifest could otherwise make extraction (and the report's gallery, which embeds
    the audio of a run's utterances) read any file the user can read.
    """
    outside = manifest.outside_root()
    if outside:
        source = manifest.meta.get("manifest") or manifest.meta.get("corpus_root") or str(manifest.root)
        raise InputError(f"'{source}': {len(outside)} row(s) name audio outside '{manifest.root}' (first: "
                         f"'{outside[0]['path']}'); move the audio under the manifest's folder, or pass "
                         f"--allow-outside-root if the manifest really points elsewhere")


def read_manifest(path):
    """Read a manifest CSV.

    Args:
        path: CSV file with a header naming at least ``path``, ``label`` and
            ``speaker``; ``split`` and any other column are optional.

    Returns:
        A :class:`Manifest` whose rows all have a ``split`` value ("" if absent),
        rooted at the manifest's folder.

    Raises:
        InputError: the file is missing or unreadable, lacks a required column,
            has no rows, a row with an empty path/label/speaker, or a repeated path.
    """
    path = Path(path)
    kind = file_kind(path)
    if kind == "missing":
        raise InputError(f"manifest '{path}' does not exist")
    if kind is not None:
        raise InputError(f"manifest '{path}' is {kind}, not a CSV file; give the manifest's .csv file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [c for c in MANIFEST_REQUIRED if c not in columns]
            if missing:
                raise InputError(f"manifest '{path}' lacks the column(s) {', '.join(missing)}: "
                                 f"expected a header with path,label,speaker[,split], "
                                 f"got {','.join(columns) or 'an empty file'}")
            rows = [dict(row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"cannot read manifest '{path}': {error}") from None
    check_rows(rows, f"manifest '{path}'", first_line=2)
    return Manifest(rows, path.parent.resolve(), {"manifest": str(path.resolve())})


def check_rows(rows, source, first_line=1):
    """Raise InputError unless every row has a path, label and speaker and paths are unique.

    Fills in ``split`` as "" where missing and strips whitespace around values.
    ``first_line`` is the line number of the first row, for messages.
    """
    if not rows:
        raise InputError(f"{source} lists no audio files")
    seen = {}
    for line, row in enumerate(rows, start=first_line):
        for key in ("path", "label", "speaker", "split"):
            row[key] = (row.get(key) or "").strip()
        for key in MANIFEST_REQUIRED:
            if not row[key]:
                raise InputError(f"{source}, line {line}: empty '{key}' "
                                 f"(path '{row['path']}'); every row needs path, label and speaker")
        if row["path"] in seen:
            raise InputError(f"{source}, line {line}: path '{row['path']}' repeats line "
                             f"{seen[row['path']]}; each file may be listed once")
        seen[row["path"]] = line
    with_split = sum(bool(row["split"]) for row in rows)
    if 0 < with_split < len(rows):
        line = next(i for i, row in enumerate(rows, start=first_line) if not row["split"])
        raise InputError(f"{source}, line {line}: empty 'split' while {with_split} other rows have one; "
                         f"give every row a split or none")


# --- corpus recipes -----------------------------------------------------------------


def prepare_corpus(name, root, classes=None):
    """The manifest of a corpus as distributed.

    Args:
        name: one of :data:`CORPORA`.
        root: the corpus folder (for ``csv``: the manifest file).
        classes: a class set of the corpus (``--classes``: ``"4"`` for IEMOCAP), or
            None/``"all"`` for every category; the number of rows it drops goes to
            ``meta["dropped_by_classes"]``.

    Returns:
        A :class:`Manifest` rooted at ``root``, rows sorted by path.

    Raises:
        InputError: an unknown corpus name, or ``root`` does not have its layout.
    """
    if name not in CORPORA:
        raise InputError(f"unknown corpus '{name}'; expected one of: {', '.join(CORPORA)}")
    root = Path(root)
    if not root.exists():
        raise InputError(f"{name} root '{root}' does not exist")
    recipe = RECIPES.get(name)
    if classes not in (None, "all") and not (recipe and recipe.class_sets):
        raise InputError(f"--classes {classes}: corpus {name} has no class sets; use --labels to choose classes")
    if recipe is None:  # csv: a manifest of the user's own
        return read_manifest(root)
    meta = {"corpus": name, "corpus_root": str(root.resolve())}
    if recipe.class_sets:
        rows, dropped = recipe.prepare(root, classes)
        if classes not in (None, "all"):
            meta.update(classes=classes, dropped_by_classes=dropped)
    else:
        rows = recipe.prepare(root)
    rows = sorted(rows, key=lambda row: row["path"])
    check_rows(rows, f"{name} corpus '{root}'")
    return Manifest(rows, root.resolve(), meta)


def prepare_fau_aibo(root):
    """Rows of the FAU Aibo corpus in the Interspeech 2009 Emotion Challenge layout.

    Labels are the 5 classes of the challenge (A, E, N, P, R) from the chunk label
    file; its third column is kept as ``confidence``. Chunks without a label are
    left out; labelled chunks whose wav is missing are listed (and skipped later).
    """
    root = Path(root)
    label_file = root / FAU_AIBO_LABELS
    if not label_file.is_file():
        raise InputError(f"'{root}' does not look like FAU Aibo: expected the label file "
                         f"'{FAU_AIBO_LABELS}' and wav/ chunks such as wav/Ohm_01_000_00.wav")
    rows = []
    for line_number, line in enumerate(label_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise InputError(f"'{label_file}', line {line_number}: expected 'file class confidence', "
                             f"got '{line.strip()}'")
        stem = fields[0].removesuffix(".wav")
        school = stem.split("_")[0]
        if school not in FAU_AIBO_SPLITS or stem.count("_") < 1:
            raise InputError(f"'{label_file}', line {line_number}: expected a chunk name starting with "
                             f"Ohm_ or Mont_ (e.g. Ohm_01_000_00), got '{fields[0]}'")
        rows.append(dict(path=f"wav/{stem}.wav", label=fields[1], speaker="_".join(stem.split("_")[:2]),
                         split=FAU_AIBO_SPLITS[school],
                         confidence=fields[2] if len(fields) > 2 else ""))
    return rows


EMODB_NAME = re.compile(r"^(\d\d)([a-z]\d\d)([WLEAFTN])([a-z])\.wav$")


def prepare_emodb(root):
    """Rows of the Berlin Database of Emotional Speech (``wav/SSTTTEV.wav``).

    Labels are the German emotion letters (see :data:`EMODB_EMOTIONS`); speakers the
    two-digit speaker numbers; ``split`` is empty, as EmoDB has no fixed split.
    """
    folder = Path(root) / "wav"
    if not folder.is_dir():
        folder = Path(root)
    rows = []
    for path in folder.glob("*.wav"):
        match = EMODB_NAME.match(path.name)
        if match:
            speaker, text, emotion, _ = match.groups()
            rows.append(dict(path=str(path.relative_to(root)), label=emotion, speaker=speaker,
                             split="", text=text))
    if not rows:
        raise InputError(f"'{root}' does not look like EmoDB: expected wav/SSTTTEV.wav files such "
                         f"as wav/03a01Fa.wav (speaker, text, emotion W/L/E/A/F/T/N, version), "
                         f"found none")
    return rows


RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$")


def prepare_ravdess(root):
    """Rows of the RAVDESS speech recordings (``Actor_XX/MM-VV-EE-II-SS-RR-AA.wav``).

    Only speech (vocal channel 01) is kept, songs are left out; labels are the
    English emotion names (see :data:`RAVDESS_EMOTIONS`), speakers ``Actor_XX``.
    """
    root = Path(root)
    rows = []
    for path in root.glob("**/Actor_*/*.wav"):
        match = RAVDESS_NAME.match(path.name)
        if not match:
            continue
        _, channel, emotion, intensity, statement, repetition, actor = match.groups()
        if channel != "01" or emotion not in RAVDESS_EMOTIONS:
            continue
        rows.append(dict(path=str(path.relative_to(root)), label=RAVDESS_EMOTIONS[emotion],
                         speaker=f"Actor_{actor}", split="", intensity=intensity,
                         statement=statement, repetition=repetition))
    if not rows:
        raise InputError(f"'{root}' does not look like RAVDESS: expected speech files "
                         f"Actor_XX/MM-01-EE-II-SS-RR-AA.wav such as Actor_01/03-01-05-01-02-01-01.wav, "
                         f"found none")
    return rows


# --- selecting and renaming ----------------------------------------------------------


def parse_label_map(spec):
    """Parse ``--labels``: ``"OLD=NEW,OLD2=NEW,KEEP"`` -> ``{"OLD": "NEW", ..., "KEEP": "KEEP"}``.

    Several OLD classes may map to one NEW class (a merge); a class named alone
    keeps its name. Classes not named are dropped.
    """
    mapping = {}
    for item in spec.split(","):
        old, _, new = (part.strip() for part in item.partition("="))
        new = new if "=" in item else old
        if not old or not new:
            raise InputError(f"--labels: expected OLD=NEW pairs separated by commas "
                             f"(e.g. \"W=angry,F=happy\"), got '{item.strip()}' in '{spec}'")
        if old in mapping:
            raise InputError(f"--labels: class '{old}' is mapped twice in '{spec}'")
        mapping[old] = new
    return mapping


def relabel(manifest, mapping):
    """Keep the rows whose label is a key of ``mapping``, renamed to its value.

    Raises:
        InputError: a key is not a class of the manifest (likely a typo).
    """
    present = sorted({row["label"] for row in manifest.rows})
    unknown = [label for label in mapping if label not in present]
    if unknown:
        raise InputError(f"--labels names class(es) {', '.join(repr(u) for u in unknown)} that "
                         f"the corpus does not have; its classes are: {', '.join(present)}")
    rows = [{**row, "label": mapping[row["label"]]} for row in manifest.rows if row["label"] in mapping]
    return dataclasses.replace(manifest, rows=rows, meta={**manifest.meta, "labels": mapping})


def limit(manifest, count):
    """At most ``count`` rows, evenly spread over the manifest (same every time)."""
    if count < 1:
        raise InputError(f"--limit must be at least 1, got {count}")
    if count >= len(manifest.rows):
        return manifest
    picks = np.unique(np.linspace(0, len(manifest.rows) - 1, count).round().astype(int))
    rows = [manifest.rows[i] for i in picks]
    return dataclasses.replace(manifest, rows=rows, meta={**manifest.meta, "limit": count})


# The corpus recipes, one entry each (after the functions they name); "csv" is a manifest of the user's own.
RECIPES = {recipe.name: recipe for recipe in (
    CorpusRecipe("emodb", prepare_emodb),
    CorpusRecipe("fau-aibo", prepare_fau_aibo),
    CorpusRecipe("ravdess", prepare_ravdess),
    CorpusRecipe("iemocap", natural.prepare_iemocap, natural.IEMOCAP_CLASS_SETS),
    CorpusRecipe("msp-podcast", natural.prepare_msp_podcast),
    CorpusRecipe("crema-d", natural.prepare_crema_d),
)}
CORPORA = ("csv", *RECIPES)
