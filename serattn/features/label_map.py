"""Label maps: each corpus's labels renamed to one common class set, for cross-corpus runs.

    train_attention_lstm.py --train emodb.npz --test iemocap.npz --label-map maps/emodb-iemocap.yaml

Corpora name their classes differently (EmoDB ``W``, IEMOCAP ``ang``, CREMA-D ``ANG``) and
hold different sets, so training on one and testing on another needs an explicit map to a
common set. The map is a file, YAML or CSV:

.. code-block:: yaml

    classes: [angry, happy, neutral, sad]   # optional: the common set; every mapped value must be in it
    labels:                                 # any corpus: label -> common class (null: drop it)
      neutral: neutral
    corpora:                                # per corpus; wins over 'labels'
      emodb: {W: angry, F: happy, N: neutral, T: sad}
      iemocap: {ang: angry, hap: happy, exc: happy, neu: neutral, sad: sad, fru: null}

.. code-block:: text

    corpus,label,class
    emodb,W,angry
    iemocap,exc,happy
    iemocap,fru,
    ,neutral,neutral

(CSV: an empty ``corpus`` applies to any corpus, an empty ``class`` drops the label.)

A feature set's corpus is the recipe it was extracted with (``extract_features.py --corpus
NAME``, recorded in its meta), else its file name without ``.npz``. A label the map does
not name is refused by name (:class:`~serattn.errors.InputError`), or with
``drop_unmapped`` dropped and counted; no label is ever kept or merged unless the map says
so. The counts go to the run's metrics.json (``label_map_dropped``) and the map itself to
its config.json (``label_map_used``).
"""

import csv
import dataclasses
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np

from serattn.errors import InputError, file_kind

CSV_HEADER = ("corpus", "label", "class")


@dataclasses.dataclass(frozen=True)
class LabelMap:
    """A parsed label map file: ``{corpus or None: {label: class or None}}`` and the optional common set."""

    path: str
    mapping: dict  # None -> the 'labels' section (any corpus); corpus name -> its own section
    classes: tuple | None
    sha256: str

    def lookup(self, corpus):
        """``{label: class or None}`` for one corpus: its own section over the shared one."""
        return {**self.mapping.get(None, {}), **self.mapping.get(corpus, {})}


def read_label_map(path):
    """The label map in ``path`` (``.yaml``/``.yml``/``.json`` or ``.csv``), checked.

    Raises:
        InputError: a missing or unreadable file, a malformed one, or a class outside its ``classes``.
    """
    path = Path(path)
    kind = file_kind(path)
    if kind is not None:
        raise InputError(f"--label-map '{path}' is {'missing' if kind == 'missing' else kind}; expected a YAML or "
                         f"CSV file mapping labels to common classes")
    data = path.read_bytes()
    text = data.decode("utf-8", errors="replace")
    if path.suffix.lower() == ".csv":
        mapping, classes = _read_csv(text, path), None
    else:
        mapping, classes = _read_yaml(text, path)
    if not any(mapping.values()):
        raise InputError(f"--label-map '{path}' maps no label; expected 'labels' or 'corpora' entries")
    if classes is not None:
        outside = sorted({c for section in mapping.values() for c in section.values() if c is not None}
                         - set(classes))
        if outside:
            raise InputError(f"--label-map '{path}' maps to class(es) {', '.join(outside)} outside its classes "
                             f"({', '.join(classes)})")
    return LabelMap(str(path), mapping, classes, hashlib.sha256(data).hexdigest())


def _read_yaml(text, path):
    import yaml

    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(f"--label-map '{path}' is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(spec, dict) or set(spec) - {"classes", "labels", "corpora"}:
        got = sorted(set(spec) - {"classes", "labels", "corpora"})[0] if isinstance(spec, dict) else \
            type(spec).__name__
        raise InputError(f"--label-map '{path}': expected a mapping with 'classes', 'labels' and 'corpora', got "
                         f"{got!r}")
    classes = spec.get("classes")
    if classes is not None:
        if not isinstance(classes, list) or not classes:
            raise InputError(f"--label-map '{path}': 'classes' must be a list of class names, got {classes!r}")
        classes = tuple(str(c) for c in classes)
    corpora = spec.get("corpora") or {}
    if not isinstance(corpora, dict):
        raise InputError(f"--label-map '{path}': 'corpora' must map corpus names to label maps, got {corpora!r}")
    mapping = {None: _section(spec.get("labels") or {}, "labels", path)}
    mapping.update({str(name): _section(section, f"corpora.{name}", path) for name, section in corpora.items()})
    return mapping, classes


def _section(section, where, path):
    if not isinstance(section, dict):
        raise InputError(f"--label-map '{path}': '{where}' must map labels to classes, got {section!r}")
    bad = [label for label, value in section.items() if isinstance(value, (dict, list))]
    if bad:
        raise InputError(f"--label-map '{path}': '{where}.{bad[0]}' must be one class name or null")
    # YAML reads labels such as 01 or yes as numbers or booleans: the labels of a feature set are text
    return {_text(label): None if value is None else _text(value) for label, value in section.items()}


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read_csv(text, path):
    rows = list(csv.reader(text.splitlines()))
    if not rows or tuple(cell.strip() for cell in rows[0]) != CSV_HEADER:
        raise InputError(f"--label-map '{path}': expected the CSV header '{','.join(CSV_HEADER)}', got "
                         f"'{','.join(rows[0]) if rows else ''}'")
    mapping = {None: {}}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 3:
            raise InputError(f"--label-map '{path}', line {number}: expected 3 fields (corpus,label,class), "
                             f"got {len(row)}")
        corpus, label, name = (cell.strip() for cell in row)
        if not label:
            raise InputError(f"--label-map '{path}', line {number}: the label is empty")
        section = mapping.setdefault(corpus or None, {})
        if label in section and section[label] != (name or None):
            raise InputError(f"--label-map '{path}', line {number}: label '{label}' of "
                             f"{'corpus ' + corpus if corpus else 'any corpus'} is mapped twice")
        section[label] = name or None
    return mapping


def corpus_of(feature_set, path):
    """The corpus name a map section applies to: the extraction recipe's, else the file name without suffix."""
    return str(feature_set.meta.get("corpus") or Path(path).stem)


def apply_label_map(label_map, feature_set, path, drop_unmapped=False):
    """``feature_set`` with its labels mapped to the common classes, and what was dropped.

    Args:
        label_map: a :class:`LabelMap`.
        feature_set: the feature set of ``path`` (augmented copies follow their source's label).
        path: its file, for messages and for its corpus name.
        drop_unmapped: drop utterances whose label the map does not name (else refuse them).

    Returns:
        ``(mapped feature set, record)``; the record holds the file, the corpus, the map used
        (``{label: class or None}`` of the labels present) and the original utterances dropped
        per label (``dropped_by_map``: mapped to null; ``dropped_unmapped``: not in the map).

    Raises:
        InputError: unmapped labels without ``drop_unmapped`` (naming the file and the labels),
            or no utterance left.
    """
    corpus = corpus_of(feature_set, path)
    table = label_map.lookup(corpus)
    present = sorted(str(label) for label in np.unique(feature_set.labels))
    unmapped = [label for label in present if label not in table]
    if unmapped and not drop_unmapped:
        raise InputError(f"--label-map '{label_map.path}' maps no class for label(s) {', '.join(unmapped)} of "
                         f"'{path}' (corpus {corpus}); add them to the map (null drops a label) or use "
                         f"--drop-unmapped")
    new = np.array([table.get(str(label)) or "" for label in feature_set.labels], dtype=object)
    keep = new != ""
    originals = ~feature_set.is_copy
    dropped = Counter(str(label) for label in feature_set.labels[~keep & originals])
    if not keep.any():
        raise InputError(f"--label-map '{label_map.path}' leaves no utterance of '{path}' (corpus {corpus}); its "
                         f"labels: {', '.join(present)}")
    mapped = dataclasses.replace(feature_set, labels=new.astype(str)).subset(keep)
    record = {"file": str(path), "corpus": corpus,
              "map": {label: table.get(label) for label in present if label in table},
              "dropped_by_map": {label: dropped[label] for label in present if label in table and dropped[label]},
              "dropped_unmapped": {label: dropped[label] for label in unmapped}}
    return mapped, record


def describe_dropped(record, role):
    """One line of what a map dropped from one file, or None when it dropped nothing."""
    counts = {**record["dropped_by_map"], **record["dropped_unmapped"]}
    if not counts:
        return None
    parts = ", ".join(f"{label} {count}" for label, count in sorted(counts.items()))
    return (f"--label-map: {sum(counts.values())} {role} utterance(s) of '{record['file']}' dropped ({parts}; "
            f"unmapped: {', '.join(record['dropped_unmapped']) or 'none'})")


def dropped_counts(meta):
    """metrics.json's ``label_map_dropped`` (per file role: counts per label and their total) from a training
    set's meta; None without a label map, so the metrics of runs without one stay as they were."""
    record = meta.get("label_map")
    if record is None:
        return None
    return {role: {"dropped_by_map": r["dropped_by_map"], "dropped_unmapped": r["dropped_unmapped"],
                   "total": sum(r["dropped_by_map"].values()) + sum(r["dropped_unmapped"].values())}
            for role, r in record["sets"].items()}
