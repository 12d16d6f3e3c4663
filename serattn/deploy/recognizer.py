"""A trained run as a recognizer: audio, frames, windows or a stream in; classes, attention out.

:class:`Recognizer` owns what a run's model needs around it at inference: the model
(loaded in safe mode, its SHA-256 checked by :mod:`serattn.runs.reading`), the
normalization, the feature settings and frame rate of ``config.json``, the padding
it was trained with, and the speaker statistics of ``--functionals-norm speaker``
runs. predict.py, the timelines and ``--stream``, and export's parity check all call
it (as pyannote.audio's ``Inference`` wraps a model once for every consumer)::

    recognizer = Recognizer.from_run("results/demo")
    predictions = recognizer.predict_files(["data/demo/wav/spk00_0001.wav"])
    predictions.labels, predictions.probabilities, predictions.attention
"""

import dataclasses
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from serattn.define import FRAME_RATE, SAMPLE_RATE
from serattn.errors import InputError, file_kind
from serattn.features import extraction as features
from serattn.runs.folder import KERAS_MODEL_FILE, STATIC_MODEL_FILE
from serattn.targets import EMOTION, dimensions
from serattn.runs.reading import Run, open_run

# Every format this soundfile reads (mp3 too, with libsndfile 1.1+), but RAW, which needs its rate given.
AUDIO_SUFFIXES = tuple(sorted({f".{name.lower()}" for name in sf.available_formats() if name != "RAW"} | {".aif"}))
UNUSABLE = (features.NON_FINITE, features.OUT_OF_RANGE)  # refused, not skipped: the file needs repair


@dataclasses.dataclass
class Predictions:
    """What a recognizer says about N utterances."""

    ids: list[str]
    classes: tuple[str, ...]  # () for a purely dimensional run
    probabilities: np.ndarray  # (N, C)
    attention: list[np.ndarray]  # N arrays (T_i,): weights over each utterance's own frames
    representations: np.ndarray  # (N, units): the attention representation z
    dimensions: tuple[str, ...] = ()  # the numeric targets of a dimensional or multi-task run
    values: np.ndarray | None = None  # (N, K): their predicted values

    @property
    def labels(self) -> np.ndarray:
        """(N,) the most probable class of each utterance (empty strings without classes)."""
        if not self.classes:
            return np.full(len(self.ids), "")
        return np.asarray(self.classes)[self.probabilities.argmax(1)]


class Recognizer:
    """A run's Keras model with its normalization, feature settings and padding.

    Build one with :meth:`from_run`; the model is loaded when first used, so that bad
    input is refused before a model is read.
    """

    def __init__(self, model, normalization, classes: Sequence[str] = (), *, feature_names: Sequence[str] = (),
                 feature_set: str | None = None, level: str = "lld", frame_rate: float = FRAME_RATE,
                 pad_to: int | None = None, padding: str = "post", functionals_norm: str = "batch",
                 path: Path | None = None, load_model: Callable[[], object] | None = None,
                 targets: Sequence[str] = ("emotion",)):
        """``model``: a ``keras.Model``, or None with ``load_model`` called once when it is needed;
        ``targets``: the run's ``--target`` (numeric targets come after the classes in its output)."""
        self._model, self._load = model, load_model
        self.targets = tuple(targets)
        self.normalization = normalization
        self.classes = tuple(classes)
        self.feature_names = list(feature_names)
        self.feature_set, self.level, self.frame_rate = feature_set, level, frame_rate
        self.pad_to, self.padding = pad_to, padding
        self.functionals_norm = functionals_norm
        self.path = path
        self._window_predictor = None

    @classmethod
    def from_run(cls, run: "Run | str | Path", audio: bool = True) -> "Recognizer":
        """The recognizer of a finished ``train_attention_lstm.py`` run folder.

        Args:
            run: the folder, or an opened :class:`~serattn.runs.reading.Run`.
            audio: refuse runs whose features this version cannot extract from audio
                (static runs, other feature sets or feature names); False for callers
                that bring their own frames (export).

        Raises:
            InputError: the run is incomplete, or (with ``audio``) not one for audio.
        """
        run = run if isinstance(run, Run) else open_run(run)
        record = run.record
        feature_set, level = check_feature_settings(run) if audio else (record.feature_set, "lld")
        return cls(None, run.normalization(), run.classes,
                   feature_names=record.feature_names, feature_set=feature_set, level=level,
                   frame_rate=record.frame_rate, pad_to=record.max_length_used,
                   padding=record.padding, functionals_norm=record.functionals_norm,
                   path=run.path, load_model=run.load_keras_model, targets=record.target)

    @property
    def model(self):
        """The Keras model (loaded on first use)."""
        if self._model is None:
            self._model = self._load()
        return self._model

    # --- audio -------------------------------------------------------------------------

    def extract(self, signal: np.ndarray) -> np.ndarray:
        """(T, D) raw frames of 16 kHz mono samples, with the run's feature set."""
        return features.extract_signal(signal, self.feature_set, self.level)

    def read_files(self, paths: Sequence[Path], warn: Callable[[str], None] | None = None
                   ) -> tuple[list[Path], list[np.ndarray], list[np.ndarray]]:
        """Frames of every usable file; files that cannot be read or are too short are skipped.

        Args:
            paths: audio files.
            warn: called with ``"PATH: skipped: why"`` per skipped file (default: print to stderr).

        Returns:
            ``(kept paths, their raw (T, D) frames, their 16 kHz samples)``.

        Raises:
            InputError: a file has non-finite or out-of-range samples (it needs repair),
                or no file could be used.
        """
        warn = warn or (lambda line: print(line, file=sys.stderr))
        kept, sequences, waveforms = [], [], []
        for path in paths:
            try:
                signal, rate = features.read_audio(path)
            except Exception as error:  # soundfile raises many types for bad audio
                warn(f"{path}: skipped: {error}")
                continue
            problem = features.signal_problem(signal, rate)
            if problem and problem.startswith(UNUSABLE):
                repair = "; repair or remove the file" if problem.startswith(features.NON_FINITE) else ""
                raise InputError(f"'{path}' has {problem}{repair}")
            if problem:
                warn(f"{path}: skipped: {problem}")
                continue
            signal = features.to_sample_rate(signal, rate)
            try:
                frames = self.extract(signal)
            except Exception as error:  # openSMILE raises many types for odd audio
                warn(f"{path}: skipped: {error}")
                continue
            if len(frames) == 0 or not np.all(np.isfinite(frames)):
                warn(f"{path}: skipped: too short for a single frame")
                continue
            sequences.append(frames)
            waveforms.append(signal)
            kept.append(path)
        if not kept:
            raise InputError("none of the given files could be read; nothing to predict")
        return kept, sequences, waveforms

    def predict_files(self, paths: Sequence[Path], batch_size: int = 32) -> Predictions:
        """:meth:`predict_frames` of the usable files among ``paths`` (ids: the paths), as one speaker."""
        kept, sequences, _ = self.read_files(paths)
        return self.predict_frames(sequences, [str(p) for p in kept], batch_size=batch_size)

    # --- whole utterances -----------------------------------------------------------------

    def predict_frames(self, sequences: Sequence[np.ndarray], ids: Sequence[str] | None = None,
                       speakers: Sequence[str] | None = None, batch_size: int = 32) -> Predictions:
        """Classify raw utterances: normalized and padded as in training.

        Args:
            sequences: raw (T_i, D) frames, D as in the run's feature names.
            ids: a name per utterance (default: its index).
            speakers: the speaker of each utterance, for per-speaker statistics
                (default: all one speaker).
        """
        from serattn.features.feature_set import FeatureSet
        from serattn.training.trainer import utterance_inputs

        ids = [str(i) for i in range(len(sequences))] if ids is None else list(ids)
        speakers = ["new"] * len(sequences) if speakers is None else list(speakers)
        batch = FeatureSet.from_sequences(sequences, ids=ids, labels=["?"] * len(sequences), speakers=speakers,
                                          feature_names=self.feature_names)
        batch = self.normalization.apply(batch)
        return self.predict_normalized(batch.sequences(), utterance_inputs(batch, self.functionals_norm), ids,
                                       batch_size)

    def predict_normalized(self, sequences: Sequence[np.ndarray], utterance_inputs: dict | None = None,
                           ids: Sequence[str] | None = None, batch_size: int = 32, padded: bool = True
                           ) -> Predictions:
        """Classify normalized utterances with the model's side inputs given.

        Args:
            utterance_inputs: the model's inputs beyond frames and mask, one row per
                utterance (``speaker_functionals``), or None.
            padded: pad as in training (the run's length and side); False pads each
                batch to its longest utterance only.
        """
        from serattn.training.trainer import predict_with_attention

        ids = [str(i) for i in range(len(sequences))] if ids is None else list(ids)
        pad_to, padding = (self.pad_to, self.padding) if padded else (None, "post")
        outputs = predict_with_attention(self.model, list(sequences), batch_size, pad_to, padding,
                                         utterance_inputs)
        dims = dimensions(self.targets)
        if not dims:
            return Predictions(ids, self.classes, outputs["probabilities"], outputs["weights"], outputs["z"])
        classes = self.classes if EMOTION in self.targets else ()
        output = outputs["probabilities"]
        return Predictions(ids, classes, output[:, :len(classes)], outputs["weights"], outputs["z"], dims,
                           output[:, len(classes):])

    # --- windows and streams ----------------------------------------------------------------

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The numeric targets the run predicts (arousal, valence...); () for a categorical run."""
        return dimensions(self.targets)

    def check_windowed(self) -> None:
        """Raise InputError when the model needs its speaker's functional statistics, which
        windows classified as they come cannot give."""
        if self.functionals_norm == "speaker":
            raise InputError(f"run '{self.path}' was trained with --functionals-norm speaker: its model needs the "
                             f"functional statistics of the speaker's utterances, which predict.py --window/--stream "
                             f"does not have; classify whole files with predict.py, or train with "
                             f"--functionals-norm batch")

    def window_predictor(self):
        """The :class:`~serattn.deploy.timeline.WindowPredictor` of this model (traced once)."""
        from serattn.deploy.timeline import WindowPredictor

        if self._window_predictor is None:
            self._window_predictor = WindowPredictor(self.model, self.normalization, len(self.feature_names))
        return self._window_predictor

    def timeline(self, frames: np.ndarray, window_s: float, hop_s: float, smooth: int = 1, batch_size: int = 64):
        """:func:`~serattn.deploy.timeline.timeline_of_frames` of a recording's raw (T, D) frames."""
        from serattn.deploy.timeline import timeline_of_frames

        classes = self.classes if EMOTION in self.targets else ()
        return timeline_of_frames(self.window_predictor(), frames, classes, window_s, hop_s, smooth,
                                  self.frame_rate, batch_size, dimensions(self.targets))

    def warm_up(self, window_s: float) -> None:
        """Run openSMILE and the traced model once, so that a stream's first window is not late."""
        predictor = self.window_predictor()
        samples = np.random.default_rng(0).normal(0, 0.1, int(round(window_s * SAMPLE_RATE))).astype(np.float32)
        predictor(predictor.normalize(features.extract_signal(samples, self.feature_set))[None])

    def stream(self, chunks: Iterable[bytes], window_s: float, hop_s: float
               ) -> Iterator[tuple]:
        """Classify s16le PCM as it arrives: ``(start_s, class, probability)`` per window, as soon
        as its last sample is in; class None (probability 0) for silence. A dimensional or multi-task
        run yields ``(start_s, class, probability, values)``, values a {dimension: value} dict (None for
        silence) and class None for a purely dimensional run.

        Raises:
            InputError: the chunks ended before one whole window.
        """
        from serattn.deploy.timeline import BYTES_PER_SAMPLE, StreamWindows

        predictor = self.window_predictor()
        dims = dimensions(self.targets)
        classes = self.classes if EMOTION in self.targets else ()
        windows = StreamWindows(window_s, hop_s)
        received, reported = 0, 0
        for data in chunks:
            received += len(data)
            for start, samples in windows.push(data):
                reported += 1
                frames = features.extract_signal(samples, self.feature_set) if np.any(samples) else np.zeros((0, 0))
                silent = len(frames) == 0 or not np.all(np.isfinite(frames))
                if silent and not dims:
                    yield start, None, 0.0
                    continue
                if silent:
                    yield start, None, 0.0, None
                    continue
                output, _ = predictor(predictor.normalize(frames)[None])
                probabilities, values = output[0, :len(classes)], output[0, len(classes):]
                best = int(probabilities.argmax()) if classes else None
                label, probability = (classes[best], float(probabilities[best])) if classes else (None, 0.0)
                if not dims:
                    yield start, label, probability
                    continue
                yield start, label, probability, {dim: float(v) for dim, v in zip(dims, values)}
        if not reported:
            seconds = received / BYTES_PER_SAMPLE / SAMPLE_RATE
            got = "no audio" if not received else f"{seconds:.2f} s of audio"
            raise InputError(f"--stream: standard input ended with {got}, less than one --window of {window_s:g} s; "
                             f"nothing was classified (give more audio or a shorter --window)")


def check_feature_settings(run: Run) -> tuple[str, str]:
    """The run's openSMILE settings, refused if this version cannot extract them from audio."""
    record = run.record
    feature_set, level = record.feature_set, record.level
    if (run.path / STATIC_MODEL_FILE).is_file() and not (run.path / KERAS_MODEL_FILE).is_file():
        raise InputError(f"run '{run.path}' is a static {record.recorded_model or 'scikit-learn'} run "
                         f"(train_static.py); predict.py classifies with the model.keras of "
                         f"train_attention_lstm.py runs: give such a run folder")
    if feature_set not in features.OPENSMILE_SETS or level != "lld":
        raise InputError(f"run '{run.path}' was trained on features '{feature_set}' at level '{level}', "
                         f"which predict.py cannot extract from audio; train on features from "
                         f"extract_features.py (frame level)")
    if list(record.feature_names) != list(features.feature_names(feature_set, level)):
        raise InputError(f"run '{run.path}' expects other feature names than openSMILE '{feature_set}' "
                         f"gives here (another openSMILE version?); re-extract and retrain")
    run.keras_model_file(), run.normalization()  # InputError if either is missing
    return feature_set, level


def find_audio(inputs: Sequence[str]) -> list[Path]:
    """Audio files named or found (recursively) under the inputs, in a stable order."""
    files = []
    for item in map(Path, inputs):
        kind = file_kind(item)
        if kind == "a folder":  # regular files only: a FIFO named x.wav would block for ever
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and file_kind(p) is None)
        elif kind is None:
            files.append(item)
        elif kind == "missing":
            raise InputError(f"'{item}' does not exist; give audio files or folders holding them")
        else:
            raise InputError(f"'{item}' is {kind}, not an audio file; give audio files or folders holding them")
    if not files:
        raise InputError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found in {', '.join(inputs)}")
    return files


def read_signal(path: Path) -> np.ndarray:
    """16 kHz mono samples of an audio file; InputError if it cannot be used."""
    try:
        signal, rate = features.read_audio(path)
    except Exception as error:  # soundfile raises many types for bad audio
        raise InputError(f"cannot read '{path}': {error}") from None
    problem = features.signal_problem(signal, rate)
    if problem:
        raise InputError(f"'{path}' has {problem}" if problem.startswith(UNUSABLE) else f"'{path}': {problem}")
    return features.to_sample_rate(signal, rate)
