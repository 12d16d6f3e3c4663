"""Deployment figures for benchmarks/bench.py: ONNX vs Keras inference, live-stream speed and latency.

    python benchmarks/bench_deploy.py '{"quick": true}'

Trains a 1-epoch published-size model on a small demo corpus (the speed does not depend
on the weights), then measures, printing one line ``RESULT {json}``:

* ``ratio_onnx_vs_keras_predict``: seconds of Keras inference as predict.py runs it
  (``predict_with_attention``'s step: batches of 32, traced beforehand) over seconds of
  onnxruntime on the exported model (one utterance per call, normalization in the
  graph), same utterances, interleaved rounds, medians: above 1, ONNX is faster;
* ``stream_rtf``: ``predict.py RUN --stream -`` fed a recording as fast as the pipe
  takes it: seconds from its first byte to its last line, over the audio's duration;
* ``stream_latency_ms``: the same fed at real-time pace in 100 ms chunks: median time
  from writing a window's last chunk to reading its line.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


def _script(name, *args):
    subprocess.run([sys.executable, str(ROOT / name), *map(str, args)], cwd=ROOT, check=True, capture_output=True)


def make_run(folder, utterances):
    corpus = folder / "demo"
    _script("make_demo_corpus.py", "--out", corpus, "--utterances", utterances, "--speakers", 4)
    _script("extract_features.py", "--manifest", corpus / "manifest.csv", "--out", corpus / "features.npz",
            "--quiet")
    _script("train_attention_lstm.py", "--data", corpus / "features.npz", "--out", folder / "run", "--epochs", 1,
            "--quiet")
    return corpus, folder / "run"


def onnx_vs_keras(run, features, rounds):
    import serattn
    from serattn.deploy import export
    from serattn.features.feature_set import load_feature_set
    from serattn.runs.reading import open_run

    serattn.import_tensorflow()
    import tensorflow as tf

    from serattn.models.attention_lstm import build_analysis_model
    from serattn.training.batches import inference_batches

    run = open_run(run)
    out = Path(tempfile.mkdtemp()) / "onnx"
    export.export_run(run, "onnx", out)
    exported = export.load_exported(out)
    model, normalization = run.load_keras_model(), run.normalization()
    data = load_feature_set(features)
    raw = data.sequences()
    normalized = normalization.apply(data).sequences()
    # Keras as predict_with_attention runs it (batches of 32, padded to their longest, masked),
    # with its step traced once beforehand: the steady state, not the first call.
    analysis = build_analysis_model(model)
    signature = [{"features": tf.TensorSpec((None, None, data.dim), tf.float32),
                  "mask": tf.TensorSpec((None, None), tf.bool)}]
    step = tf.function(lambda inputs: analysis(inputs, training=False), input_signature=signature)
    batches = list(inference_batches(normalized, 32, None, "post"))

    def keras_predict():
        for _, inputs in batches:
            [np.asarray(t) for t in step(inputs)]

    singles = [{"features": f[None].astype(np.float32), "mask": np.ones((1, len(f)), bool)} for f in normalized]

    def keras_single():  # the granularity of the exported graph: one utterance per call
        for inputs in singles:
            [np.asarray(t) for t in step(inputs)]

    keras_predict(), keras_single()
    keras_s, keras_single_s, onnx_s = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        keras_predict()
        keras_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        keras_single()
        keras_single_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for frames in raw:
            exported(frames)
        onnx_s.append(time.perf_counter() - start)
    return {"keras_s": float(np.median(keras_s)), "keras_single_s": float(np.median(keras_single_s)),
            "onnx_s": float(np.median(onnx_s)), "utterances": len(raw),
            "frames": int(sum(map(len, raw)))}


def stream(run, pcm, paced):
    """Lines of predict.py --stream - with their arrival times, and when each chunk was written."""
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    process = subprocess.Popen([sys.executable, str(ROOT / "predict.py"), str(run), "--stream", "-"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    process.stderr.readline()  # "reading ...": warmed up
    sent, chunk = {}, 3200  # 100 ms

    def feed():
        sent["start"] = time.monotonic()
        for offset in range(0, len(pcm), chunk):
            process.stdin.write(pcm[offset:offset + chunk])
            process.stdin.flush()
            sent[(offset + chunk) // 2] = time.monotonic()
            if paced:
                time.sleep(max(0.0, sent["start"] + (offset + chunk) / 32000 - time.monotonic()))
        process.stdin.close()

    writer = threading.Thread(target=feed)
    writer.start()
    lines = [(time.monotonic(), line.decode().split("\t")) for line in process.stdout]
    writer.join()
    process.wait()
    return lines, sent


def main(options):
    quick = options.get("quick", False)
    with tempfile.TemporaryDirectory() as folder:
        corpus, run = make_run(Path(folder), 40 if quick else 120)
        result = onnx_vs_keras(run, corpus / "features.npz", 3 if quick else 7)
        signal = np.concatenate([sf.read(p, dtype="int16")[0] for p in sorted((corpus / "wav").glob("*.wav"))])
        seconds = 20 if quick else 60
        pcm = np.resize(signal, seconds * 16000).astype("<i2").tobytes()
        lines, sent = stream(run, pcm, paced=False)
        result["stream_audio_s"] = seconds
        result["stream_windows"] = len(lines)
        result["stream_rtf"] = (lines[-1][0] - sent["start"]) / seconds
        lines, sent = stream(run, pcm[:(10 if quick else 30) * 32000], paced=True)
        latencies = [arrived - sent[int(round(float(fields[1]) * 16000))] for arrived, fields in lines]
        result["stream_latency_ms"] = 1000 * float(np.median(latencies))
        result["stream_latency_ms_max"] = 1000 * float(np.max(latencies))
        result["stream_latency_windows"] = len(latencies)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
