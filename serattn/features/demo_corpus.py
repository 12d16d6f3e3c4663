"""A synthetic speech-emotion corpus whose emotion cue sits in one known stretch.

Real corpora (FAU Aibo) cannot be shipped, and on them nobody knows *where* in an
utterance the emotion is. This corpus is made so that we do: every utterance is a
voiced, speech-like signal (harmonics of an f0 contour, syllable-like energy,
formants, breath noise, pauses) whose prosody outside one stretch is drawn from the
same distribution for every class, and whose class is carried only by that stretch
(its true position is in the manifest as ``cue_start_s``/``cue_end_s``). An
attention model that works should put its weight there.

Classes follow the 5-class FAU Aibo problem (A, E, N, P, R) and its imbalance. The
cue of each class is a prosodic pattern, scaled per utterance by a random strength
so that weak cues are confusable:

=====  ==========================================================================
class  cue
=====  ==========================================================================
A      raised pitch, loud, fast syllables, bright (flat spectral tilt)
E      slow, loud, strong pitch accent on every syllable
N      lowered flat pitch, soft, slightly dark
P      high, rising and oscillating pitch, breathy
R      falling pitch, soft, creaky (jitter and period doubling), dark
=====  ==========================================================================

The manifest also has ``arousal`` and ``valence`` columns, each class's point (:data:`DIMENSIONS`)
scaled by the utterance's cue strength, for dimensional runs (``--target arousal,valence``).

For a controlled study, ``duration_s`` and ``cue_share`` fix the utterance length and
the cue's share of it instead (see :func:`make_demo_corpus`).

Everything is a pure function of the seed: the same seed gives byte-identical wavs
and manifest.
"""

import csv
import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

from serattn.atomic import write_atomically
from serattn.define import FAU_CLASSES, SAMPLE_RATE
from serattn.errors import InputError

# Class proportions of the FAU Aibo training set (Interspeech 2009 Emotion Challenge).
FAU_PROPORTIONS = {"A": 0.088, "E": 0.210, "N": 0.561, "P": 0.068, "R": 0.072}

DEMO_WAV_NAME = re.compile(r"spk\d\d_\d{4,}\.wav")  # every wav the demo corpus writes
CUE_COLUMNS = ("path", "speaker", "label", "split", "duration_s", "cue_start_s", "cue_end_s")  # every version's
MANIFEST_COLUMNS = (*CUE_COLUMNS, "arousal", "valence")  # dimensional targets, derived (DIMENSIONS), after the rest

CUE_LENGTH_S = (0.3, 0.8)  # the cue lasts this long...
CUE_MAX_FRACTION = 0.6  # ...but never more than this share of the utterance
CUE_RAMP_S = 0.04  # raised-cosine fade in and out of the cue, so it has no click
CUE_STRENGTH = (0.45, 1.25)  # per-utterance scale of the cue: weak cues overlap
MIN_DURATION_S = 0.2  # the shortest utterance the generator writes
# A cue shorter than one syllable (the fastest speaker says 5.2 per second) has no prosody.
MIN_CUE_S = 0.19
SETTINGS_NAME = "demo_corpus.json"  # sidecar with the generator's settings, beside manifest.csv
GENERATOR = "serattn.features.demo_corpus"  # marks a sidecar as ours, so --overwrite may replace it

# The demo corpus's dimensional targets (--target arousal,valence): each class's arousal and valence at
# cue strength 1, scaled by the utterance's cue strength (0.45-1.25), so both follow the cue and nothing
# else: a louder, faster, higher cue (A, E) is more aroused, a softer, lower one (N, R) less; P (high,
# rising, breathy) is the pleasant one, A and R the unpleasant ones. Written with 3 decimals. They draw
# nothing from the random stream: the wavs and the other columns are those of earlier versions.
DIMENSIONS = {  # class -> (arousal, valence) at strength 1
    "A": (1.0, -0.8),
    "E": (0.6, -0.2),
    "N": (-0.6, 0.0),
    "P": (0.4, 0.8),
    "R": (-0.3, -0.4),
}


def dimensions_of(label, strength):
    """``(arousal, valence)`` of an utterance of class ``label`` whose cue has ``strength``: see DIMENSIONS."""
    arousal, valence = DIMENSIONS[label]
    return round(arousal * strength, 3) + 0.0, round(valence * strength, 3) + 0.0  # + 0.0: no "-0.000"


# Cue of each class at strength 1, applied only inside the cue stretch:
#   f0      pitch shift (log factor)       slope   pitch rise (+) or fall (-) across the cue
#   accent  pitch bump on every syllable   flat    how much of the usual pitch movement is removed
#   wobble  4 Hz pitch oscillation         db      loudness change (dB)
#   tempo   syllable-rate change (log)     bright  flatter spectral tilt (mixing weight)
#   breath  aspiration noise level         jitter  period-to-period pitch deviation
#   creak   period doubling (alternate strong/weak pulses)
CUES = {
    "A": dict(f0=0.22, slope=0.00, accent=0.00, flat=0.0, wobble=0.00, db=8.0, tempo=0.35,
              bright=0.7, breath=0.00, jitter=0.00, creak=0.0),
    "E": dict(f0=0.05, slope=0.00, accent=0.30, flat=0.0, wobble=0.00, db=6.0, tempo=-0.50,
              bright=0.2, breath=0.00, jitter=0.00, creak=0.0),
    "N": dict(f0=-0.12, slope=0.00, accent=0.00, flat=0.9, wobble=0.00, db=-5.0, tempo=0.00,
              bright=-0.2, breath=0.00, jitter=0.00, creak=0.0),
    "P": dict(f0=0.22, slope=0.20, accent=0.00, flat=0.0, wobble=0.10, db=1.0, tempo=0.15,
              bright=0.0, breath=0.25, jitter=0.00, creak=0.0),
    "R": dict(f0=0.00, slope=-0.35, accent=0.00, flat=0.0, wobble=0.00, db=-3.0, tempo=-0.15,
              bright=-0.35, breath=0.00, jitter=0.05, creak=0.6),
}

# Formants (Hz) of a few vowels of an adult male voice; a speaker scales them.
VOWELS = np.array([
    (730, 1090, 2440),  # a
    (530, 1840, 2480),  # e
    (270, 2290, 3010),  # i
    (570, 840, 2410),  # o
    (300, 870, 2240),  # u
    (500, 1500, 2500),  # schwa
], dtype=np.float64)
FORMANT_BANDWIDTHS = np.array([80.0, 100.0, 140.0])
DARK_POLE = 0.9  # one-pole low-pass that gives the dark (steep) spectral tilt
VOICED_GAIN = 0.5  # brings the formant-filtered voice to about unit RMS
OUTPUT_GAIN = 0.04  # keeps the loudest cue below full scale


@dataclasses.dataclass
class Speaker:
    """Voice of one synthetic speaker: pitch, timbre, tempo and voice quality."""

    id: str
    female: bool
    f0: float  # Hz, mean pitch
    formant_scale: np.ndarray  # (3,) factors on the vowel formants (vocal tract length)
    rate: float  # syllables per second
    brightness: float  # 0 dark .. 1 bright
    breath: float  # level of aspiration noise
    gain_db: float


def make_demo_corpus(out_dir, n_utterances=800, n_speakers=12, seed=0, *, overwrite=False,
                     min_duration_s=0.5, max_duration_s=4.0, duration_s=None, cue_share=None):
    """Write the demo corpus: ``OUT/wav/*.wav`` (16 kHz mono 16-bit) and ``OUT/manifest.csv``.

    Args:
        out_dir: folder to create; it must be empty or absent unless ``overwrite``.
        n_utterances: number of wav files.
        n_speakers: number of speakers (at least 3); a third of them, alternating
            male-like and female-like voices, form the speaker-disjoint test split.
        seed: every sample and every manifest value is a function of it.
        overwrite: replace the ``wav/`` folder and ``manifest.csv`` of a demo corpus
            already in ``out_dir``; other files there (features, cache) are kept.
        min_duration_s, max_duration_s: range of utterance durations; the default
            0.5-4 s gives a mean of about 1.8 s.
        duration_s: ``(min, max)`` seconds: durations uniform in that range instead
            (``min == max`` fixes them); replaces the two arguments above.
        cue_share: ``(min, max)`` in (0, 1]: the cue lasts this share of its
            utterance, drawn uniformly (``1`` is the whole utterance), instead of
            0.3-0.8 s capped at 60%. Its position stays uniform within the utterance.

    Without them the random stream is the one of earlier versions, so the default corpus
    is unchanged. ``cue_share`` is drawn after everything else, so corpora of one seed
    that differ only in it share labels, durations, cue strengths, relative cue
    positions and all the audio outside the cue.

    Returns:
        The path of ``manifest.csv``, whose ``path`` column is relative to it. The
        settings are recorded beside it in ``demo_corpus.json``.

    Raises:
        InputError: ``out_dir`` is not empty (or, with ``overwrite``, holds a
            ``wav/`` folder that is not a demo corpus's), or the sizes cannot hold
            every class in both splits.
    """
    out_dir = Path(out_dir)
    _check_arguments(out_dir, n_utterances, n_speakers, min_duration_s, max_duration_s, overwrite)
    check_cue_ranges(duration_s, cue_share, min_duration_s)
    rng = np.random.default_rng(seed)
    speakers = draw_speakers(rng, n_speakers)
    rows = _draw_utterances(rng, speakers, n_utterances, min_duration_s, max_duration_s,
                            duration_s, cue_share)

    if overwrite:
        _remove_corpus(out_dir)
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    by_id = {speaker.id: speaker for speaker in speakers}
    for index, row in enumerate(rows):
        # One generator per utterance: an utterance does not depend on the others' draws.
        utterance_rng = np.random.default_rng([seed, index])
        signal = synthesize(utterance_rng, by_id[row["speaker"]], row["label"], row["duration_s"],
                            row["cue_start_s"], row["cue_end_s"], row["strength"])
        sf.write(out_dir / row["path"], signal, SAMPLE_RATE, subtype="PCM_16")

    manifest = out_dir / "manifest.csv"

    def write_manifest(temporary):
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(MANIFEST_COLUMNS)
            for row in rows:
                arousal, valence = dimensions_of(row["label"], row["strength"])
                writer.writerow([row["path"], row["speaker"], row["label"], row["split"],
                                 f"{row['duration_s']:.3f}", f"{row['cue_start_s']:.3f}",
                                 f"{row['cue_end_s']:.3f}", f"{arousal:.3f}", f"{valence:.3f}"])

    write_atomically(manifest, write_manifest)  # last but the settings: no manifest, no usable corpus
    settings = dict(generator=GENERATOR, seed=seed, utterances=n_utterances, speakers=n_speakers,
                    duration_s=list(duration_s or (min_duration_s, max_duration_s)),
                    duration_distribution="uniform" if duration_s else "beta(2, 3.4)",
                    cue_share=list(cue_share) if cue_share else None,
                    cue_length_s=None if cue_share else list(CUE_LENGTH_S))
    text = json.dumps(settings, indent=2) + "\n"
    write_atomically(out_dir / SETTINGS_NAME, lambda temporary: temporary.write_text(text))
    return manifest


def parse_range(text, flag):
    """``"MIN:MAX"`` or one number (fixed) as a ``(min, max)`` float pair; InputError naming ``flag``."""
    parts = str(text).split(":")
    try:
        if len(parts) > 2:
            raise ValueError
        low, high = (float(part) for part in (parts * 2)[:2])
    except ValueError:
        raise InputError(f"{flag}: expected a number or MIN:MAX, got '{text}'") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InputError(f"{flag}: expected finite numbers, got '{text}'")
    return low, high


def check_cue_ranges(duration_s, cue_share, min_duration_s=0.5):
    """Refuse ranges that are reversed, out of bounds, or leave a cue shorter than a syllable.

    ``min_duration_s`` is the shortest utterance when ``duration_s`` is not given.
    """
    for flag, pair in (("--duration", duration_s), ("--cue-share", cue_share)):
        if pair is not None and not all(math.isfinite(value) for value in pair):
            raise InputError(f"{flag}: expected finite numbers, got {pair[0]}:{pair[1]}")
        if pair is not None and pair[0] > pair[1]:
            raise InputError(f"{flag}: expected MIN <= MAX, got {pair[0]}:{pair[1]}")
    if duration_s is not None and duration_s[0] < MIN_DURATION_S:
        raise InputError(f"--duration: expected at least {MIN_DURATION_S} s, got {duration_s[0]}")
    if cue_share is not None and not 0 < cue_share[0] <= cue_share[1] <= 1:
        raise InputError(f"--cue-share: expected shares in (0, 1], got {cue_share[0]}:{cue_share[1]}")
    if cue_share is not None:
        shortest = cue_share[0] * (duration_s[0] if duration_s else min_duration_s)
        if shortest < MIN_CUE_S - 1e-9:
            raise InputError(f"--cue-share: the shortest cue would last {shortest:.3f} s, less than "
                             f"one syllable ({MIN_CUE_S} s); raise the share's minimum or the --duration")


def _check_arguments(out_dir, n_utterances, n_speakers, min_duration_s, max_duration_s, overwrite):
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output folder '{out_dir}' is a file; name a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"output folder '{out_dir}' is not empty; choose another one or pass "
                         f"--overwrite to replace the demo corpus in it")
    if n_speakers < 3:
        raise InputError(f"expected at least 3 speakers (2 train, 1 test), got {n_speakers}")
    test = np.isin(_speaker_of(n_utterances, n_speakers), _test_speakers(n_speakers))
    if test.sum() < len(FAU_CLASSES) or (~test).sum() < len(FAU_CLASSES):
        raise InputError(f"expected enough utterances for every class in both splits "
                         f"(at least {3 * len(FAU_CLASSES)}), got {n_utterances}")
    if not MIN_DURATION_S <= min_duration_s < max_duration_s:
        raise InputError(f"expected durations with {MIN_DURATION_S} <= minimum < maximum, "
                         f"got {min_duration_s} and {max_duration_s} s")


def _remove_corpus(out_dir):
    """Delete a demo corpus's wavs and manifest.csv; refuse if anything else would go with them."""
    manifest, wav_dir = out_dir / "manifest.csv", out_dir / "wav"
    is_demo_manifest = manifest.is_file() and manifest.read_text().startswith(",".join(CUE_COLUMNS))
    if manifest.exists() and not is_demo_manifest:
        raise InputError(f"'{manifest}' is not a demo-corpus manifest; not replacing it: "
                         f"choose another output folder")
    settings = out_dir / SETTINGS_NAME
    if settings.exists() and not _is_demo_settings(settings):
        raise InputError(f"'{settings}' was not written by make_demo_corpus.py; not replacing it: "
                         f"move it or choose another output folder")
    if wav_dir.exists() and not wav_dir.is_dir():
        raise InputError(f"'{wav_dir}' is a file; not replacing it: choose another output folder")
    # Only our own wav names (spk01_0000.wav) are deleted, and only if nothing else is there.
    ours = [path for path in wav_dir.glob("*") if path.is_file() and DEMO_WAV_NAME.fullmatch(path.name)]
    others = sorted(set(wav_dir.glob("*")) - set(ours))
    if others and not is_demo_manifest:
        raise InputError(f"'{out_dir}' has a wav/ folder but no demo-corpus manifest.csv; "
                         f"not replacing it: choose another output folder")
    if others:
        raise InputError(f"'{others[0]}' was not written by make_demo_corpus.py; not replacing the "
                         f"corpus around it: move it or choose another output folder")
    for path in ours:
        path.unlink()
    manifest.unlink(missing_ok=True)
    settings.unlink(missing_ok=True)


def _is_demo_settings(path):
    """Whether ``path`` is a settings sidecar this module wrote."""
    try:
        return path.is_file() and json.loads(path.read_text()).get("generator") == GENERATOR
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False


def draw_speakers(rng, n_speakers):
    """Speakers ``spk01``... alternating male-like (odd) and female-like (even) voices."""
    speakers = []
    for i in range(n_speakers):
        female = i % 2 == 1
        f0 = rng.uniform(180, 240) if female else rng.uniform(100, 140)
        tract = rng.uniform(1.10, 1.22) if female else rng.uniform(0.92, 1.04)
        speakers.append(Speaker(
            id=f"spk{i + 1:02d}",
            female=female,
            f0=f0,
            formant_scale=tract * rng.uniform(0.94, 1.06, size=3),
            rate=rng.uniform(3.8, 5.2),
            brightness=rng.uniform(0.2, 0.5),
            breath=rng.uniform(0.02, 0.06),
            gain_db=rng.uniform(-3, 3),
        ))
    return speakers


def _draw_utterances(rng, speakers, n_utterances, min_duration_s, max_duration_s,
                     duration_s=None, cue_share=None):
    """Manifest rows: speaker, split, label, duration and cue position of each utterance."""
    speaker_of = _speaker_of(n_utterances, len(speakers))
    test = np.isin(speaker_of, _test_speakers(len(speakers)))
    labels = np.empty(n_utterances, dtype="<U1")
    for in_split in (~test, test):
        labels[in_split] = rng.permutation(_class_counts(int(in_split.sum())))
    # Beta(2, 3.4) has mean 0.37: 0.5 + 3.5 * 0.37 = 1.8 s on the default range.
    if duration_s is None:
        durations = min_duration_s + (max_duration_s - min_duration_s) * rng.beta(2.0, 3.4, n_utterances)
    else:
        durations = rng.uniform(*duration_s, n_utterances)
    durations = np.round(durations, 3)
    cue_lengths = np.minimum(rng.uniform(*CUE_LENGTH_S, n_utterances), CUE_MAX_FRACTION * durations)
    cue_places = rng.uniform(0, 1, n_utterances)  # where the cue sits in the room it leaves
    strengths = rng.uniform(*CUE_STRENGTH, n_utterances)
    if cue_share is not None:  # drawn last: the default stream above stays as it was
        cue_lengths = rng.uniform(*cue_share, n_utterances) * durations
    cue_starts = cue_places * (durations - cue_lengths)
    rows = []
    for i in range(n_utterances):
        speaker = speakers[speaker_of[i]]
        start = round(float(cue_starts[i]), 3)
        rows.append(dict(
            path=f"wav/{speaker.id}_{i:04d}.wav",
            speaker=speaker.id,
            label=str(labels[i]),
            split="test" if test[i] else "train",
            duration_s=float(durations[i]),
            cue_start_s=start,
            cue_end_s=min(round(start + float(cue_lengths[i]), 3), float(durations[i])),
            strength=float(strengths[i]),
        ))
    return rows


def _speaker_of(n_utterances, n_speakers):
    """Speaker index of each utterance: equal shares, in blocks."""
    return np.sort(np.arange(n_utterances) % n_speakers)


def _test_speakers(n_speakers):
    """Every third speaker is a test speaker (spk03, spk06...: male and female alike)."""
    return np.arange(2, n_speakers, 3)


def _class_counts(n):
    """``n`` labels in FAU proportions (largest remainder), every class at least once."""
    shares = np.array([FAU_PROPORTIONS[c] for c in FAU_CLASSES]) * n
    counts = np.maximum(np.floor(shares).astype(int), 1)
    for i in np.argsort(-(shares - np.floor(shares))):
        if counts.sum() >= n:
            break
        counts[i] += 1
    while counts.sum() > n:  # only when the minimum of one pushed us over
        counts[np.argmax(counts)] -= 1
    return np.repeat(np.array(FAU_CLASSES), counts)


# --- synthesis -------------------------------------------------------------------


def synthesize(rng, speaker, label, duration_s, cue_start_s, cue_end_s, strength=1.0):
    """One utterance: float32 samples at 16 kHz in [-1, 1], shape (round(duration_s * 16000),).

    Every random draw is made whatever the label, in the same order, so that the
    signal outside the cue has the same distribution for every class.
    """
    n = int(round(duration_s * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    cue = CUES[label]
    w = _cue_weight(t, cue_start_s, cue_end_s)  # (n,) 0 outside the cue, 1 inside
    position = np.clip((t - cue_start_s) / max(cue_end_s - cue_start_s, 1e-3), 0, 1)

    # Syllables: a phase that advances by the speaking rate; its integer part
    # numbers the syllable, its fraction is the position inside it. Per-syllable
    # values are drawn for the most syllables any tempo could give, so that the
    # random stream, and thus everything before the cue, is the same for every class.
    tempo = rng.normal(0, 0.1) + strength * cue["tempo"] * w
    phase = np.cumsum(speaker.rate * np.exp(tempo)) / SAMPLE_RATE + rng.uniform(0, 1)
    syllable = np.floor(phase).astype(np.int64)
    syllable -= syllable[0]
    inside = phase - np.floor(phase)
    most = int(duration_s * speaker.rate * 3) + 2
    pause = rng.uniform(size=most) < 0.12
    pause[0] = False
    syllable_gain_db = rng.normal(0, 2.0, most)
    vowel = rng.integers(0, len(VOWELS), most)
    accent = rng.normal(0, 0.05, most)
    bump = np.sin(np.pi * inside)

    # Pitch (log Hz): speaker mean, declination, slow drift, accents, then the cue.
    flatten = 1 - strength * cue["flat"] * w
    log_f0 = (np.log(speaker.f0) + rng.normal(0, 0.06) - 0.08 * t / duration_s
              + flatten * (_slow_noise(rng, t, 0.04) + accent[syllable] * bump))
    log_f0 += strength * w * (cue["f0"] + cue["slope"] * (position - 0.5)
                              + cue["accent"] * bump
                              + cue["wobble"] * np.sin(2 * np.pi * 4.0 * t))
    jitter = 0.004 + strength * cue["jitter"] * w
    log_f0 += jitter * _steps(rng, n, 0.005)  # one value per ~5 ms: period-to-period jitter
    f0 = np.exp(log_f0)

    # Source: band-limited pulse train at f0, tilted dark or bright, then creak.
    # Levels are normalized by constants of the speaker, never of the signal, so
    # the cue cannot change the level elsewhere.
    theta = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE + rng.uniform(0, 2 * np.pi)
    n_harmonics = int(7500 / (2 * speaker.f0))  # below Nyquist up to twice the mean pitch
    pulses = _pulse_train(theta, n_harmonics) / np.sqrt(n_harmonics / 2)
    dark = lfilter([1 - DARK_POLE], [1, -DARK_POLE], pulses) / _dark_gain(speaker.f0, n_harmonics)
    bright = np.clip(speaker.brightness + strength * cue["bright"] * w, 0, 1)
    source = (1 - bright) * dark + bright * 0.5 * pulses
    creak = strength * cue["creak"] * w
    source *= 1 + creak * np.cos(theta / 2)  # alternate periods strong/weak: period doubling
    source *= 1 + (0.03 + creak * 0.3) * _steps(rng, n, 0.005)  # shimmer

    # Vocal tract: three formants of each syllable's vowel, scaled to the speaker.
    voiced = VOICED_GAIN * _formant_filter(source, syllable, VOWELS[vowel] * speaker.formant_scale,
                                           speaker)

    # Breath noise: aspiration, louder in breathy voice, faintly present in pauses.
    breath_level = speaker.breath + strength * cue["breath"] * w
    noise = lfilter([1, -0.95], [1], rng.normal(0, 1, n)) / np.sqrt(1 + 0.95 ** 2)  # high-passed

    envelope = np.where(pause[syllable], 0.0, bump ** 0.6) * 10 ** (syllable_gain_db[syllable] / 20)
    loudness_db = speaker.gain_db + rng.normal(0, 2.0) + strength * cue["db"] * w
    loudness = 10 ** (loudness_db / 20)
    signal = loudness * (envelope * voiced + breath_level * (0.3 + envelope) * noise)
    signal += 1e-4 * rng.normal(0, 1, n)  # a floor of room noise
    return np.clip(OUTPUT_GAIN * signal, -1, 1).astype(np.float32)


def _dark_gain(f0, n_harmonics):
    """RMS of the normalized pulse train at ``f0`` after the one-pole low-pass."""
    omega = 2 * np.pi * f0 * np.arange(1, n_harmonics + 1) / SAMPLE_RATE
    power = (1 - DARK_POLE) ** 2 / (1 - 2 * DARK_POLE * np.cos(omega) + DARK_POLE ** 2)
    return np.sqrt(power.mean())


def _cue_weight(t, start, end):
    """1 inside [start, end], 0 outside, with raised-cosine ramps inside the interval."""
    ramp = min(CUE_RAMP_S, (end - start) / 2)
    rise = np.clip((t - start) / ramp, 0, 1)
    fall = np.clip((end - t) / ramp, 0, 1)
    return 0.5 - 0.5 * np.cos(np.pi * np.minimum(rise, fall))


def _slow_noise(rng, t, scale):
    """A smooth random contour (knots every 0.25 s, linearly interpolated)."""
    knots = np.arange(0, t[-1] + 0.5, 0.25)
    return np.interp(t, knots, rng.normal(0, scale, len(knots)))


def _steps(rng, n, step_s):
    """Standard normal values held for ``step_s`` seconds each, shape (n,)."""
    hold = int(step_s * SAMPLE_RATE)
    return np.repeat(rng.normal(0, 1, n // hold + 1), hold)[:n]


def _pulse_train(theta, n_harmonics):
    """Sum of the first ``n_harmonics`` cosines of phase ``theta`` (Dirichlet kernel)."""
    half = np.sin(theta / 2)
    safe = np.where(np.abs(half) < 1e-6, 1e-6, half)
    pulses = np.sin((n_harmonics + 0.5) * theta) / (2 * safe) - 0.5
    return np.where(np.abs(half) < 1e-6, n_harmonics, pulses)


def _formant_filter(source, syllable, formants, speaker):
    """Filter each syllable by a cascade of three resonators at its ``formants`` (S, 3)."""
    out = np.empty_like(source)
    bounds = np.flatnonzero(np.diff(syllable)) + 1
    bandwidths = FORMANT_BANDWIDTHS * (1.15 if speaker.female else 1.0)
    for s, (start, stop) in enumerate(zip(np.r_[0, bounds], np.r_[bounds, len(source)])):
        a = np.array([1.0])
        for frequency, bandwidth in zip(formants[s], bandwidths):
            r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
            a = np.convolve(a, [1, -2 * r * np.cos(2 * np.pi * frequency / SAMPLE_RATE), r * r])
        out[start:stop] = lfilter([a.sum()], a, source[start:stop])  # unit gain at 0 Hz
    return out

