"""A run's Keras model as a SavedModel, TFLite or ONNX graph that takes raw IS09 frames.

The exported graph maps one utterance's raw frames ``frames`` (T, D), any T >= 1,
to ``probabilities`` (C,) and ``attention`` (T,). The run's normalization is part of
the graph: global statistics as constants; per-speaker normalization as two more
inputs, ``speaker_mean`` and ``speaker_std`` (D,), and, for ``--functionals-norm
speaker`` runs, ``speaker_functionals`` (2, 9 * D), which ``model_card.json`` says how
to compute. Converters are the ones made for the job: ``tf.saved_model.save``,
``tf.lite.TFLiteConverter`` and tf2onnx (run with onnxruntime).

The graph is Keras inference, layer for layer: the model's own layers and weights,
called with ``training=False``, except that

* recurrent dropout, dropout and the training-only augmentation, which are identity
  at inference, are left out: their random-state variables would otherwise be
  captured by the exported function;
* the LSTM runs without its mask, which is all ones for one unpadded utterance (the
  attention layers still take it), so its loop has no per-step selects; the basic
  LSTM's ``last`` pooling takes the last frame directly.

Every export is checked against Keras (float32) on probe utterances of several
lengths (1 frame to 30 s) before it is written; the differences go into the model card.
"""

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

from serattn.deploy.recognizer import Recognizer
from serattn.errors import InputError
from serattn.runs.folder import check_only_ours

FORMATS = ("savedmodel", "tflite", "onnx")
MODEL_FILES = {"savedmodel": "saved_model.pb", "tflite": "model.tflite", "onnx": "model.onnx"}
MODEL_CARD = "model_card.json"
# What an export folder holds (a SavedModel adds its variables, assets and fingerprint); --overwrite
# refuses a folder with anything else in it rather than delete the user's files with the old export.
EXPORT_ENTRIES = (MODEL_CARD, *MODEL_FILES.values(), "variables", "assets", "fingerprint.pb")
PARITY_TOLERANCE = 1e-5  # max absolute difference to Keras float32, probabilities and attention
# ...for a model with --functionals-fit logreg: its fitted regression's weights are not shrunk by weight decay,
# so float32 rounding of the functionals reaches the probabilities larger (up to 5e-5 measured on the demo
# corpus, where C is 1); a wrong conversion is still orders of magnitude above it.
FITTED_PARITY_TOLERANCE = 1e-4
PROBE_LENGTHS = (1, 2, 37, 400, 3000)  # frames of the probe utterances checked at export (3000 = 30 s)
ONNX_OPSET = 17
SERVING = "serving_default"
CARD_VERSION = 1


class ParityError(RuntimeError):
    """An exported model that does not reproduce Keras: a bug, not a user mistake."""


# --- the inference graph -----------------------------------------------------------


def check_exportable(run):
    """Raise InputError unless ``run`` is a finished Keras LSTM run this module can export."""
    record = run.record
    if not record.is_lstm:
        raise InputError(f"run '{run.path}' is a {record.model} run; export_model.py exports the Keras models of "
                         f"train_attention_lstm.py")
    if not record.mask:
        raise InputError(f"run '{run.path}' was trained with --no-mask: its output depends on the padding to "
                         f"{record.max_length_used} frames, which an exported graph of one utterance "
                         f"does not have; export a masked run")
    if not record.feature_names:
        raise InputError(f"run '{run.path}' records no feature names in config.json; re-run training")
    run.keras_model_file(), run.normalization()  # InputError if either is missing


def inference_model(model):
    """A Keras model sharing ``model``'s weights, for one unpadded utterance at inference.

    Returns:
        ``keras.Model`` with inputs ``{"features", "mask"}`` and outputs
        ``(probabilities (batch, C), attention (batch, frames), representation)``, as
        :func:`serattn.models.attention_lstm.build_analysis_model`, without dropout,
        augmentation, or the LSTM's mask (see the module docstring).
    """
    import keras

    from serattn.models.attention_lstm import build_analysis_model
    from serattn.models.augment import FrameAugment
    from serattn.models.layers import MaskedPooling

    analysis = build_analysis_model(model)

    def clone(layer):
        if isinstance(layer, keras.layers.LSTM):  # the same cell without its dropout seed generator
            return keras.layers.LSTM.from_config({**layer.get_config(), "dropout": 0.0, "recurrent_dropout": 0.0})
        if isinstance(layer, keras.layers.Dropout):
            return keras.layers.Identity(name=layer.name)
        return layer  # shared, weights and all

    def call(layer, *args, **kwargs):
        if isinstance(layer, FrameAugment):  # identity at inference
            return args[0]
        if isinstance(layer, MaskedPooling) and layer.mode == "last":  # no padding: the last frame
            return args[0][:, -1]  # (batch, units); its argmax over the mask has no TFLite/ONNX kernel
        if isinstance(layer, keras.layers.LSTM):
            kwargs.pop("mask", None)
        return layer(*args, **kwargs)

    twin = keras.models.clone_model(analysis, clone_function=clone, call_function=call)
    for layer in analysis.layers:
        if isinstance(layer, keras.layers.LSTM):
            twin.get_layer(layer.name).set_weights(layer.get_weights())
    return twin


def split_outputs(output, num_classes):
    """The serving outputs of one utterance's head output: probabilities, or with ``num_classes`` given (a
    dimensional or multi-task run) ``values`` after the first ``num_classes`` columns (and ``probabilities``
    when there are classes)."""
    if num_classes is None:
        return {"probabilities": output}
    return {"values": output[num_classes:]} | ({"probabilities": output[:num_classes]} if num_classes else {})


def serving_module(model, normalization, dim, num_classes=None):
    """A ``tf.Module`` whose ``serve`` maps raw frames to probabilities and attention.

    Args:
        model: the run's Keras model.
        normalization: its :class:`~serattn.features.normalization.Normalization`.
        dim: D, features per frame.

    Returns:
        The module; ``serve(frames (T, D)[, speaker_mean (D,), speaker_std (D,)][,
        speaker_functionals (2, 9 * D)])`` -> ``{"probabilities": (C,), "attention": (T,)}``, and
        ``"values": (K,)`` for a run with numeric targets (``num_classes``: its C, 0 without classes).
    """
    import tensorflow as tf

    twin = inference_model(model)
    module = tf.Module()
    module.model = twin  # tracked, so its variables are saved
    functionals = speaker_functionals_shape(model)
    if functionals:  # --functionals-norm speaker: one more input, after the frame statistics
        return _serving_with_speaker_functionals(module, twin, normalization, dim, functionals, num_classes)

    def predict(normalized):
        batch = normalized[None]  # (1, T, D)
        mask = tf.ones(tf.shape(batch)[:2], tf.bool)  # (1, T)
        probabilities, attention, _ = twin({"features": batch, "mask": mask}, training=False)
        return split_outputs(probabilities[0], num_classes) | {"attention": attention[0]}

    frames = tf.TensorSpec((None, dim), tf.float32, name="frames")
    if normalization.method == "global":
        # numpy arrays become constants of the traced graph (eager tensors would be captured
        # inputs, which tf2onnx turns into inputs of the ONNX graph).
        mean, std = np.asarray(normalization.mean, np.float32), np.asarray(normalization.std, np.float32)
        module.serve = tf.function(lambda frames: predict((frames - mean) / std), input_signature=[frames])
    elif normalization.method == "speaker":
        statistics = [tf.TensorSpec((dim,), tf.float32, name="speaker_mean"),
                      tf.TensorSpec((dim,), tf.float32, name="speaker_std")]
        module.serve = tf.function(lambda frames, speaker_mean, speaker_std:
                                   predict((frames - speaker_mean) / speaker_std),
                                   input_signature=[frames, *statistics])
    else:
        module.serve = tf.function(predict, input_signature=[frames])
    return module


def speaker_functionals_shape(model):
    """(2, F) of the model's ``speaker_functionals`` input, or None when it has none."""
    inputs = model.input if isinstance(model.input, dict) else {}
    return tuple(inputs["speaker_functionals"].shape[1:]) if "speaker_functionals" in inputs else None


def _serving_with_speaker_functionals(module, twin, normalization, dim, shape, num_classes=None):
    """``serve(frames, speaker_mean, speaker_std, speaker_functionals)`` (training enforces
    ``--norm speaker`` for these runs)."""
    import tensorflow as tf

    if normalization.method != "speaker":
        raise InputError("a --functionals-norm speaker model needs --norm speaker, and this run has "
                         f"--norm {normalization.method}")

    def serve(frames, speaker_mean, speaker_std, speaker_functionals):
        batch = ((frames - speaker_mean) / speaker_std)[None]  # (1, T, D)
        mask = tf.ones(tf.shape(batch)[:2], tf.bool)
        probabilities, attention, _ = twin({"features": batch, "mask": mask,
                                            "speaker_functionals": speaker_functionals[None]}, training=False)
        return split_outputs(probabilities[0], num_classes) | {"attention": attention[0]}

    module.serve = tf.function(serve, input_signature=[
        tf.TensorSpec((None, dim), tf.float32, name="frames"),
        tf.TensorSpec((dim,), tf.float32, name="speaker_mean"),
        tf.TensorSpec((dim,), tf.float32, name="speaker_std"),
        tf.TensorSpec(shape, tf.float32, name="speaker_functionals")])
    return module


def write_model(module, fmt, folder):
    """Convert ``module.serve`` to ``fmt`` and write it into ``folder`` (which exists)."""
    import tensorflow as tf

    folder = Path(folder)
    if fmt == "savedmodel":
        tf.saved_model.save(module, str(folder), signatures={SERVING: module.serve})
    elif fmt == "tflite":
        (folder / MODEL_FILES[fmt]).write_bytes(_tflite_bytes(module))
    elif fmt == "onnx":
        import tf2onnx

        logging.getLogger("tf2onnx").setLevel(logging.ERROR)
        tf2onnx.convert.from_function(module.serve, input_signature=module.serve.input_signature,
                                      opset=ONNX_OPSET, output_path=str(folder / MODEL_FILES[fmt]))
    else:
        raise InputError(f"unknown format '{fmt}'; expected one of: {', '.join(FORMATS)}")


def _tflite_bytes(module):
    """TFLite flatbuffer of ``module.serve``, builtin ops only.

    The weights are frozen into constants first: TFLite's while loop (the LSTM) cannot
    read resource variables. Freezing loses the output names, so a small function
    restores them (outputs of a dict come sorted by key).
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(module.serve.get_concrete_function())
    names = sorted(module.serve.get_concrete_function().structured_outputs)
    holder = tf.Module()
    holder.serve = tf.function(lambda *inputs: dict(zip(names, frozen(*inputs))),
                               input_signature=module.serve.input_signature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([holder.serve.get_concrete_function()], holder)
    return converter.convert()


# --- running an export ----------------------------------------------------------------


@dataclasses.dataclass
class ExportedModel:
    """An exported model, run by its own runtime; call it on one utterance's raw frames."""

    path: Path
    card: dict
    _run: object

    @property
    def format(self):
        return self.card["format"]

    def __call__(self, frames, speaker_mean=None, speaker_std=None, speaker_functionals=None):
        """``(probabilities (C,), attention (T,))`` of raw frames (T, D); a dimensional export adds its
        ``values (K,)`` (and gives empty probabilities without classes)."""
        inputs = {"frames": np.asarray(frames, np.float32)}
        if "speaker_mean" in self.card["inputs"]:
            if speaker_mean is None or speaker_std is None:
                raise InputError(f"'{self.path}' normalizes per speaker: give speaker_mean and speaker_std")
            inputs["speaker_mean"] = np.asarray(speaker_mean, np.float32)
            inputs["speaker_std"] = np.asarray(speaker_std, np.float32)
        if "speaker_functionals" in self.card["inputs"]:
            if speaker_functionals is None:
                raise InputError(f"'{self.path}' normalizes functionals per speaker: give speaker_functionals")
            inputs["speaker_functionals"] = np.asarray(speaker_functionals, np.float32)
        outputs = self._run(inputs)
        if "values" in self.card["outputs"]:
            probabilities = np.asarray(outputs["probabilities"]) if "probabilities" in outputs else np.zeros(0)
            return probabilities, np.asarray(outputs["attention"]), np.asarray(outputs["values"])
        return np.asarray(outputs["probabilities"]), np.asarray(outputs["attention"])


def load_exported(path):
    """The export in folder ``path`` (read from its model card), ready to run."""
    path = Path(path)
    card_path = path / MODEL_CARD
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read '{card_path}': {error}; is '{path}' a folder of export_model.py?") from None
    fmt = card.get("format")
    if fmt == "savedmodel":
        import tensorflow as tf

        function = tf.saved_model.load(str(path)).signatures[SERVING]
        run = lambda inputs: {k: v.numpy() for k, v in function(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
    elif fmt == "tflite":
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice (LiteRT reads the same file)
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(model_path=str(path / MODEL_FILES[fmt]))
        runner = interpreter.get_signature_runner(SERVING)
        run = lambda inputs: runner(**inputs)
    elif fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path / MODEL_FILES[fmt]), providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        run = lambda inputs: dict(zip(names, session.run(None, inputs)))
    else:
        raise InputError(f"'{card_path}' names format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    return ExportedModel(path, card, run)


# --- parity with Keras ------------------------------------------------------------------


def keras_outputs(model, normalization, utterances, speaker_stats=None, targets=("emotion",), classes=()):
    """Keras float32 probabilities and attention of raw utterances, one at a time.

    Args:
        model: the run's Keras model.
        normalization: the run's normalization (global applied here; per speaker with
            ``speaker_stats``, a (mean, std) pair, or (mean, std, functional statistics)
            for a model with a ``speaker_functionals`` input).
        utterances: list of raw (T, D) frames.

        targets, classes: the run's ``--target`` and classes: with numeric targets the values come third.

    Returns:
        list of ``(probabilities (C,), attention (T,))``, or ``(..., values (K,))``.
    """
    if normalization.method == "global":
        normalized = [(frames - normalization.mean) / normalization.std for frames in utterances]
    elif normalization.method == "speaker":
        mean, std = speaker_stats[:2]
        normalized = [(frames - mean) / std for frames in utterances]
    else:
        normalized = list(utterances)
    extra = {} if speaker_stats is None or len(speaker_stats) < 3 else \
        {"speaker_functionals": np.repeat(np.asarray(speaker_stats[2], np.float32)[None], len(utterances), 0)}
    predictions = Recognizer(model, normalization, classes, targets=targets).predict_normalized(
        [np.asarray(f, np.float32) for f in normalized], extra, batch_size=1, padded=False)
    if predictions.values is not None:
        return list(zip(predictions.probabilities, predictions.attention, predictions.values))
    return list(zip(predictions.probabilities, predictions.attention))


def compare(exported, reference, ids, lengths, fmt, tolerance=PARITY_TOLERANCE):
    """How far an export is from Keras, utterance by utterance.

    Args:
        exported, reference: lists of ``(probabilities, attention)`` per utterance.
        ids: utterance names, for the report.
        lengths: their frame counts.
        fmt: the format's name, for the report.

    Returns:
        dict: ``max_abs_diff_probabilities``, ``max_abs_diff_attention``, the worst
        utterance of each and ``ok`` (both within ``tolerance``).
    """
    report = {"format": fmt, "tolerance": tolerance, "utterances": len(ids), "lengths": sorted(set(map(int, lengths)))}
    names = ("probabilities", "attention", "values")[:len(reference[0])]
    if np.size(reference[0][0]) == 0:  # a purely dimensional run: no classes
        names = ("attention", "values")
    for name in names:
        k = ("probabilities", "attention", "values").index(name)
        diffs = []
        for (got, expected) in zip((e[k] for e in exported), (r[k] for r in reference)):
            got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
            diffs.append(np.inf if got.shape != expected.shape else float(np.max(np.abs(got - expected))))
        worst = int(np.argmax(diffs))
        report[f"max_abs_diff_{name}"] = diffs[worst]
        report[f"worst_{name}"] = {"id": str(ids[worst]), "frames": int(lengths[worst])}
    report["ok"] = bool(max(report[f"max_abs_diff_{name}"] for name in names) <= tolerance)
    return report


def check_parity(report):
    """Raise ParityError naming the format and the worst utterance unless ``report['ok']``."""
    if report["ok"]:
        return
    problems = []
    for name in ("probabilities", "attention", "values"):
        if f"max_abs_diff_{name}" not in report:
            continue
        diff, worst = report[f"max_abs_diff_{name}"], report[f"worst_{name}"]
        if diff > report["tolerance"]:
            problems.append(f"{name} differ by {diff:.3g} on utterance '{worst['id']}' ({worst['frames']} frames)")
    raise ParityError(f"{report['format']} export does not match Keras (tolerance {report['tolerance']:g}): "
                      + "; ".join(problems))


def probe_utterances(normalization, dim, lengths=PROBE_LENGTHS, seed=0, functionals=None):
    """Raw frames of random utterances with the training frames' scale, and speaker statistics.

    Returns:
        ``(ids, utterances, speaker_stats)``: ``speaker_stats`` is a (mean, std) pair for
        per-speaker runs (and functional statistics of shape ``functionals`` when given),
        else None.
    """
    rng = np.random.default_rng(seed)
    mean = normalization.mean if normalization.mean is not None else np.zeros(dim, np.float32)
    std = normalization.std if normalization.std is not None else np.ones(dim, np.float32)
    utterances = [(mean + std * rng.normal(size=(length, dim))).astype(np.float32) for length in lengths]
    stats = None
    if normalization.method == "speaker":
        stats = ((0.3 * rng.normal(size=dim)).astype(np.float32), rng.uniform(0.5, 2.0, dim).astype(np.float32))
        if functionals:
            size = functionals[1]
            stats += (np.stack([0.3 * rng.normal(size=size), rng.uniform(0.5, 2.0, size)]).astype(np.float32),)
    return [f"probe-{length}-frames" for length in lengths], utterances, stats


def parity_report(model, normalization, exported, fmt, ids, utterances, speaker_stats=None,
                  tolerance=PARITY_TOLERANCE, targets=("emotion",), classes=()):
    """:func:`compare` an export with Keras on the given raw utterances (values too, with numeric ``targets``)."""
    reference = keras_outputs(model, normalization, utterances, speaker_stats, targets, classes)
    names = ("speaker_mean", "speaker_std", "speaker_functionals")
    extra = {} if speaker_stats is None else dict(zip(names, speaker_stats))
    got = [exported(frames, **extra) for frames in utterances]
    return compare(got, reference, ids, [len(u) for u in utterances], fmt, tolerance)


# --- the export folder ----------------------------------------------------------------


def check_out(out, overwrite):
    """Raise InputError unless ``out`` may be written: new, or an export folder with ``overwrite``."""
    out = Path(out)
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise InputError(f"output folder '{out}' already exists; choose another --out, or pass --overwrite")
    if out.is_symlink() or not out.is_dir() or not ((out / MODEL_CARD).is_file() or not any(out.iterdir())):
        raise InputError(f"output folder '{out}' is not an export folder (no {MODEL_CARD}); --overwrite replaces "
                         f"only those: choose another --out")
    check_only_ours(out, EXPORT_ENTRIES)


def check_utterances(path, split="test"):
    """Ids and raw frames of a feature file's ``split`` utterances (all of them if it has no split)."""
    from serattn.features.feature_set import load_feature_set

    data = load_feature_set(path)
    chosen = range(len(data)) if data.split is None else [i for i in range(len(data)) if data.split[i] == split]
    if not chosen:
        raise InputError(f"'{path}' has no '{split}' utterances to check the export on")
    sequences = data.sequences()
    return [str(data.ids[i]) for i in chosen], [sequences[i] for i in chosen]


def export_run(run, fmt, out, overwrite=False, check=None):
    """Export ``run``'s model to ``fmt`` in folder ``out``, checked against Keras first.

    The folder appears whole or not at all: it is written as a temporary sibling and
    renamed once the parity check has passed. ``check``: ``(ids, raw utterances)``
    checked next to the probe utterances (e.g. :func:`check_utterances` of the run's
    test set).

    Returns:
        The model card (also written as ``out/model_card.json``).

    Raises:
        InputError: the run cannot be exported, or ``out`` may not be written.
        ParityError: the export differs from Keras by more than ``PARITY_TOLERANCE``
            (``FITTED_PARITY_TOLERANCE`` with ``--functionals-fit logreg``).
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}'; expected one of: {', '.join(FORMATS)}")
    check_exportable(run)
    out = Path(out)
    check_out(out, overwrite)
    recognizer = Recognizer.from_run(run, audio=False)
    model, normalization = recognizer.model, recognizer.normalization
    dim = len(recognizer.feature_names)
    targets = recognizer.targets
    num_classes = (len(recognizer.classes) if "emotion" in targets else 0) if run.dimensions else None
    module = serving_module(model, normalization, dim, num_classes)

    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        write_model(module, fmt, temporary)
        card = model_card(run, fmt, normalization)
        (temporary / MODEL_CARD).write_text(json.dumps(card, indent=2) + "\n")
        ids, utterances, stats = probe_utterances(normalization, dim, functionals=speaker_functionals_shape(model))
        if check is not None:
            ids, utterances = ids + list(check[0]), utterances + list(check[1])
        from serattn.models.attention_lstm import has_fitted_functionals

        tolerance = FITTED_PARITY_TOLERANCE if has_fitted_functionals(model) else PARITY_TOLERANCE
        report = parity_report(model, normalization, load_exported(temporary), fmt, ids, utterances, stats,
                               tolerance, targets=targets, classes=recognizer.classes)
        check_parity(report)
        card["parity"] = report
        (temporary / MODEL_CARD).write_text(json.dumps(card, indent=2) + "\n")
        os.chmod(temporary, 0o777 & ~_umask())
        _replace_folder(temporary, out)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return card


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _replace_folder(new, out):
    """Move folder ``new`` onto ``out``; an old ``out`` is removed only once the new one is in place."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / "export")
        os.replace(new, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, out)


def model_card(run, fmt, normalization):
    """What a user of the exported file needs: inputs, classes, features, normalization, provenance."""
    record = run.record
    names = list(record.feature_names)
    frames = {"shape": ["T", len(names)], "dtype": "float32",
              "meaning": "raw (unnormalized) frames of one utterance, any T >= 1, columns in 'features.names' order"}
    inputs = {"frames": frames}
    if normalization.method == "speaker":
        for name, what in (("speaker_mean", "mean"), ("speaker_std", "standard deviation")):
            inputs[name] = {"shape": [len(names)], "dtype": "float32",
                            "meaning": f"per-feature {what} of the speaker's raw frames (see 'normalization')"}
    if record.functionals_norm == "speaker":
        inputs["speaker_functionals"] = {
            "shape": [2, 9 * len(names)], "dtype": "float32",
            "meaning": "mean (row 0) and population standard deviation (row 1, below 1e-8 replaced by 1) over the "
                       "speaker's recordings of their nine functionals per feature (mean, std, skewness, kurtosis, "
                       "min, max, min and max positions, slope, each block D wide) of the per-speaker-normalized "
                       "frames: serattn.models.pooling.speaker_functional_statistics"}
    normalization_card = {
        "global": {"method": "global", "folded_in": True,
                   "how": "(frames - mean) / std with the training speakers' statistics, inside the graph"},
        "speaker": {"method": "speaker", "folded_in": False,
                    "how": "give speaker_mean and speaker_std: per feature, the mean and the population standard "
                           "deviation (ddof 0) over all raw frames of all of the speaker's recordings (as in "
                           "training, where each speaker, test speakers included, used its own audio); a standard "
                           "deviation below 1e-8 is replaced by 1; the graph computes (frames - speaker_mean) / "
                           "speaker_std"},
        "none": {"method": "none", "folded_in": True, "how": "frames are used as they are"},
    }[normalization.method]
    metrics = run.metrics() if run.has_metrics else {}
    packages = ["tensorflow", "keras", "numpy"] + {"onnx": ["tf2onnx", "onnx", "onnxruntime"]}.get(fmt, [])
    card = {
        "card_version": CARD_VERSION,
        "format": fmt,
        "file": "." if fmt == "savedmodel" else MODEL_FILES[fmt],
        "signature": SERVING,
        "run": run.name,
        "inputs": inputs,
        "outputs": {"probabilities": {"shape": [len(run.classes)], "meaning": "class probabilities, in 'classes' order"},
                    "attention": {"shape": ["T"], "meaning": "attention weight of every frame, summing to 1"}},
        "classes": list(run.classes),
        "features": {"feature_set": record.feature_set, "level": record.level, "names": names,
                     "frame_rate": record.recorded_frame_rate, "sample_rate": record.recorded_sample_rate,
                     "opensmile": record.opensmile,
                     "how": "openSMILE IS09 LowLevelDescriptors and LowLevelDescriptors_Deltas of 16 kHz mono audio "
                            "(process_signal), joined on frame start time: serattn.features.extraction.extract_signal"
                     if record.feature_set == "is09" else "see serattn.features.extraction.extract_signal"},
        "normalization": normalization_card,
        "model": record.model_settings(),
        "training_data": record.data_files,
        "metrics": {key: _builtin(metrics[key]) for key in ("ua", "wa", "n_test", "best_epoch", "val_ua",
                                                              "per_class_recall") if key in metrics},
        "training_versions": record.versions,
        "training_git_commit": record.git_commit,
        "export_versions": {name: _version(name) for name in packages},
    }
    dims = run.dimensions
    if dims:  # a dimensional or multi-task run: its values, and its scores
        card["outputs"]["values"] = {"shape": [len(dims)], "meaning": "predicted values, in 'dimensions' order"}
        card["dimensions"] = list(dims)
        card["target"] = list(record.target)
        if "emotion" not in card["target"]:
            del card["outputs"]["probabilities"]
            card["classes"] = []
        card["metrics"].update({key: _builtin(metrics[key]) for key in ("ccc", "dimensions", "val_ccc")
                                if key in metrics})
    return card


def _builtin(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
