"""Recipes of the natural and acted corpora with dimensional or demographic labels.

Each ``prepare_<corpus>(root)`` reads the corpus's own layout and label files as
distributed and returns manifest rows (see :mod:`serattn.features.corpora`, which
dispatches to them). Besides ``path,label,speaker,split`` the rows carry the
corpus's other labels as columns: ``arousal``, ``valence`` and ``dominance`` where
the corpus rates them (numbers as text, "" where unrated), and the session,
partition or demographics that protocols can group or split by.

==============  ===================================================================
corpus          layout under ROOT (release followed)
==============  ===================================================================
iemocap         ``SessionN/sentences/wav/<dialog>/<utt>.wav``, labels in
                ``SessionN/dialog/EmoEvaluation/<dialog>.txt`` (IEMOCAP_full_release,
                release 1); speaker = session + the utterance speaker's gender
msp-podcast     ``Audios/<FileName>``, labels in ``Labels/labels_consensus.csv``
                (release 1.11); split from ``Split_Set``
crema-d         ``AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav`` and
                ``VideoDemographics.csv`` (the GitHub/LDC release); speaker = actor
==============  ===================================================================
"""

import csv
import re
from pathlib import Path

from serattn.errors import InputError

# --- IEMOCAP -------------------------------------------------------------------------

IEMOCAP_CATEGORIES = ("neu", "hap", "exc", "ang", "sad", "fru", "sur", "fea", "dis", "oth", "xxx")
# The usual 4-class set of the literature: happiness and excitement merged, the other categories dropped.
IEMOCAP_CLASS_SETS = {"4": {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}}
IEMOCAP_SESSIONS = tuple(f"Session{n}" for n in range(1, 6))
# "[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]": times, turn, category, [V, A, D]
IEMOCAP_TURN = re.compile(r"^\[(\d+(?:\.\d+)?) - (\d+(?:\.\d+)?)\]\s+(\S+)\s+(\S+)\s+"
                          r"\[(\d+(?:\.\d+)?), (\d+(?:\.\d+)?), (\d+(?:\.\d+)?)\]\s*$")
# Ses01F_impro01_F000, Ses01M_script01_1_M012, Ses05M_script01_1b_F005: the dialog, then the speaker's
# gender and the turn number (Ses01F names the session and who wore the motion-capture markers, not the speaker).
IEMOCAP_UTTERANCE = re.compile(r"^(Ses(0[1-5])[FM]_(impro|script)[0-9a-z_]*?)_([FM])[A-Z]*\d+$")


def prepare_iemocap(root, classes=None):
    """Rows of IEMOCAP (USC SAIL, IEMOCAP_full_release), one per evaluated turn.

    Labels are the consensus categories of EmoEvaluation (``neu hap exc ang sad fru
    sur fea dis oth xxx``; ``xxx``: the evaluators did not agree); with ``classes="4"``
    the usual 4-class set (neu, hap with exc merged, ang, sad), other turns dropped.
    The speaker is the session and the gender of the turn's speaker (``Ses01_F``):
    IEMOCAP's ten actors, two per session. Per-evaluator lines (``C-E1:``, ``A-E2:``)
    are ignored; a turn whose wav is missing is listed (and skipped on extraction).

    Returns:
        ``(rows, dropped)``: rows with columns session, dialog, mode (improvised or
        scripted), gender, start_s, end_s, valence, arousal, dominance; and the
        number of turns the class set dropped.
    """
    root = Path(root)
    mapping = _class_set(classes, IEMOCAP_CLASS_SETS, "iemocap")
    sessions = [root / name for name in IEMOCAP_SESSIONS if (root / name).is_dir()]
    if not sessions:
        raise InputError(f"'{root}' does not look like IEMOCAP: expected Session1..Session5 with "
                         f"sentences/wav/<dialog>/<utt>.wav and dialog/EmoEvaluation/<dialog>.txt, found none")
    rows, dropped = [], 0
    for session in sessions:
        wav_root = session / "sentences" / "wav"
        dialogs = sorted(p.name for p in wav_root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if wav_root.is_dir() else []
        label_dir = session / "dialog" / "EmoEvaluation"
        label_files = sorted(p for p in label_dir.glob("*.txt") if not p.name.startswith(".")) \
            if label_dir.is_dir() else []
        missing = [d for d in dialogs if not (label_dir / f"{d}.txt").is_file()]
        if missing or not label_files:
            expected = label_dir / f"{missing[0] if missing else '<dialog>'}.txt"
            raise InputError(f"IEMOCAP label file '{expected}' does not exist; every dialog of "
                             f"'{wav_root}' needs its EmoEvaluation file")
        for label_file in label_files:
            for row in _iemocap_turns(label_file, session.name):
                if mapping is not None:
                    if row["label"] not in mapping:
                        dropped += 1
                        continue
                    row["label"] = mapping[row["label"]]
                rows.append(row)
    return rows, dropped


def _iemocap_turns(label_file, session_folder):
    """Rows of one EmoEvaluation file: its turn lines; the header and evaluator lines skipped."""
    rows = []
    for line_number, line in enumerate(label_file.read_text(encoding="utf-8", errors="replace").splitlines(),
                                       start=1):
        if not line.startswith("["):  # "% [START_TIME - ...", blank lines, "C-E1:\t...", "A-E2:\t..."
            continue
        match = IEMOCAP_TURN.match(line)
        utterance = IEMOCAP_UTTERANCE.match(match.group(3)) if match else None
        if not match or not utterance or match.group(4) not in IEMOCAP_CATEGORIES:
            raise InputError(f"'{label_file}', line {line_number}: expected '[START - END]<TAB>Ses01F_impro01_F000"
                             f"<TAB>category<TAB>[V, A, D]' with a category of {' '.join(IEMOCAP_CATEGORIES)}, "
                             f"got '{line.strip()}'")
        start, end, turn, category, valence, arousal, dominance = match.groups()
        dialog, session, mode, gender = utterance.groups()
        if f"Session{int(session)}" != session_folder:
            raise InputError(f"'{label_file}', line {line_number}: turn '{turn}' belongs to Session{int(session)}, "
                             f"not {session_folder}")
        rows.append(dict(path=f"{session_folder}/sentences/wav/{dialog}/{turn}.wav", label=category,
                         speaker=f"Ses{session}_{gender}", split="", session=f"Ses{session}", dialog=dialog,
                         mode="improvised" if mode == "impro" else "scripted",
                         gender="female" if gender == "F" else "male", start_s=start, end_s=end,
                         valence=valence, arousal=arousal, dominance=dominance))
    return rows


# --- MSP-Podcast -----------------------------------------------------------------------

MSP_PODCAST_LABELS = Path("Labels/labels_consensus.csv")
MSP_PODCAST_COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
# EmoClass letters of the consensus labels (X: the annotators did not agree on a class).
MSP_PODCAST_EMOTIONS = {"A": "angry", "S": "sad", "H": "happy", "U": "surprise", "F": "fear", "D": "disgust",
                        "C": "contempt", "N": "neutral", "O": "other", "X": "no agreement"}
# Split_Set -> our split: the model is chosen on Development (a training-side partition), tested on Test1, Test2
# (and Test3 where a release gives its labels).
MSP_PODCAST_PARTITIONS = re.compile(r"^(Train|Development|Test\d+)$")
MSP_PODCAST_UNKNOWN = "Unknown"  # SpkrID and Gender of utterances whose speaker the corpus does not know


def prepare_msp_podcast(root):
    """Rows of MSP-Podcast (release 1.11) from ``Labels/labels_consensus.csv``.

    Labels are the EmoClass letters (see :data:`MSP_PODCAST_EMOTIONS`); EmoAct, EmoVal
    and EmoDom become ``arousal``, ``valence`` and ``dominance``; Split_Set is kept
    as ``partition`` and gives ``split`` (Train and Development: train, Test*: test);
    rows of a test partition without EmoClass (labels withheld, as Test3's) are left out.
    An utterance whose SpkrID is ``Unknown`` is its own speaker (``Unknown_<file>``):
    nothing says two such utterances share a speaker, and one pooled "speaker" would
    put unrelated voices into one per-speaker normalization and one validation pick.
    """
    root = Path(root)
    label_file = root / MSP_PODCAST_LABELS
    if not label_file.is_file():
        raise InputError(f"'{root}' does not look like MSP-Podcast: expected the label file "
                         f"'{MSP_PODCAST_LABELS}' and Audios/MSP-PODCAST_0001_0008.wav ...")
    records = _read_csv(label_file, MSP_PODCAST_COLUMNS, ",".join(MSP_PODCAST_COLUMNS))
    rows = []
    for line, record in records:
        name = record["FileName"].strip()
        emotion, partition = record["EmoClass"].strip(), record["Split_Set"].strip()
        if not emotion and partition.startswith("Test"):  # a test set whose labels the release withholds
            continue
        if emotion not in MSP_PODCAST_EMOTIONS or not MSP_PODCAST_PARTITIONS.match(partition) or not name:
            raise InputError(f"'{label_file}', line {line}: expected a FileName, an EmoClass of "
                             f"{' '.join(MSP_PODCAST_EMOTIONS)} and a Split_Set of Train, Development, TestN; "
                             f"got '{name}', '{emotion}', '{partition}'")
        dimensions = {key: _number(record[column], label_file, line, column)
                      for key, column in (("arousal", "EmoAct"), ("valence", "EmoVal"), ("dominance", "EmoDom"))}
        speaker = record["SpkrID"].strip()
        stem = name.removesuffix(".wav")
        rows.append(dict(path=f"Audios/{stem}.wav", label=emotion,
                         speaker=f"{MSP_PODCAST_UNKNOWN}_{stem}" if speaker in ("", MSP_PODCAST_UNKNOWN) else speaker,
                         split="train" if partition in ("Train", "Development") else "test",
                         partition=partition, gender=(record["Gender"].strip() or MSP_PODCAST_UNKNOWN).lower(),
                         **dimensions))
    return rows


# --- CREMA-D ----------------------------------------------------------------------------

CREMA_D_EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
CREMA_D_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_(ANG|DIS|FEA|HAP|NEU|SAD)_(LO|MD|HI|XX)\.wav$")
CREMA_D_DEMOGRAPHICS = Path("VideoDemographics.csv")


def prepare_crema_d(root):
    """Rows of CREMA-D (``AudioWAV/1001_DFA_ANG_XX.wav``: actor, sentence, emotion, level).

    Labels are the emotion codes (ANG DIS FEA HAP NEU SAD, the intended emotion of the
    actor); speakers the actor ids, with age and gender (the ``Sex`` column), race
    and ethnicity from ``VideoDemographics.csv``; no fixed split (use ``--cv``).
    """
    root = Path(root)
    folder = root / "AudioWAV"
    names = sorted(p.name for p in folder.glob("*.wav")) if folder.is_dir() else []
    matches = [m for m in map(CREMA_D_NAME.match, names) if m]
    if not matches:
        raise InputError(f"'{root}' does not look like CREMA-D: expected AudioWAV/<actor>_<sentence>_<emotion>_"
                         f"<level>.wav files such as AudioWAV/1001_DFA_ANG_XX.wav, found none")
    demographics_file = root / CREMA_D_DEMOGRAPHICS
    if not demographics_file.is_file():
        raise InputError(f"CREMA-D demographics file '{demographics_file}' does not exist; it gives each "
                         f"actor's age and sex (ActorID,Age,Sex,Race,Ethnicity)")
    columns = ("ActorID", "Age", "Sex", "Race", "Ethnicity")
    actors = {record["ActorID"].strip(): record for _, record in
              _read_csv(demographics_file, columns, ",".join(columns))}
    rows = []
    for match in matches:
        actor, sentence, emotion, level = match.groups()
        if actor not in actors:
            raise InputError(f"'{demographics_file}' has no row for actor {actor} (of AudioWAV/{match.string})")
        record = actors[actor]
        rows.append(dict(path=f"AudioWAV/{match.string}", label=emotion, speaker=actor, split="", sentence=sentence,
                         level=level, age=record["Age"].strip(), gender=record["Sex"].strip().lower(),
                         race=record["Race"].strip(), ethnicity=record["Ethnicity"].strip()))
    return rows


# --- helpers -------------------------------------------------------------------------------


def _class_set(classes, sets, corpus):
    """The label mapping of ``--classes`` (None for all categories)."""
    if classes in (None, "all"):
        return None
    if classes not in sets:
        raise InputError(f"unknown --classes '{classes}' for {corpus}; expected one of: all, {', '.join(sets)}")
    return sets[classes]


def _read_csv(path, required, header):
    """``(line number, row)`` pairs of a CSV label file that has the ``required`` columns."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"'{path}' lacks the column(s) {', '.join(missing)}: expected a header with "
                                 f"{header}")
            return [(line, {k: v or "" for k, v in row.items()}) for line, row in enumerate(reader, start=2)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"cannot read '{path}': {error}") from None


def _number(text, path, line, column):
    """A rating as text, checked to be a number ("" stays "": unrated)."""
    text = text.strip()
    if text:
        try:
            float(text)
        except ValueError:
            raise InputError(f"'{path}', line {line}: {column} must be a number, got '{text}'") from None
    return text
