"""Know the corpus before trusting a number: sizes, durations, speakers, confounds, duplicates.

A UA means little when speaker and class are confounded (a speaker who only ever
acts anger teaches a model the voice, not the emotion) and per-speaker
normalization is harmful when a speaker covers a single class: subtracting that
speaker's mean removes the emotion itself. :func:`describe_corpus` measures these
things for the report; :func:`speaker_normalization_warning` is the one check both
trainers print before training with ``--norm speaker``.
"""

import hashlib

import numpy as np

from serattn.analysis.statistics import cramers_v

FEW_UTTERANCES = 10  # a speaker with fewer gives per-speaker statistics of little worth


def class_table(speakers, labels, classes):
    """(speaker names, (S, C) utterance counts per speaker and class)."""
    names, speaker_index = np.unique(np.asarray(speakers, str), return_inverse=True)
    class_index = {c: j for j, c in enumerate(classes)}
    table = np.zeros((len(names), len(classes)), dtype=np.int64)
    np.add.at(table, (speaker_index, [class_index[str(label)] for label in labels]), 1)
    return names, table


def speaker_normalization_warning(speakers, labels, few=FEW_UTTERANCES):
    """One line warning about speakers per-speaker normalization would hurt, or None.

    Per-speaker z-normalization subtracts each speaker's mean: for a speaker who
    covers one class, that mean is the class, so the emotion is removed along with
    the voice; a speaker with very few utterances gets noisy statistics.
    """
    labels = np.asarray(labels, str)
    classes = sorted(set(labels))
    names, table = class_table(speakers, labels, classes)
    single = names[(table > 0).sum(axis=1) == 1]
    small = names[table.sum(axis=1) < few]
    if len(single) == 0 and len(small) == 0:
        return None
    parts = []
    if len(single):
        parts.append(f"{len(single)} of {len(names)} speakers have a single class ({_first(single)})")
    if len(small):
        parts.append(f"{len(small)} have fewer than {few} utterances ({_first(small)})")
    return (f"warning: --norm speaker: {' and '.join(parts)}; per-speaker statistics then remove the emotion "
            f"itself (consider --norm global; report.py --data describes the corpus)")


def _first(names, shown=3):
    names = [str(n) for n in names]
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def describe_corpus(ids, labels, speakers, classes, split=None, lengths=None, frame_rate=100.0,
                    features=None, source_ids=None):
    """What a corpus (or a run's utterances) holds, for the report.

    Args:
        ids, labels, speakers: (N,) per utterance.
        classes: class order.
        split: (N,) split names, or None.
        lengths: (N,) frames per utterance, or None.
        frame_rate: frames per second (durations = lengths / frame_rate); None when
            the frames are not time (functionals: one row per utterance).
        features: (sum(lengths), D) frames, to find utterances with identical features.
        source_ids: (N,) the source of augmented copies (their own id for originals).

    Returns:
        dict of plain values and tables (lists) that the report template shows.
    """
    ids, labels, speakers = (np.asarray(a, str) for a in (ids, labels, speakers))
    classes = [str(c) for c in classes]
    split = None if split is None else np.asarray(split, str)
    lengths = None if lengths is None else np.asarray(lengths, np.int64)
    copies = np.zeros(len(ids), bool) if source_ids is None else np.asarray(source_ids, str) != ids
    names, table = class_table(speakers, labels, classes)
    duration = None if lengths is None or not frame_rate else lengths / frame_rate
    per_speaker_classes = (table > 0).sum(axis=1)

    def stats(mask):
        row = {"utterances": int(mask.sum())}
        if duration is not None and mask.any():
            row.update(seconds=float(duration[mask].sum()), mean_s=float(duration[mask].mean()),
                       min_s=float(duration[mask].min()), max_s=float(duration[mask].max()),
                       mean_frames=float(lengths[mask].mean()))
        return row

    description = {
        "utterances": int(len(ids)),
        "copies": int(copies.sum()),
        "speakers": int(len(names)),
        "classes": classes,
        "has_durations": duration is not None,
        "total": stats(np.ones(len(ids), bool)),
        "per_class": [{"class": c, "share": float(np.mean(labels == c)), **stats(labels == c)} for c in classes],
        "per_speaker": [{"speaker": str(s), "classes": int(per_speaker_classes[i]),
                         "counts": table[i].tolist(),
                         "splits": sorted(set(split[speakers == s])) if split is not None else [],
                         **stats(speakers == s)} for i, s in enumerate(names)],
        "cramers_v": cramers_v(table),
        "single_class_speakers": [str(s) for s in names[per_speaker_classes == 1]],
        "single_class_share": float(np.mean(per_speaker_classes == 1)) if len(names) else float("nan"),
        "few_utterance_speakers": [str(s) for s in names[table.sum(axis=1) < FEW_UTTERANCES]],
        "duplicates": duplicate_groups(ids, labels, speakers, lengths, features) if features is not None else None,
        "splits": [],
        "speakers_in_several_splits": [],
    }
    if split is not None:
        for name in sorted(set(split)):
            in_split = split == name
            description["splits"].append({
                "split": name, "speakers": int(len(set(speakers[in_split]))),
                "counts": [int(np.sum(in_split & (labels == c))) for c in classes], **stats(in_split)})
        description["speakers_in_several_splits"] = [
            row["speaker"] for row in description["per_speaker"] if len(row["splits"]) > 1]
    return description


def duplicate_groups(ids, labels, speakers, lengths, features):
    """Groups of utterances with byte-identical feature frames (the same recording twice).

    Returns:
        list of dicts ``{"ids", "labels", "speakers", "conflict"}``; ``conflict``
        when the copies disagree in label or speaker.
    """
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    # A store's frames (serattn.features.store.ShardedFrames) are read one utterance at a time.
    utterance = getattr(features, "raw", None)
    frames = None if utterance else np.ascontiguousarray(features)
    groups = {}
    for i in range(len(ids)):
        values = utterance(i) if utterance else frames[offsets[i]:offsets[i + 1]]
        key = hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()
        groups.setdefault(key, []).append(i)
    found = []
    for members in groups.values():
        if len(members) > 1:
            found.append({"ids": [str(ids[i]) for i in members], "labels": sorted({str(labels[i]) for i in members}),
                          "speakers": sorted({str(speakers[i]) for i in members})})
            found[-1]["conflict"] = len(found[-1]["labels"]) > 1 or len(found[-1]["speakers"]) > 1
    return found
