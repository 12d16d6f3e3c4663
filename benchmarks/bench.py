"""Speed benchmarks of serattn: ratios measured in one run on this machine, and RESULTS.md.

    python benchmarks/bench.py                 # full suite (~35 min on 2 cores), writes benchmarks/RESULTS.md
    python benchmarks/bench.py --quick         # ~2 min, smaller workloads, writes a scratch file
    python benchmarks/bench.py --only epoch,step
    python benchmarks/bench.py --quick --only deploy   # ONNX vs Keras, live-stream speed and latency (~1 min)
    python benchmarks/bench.py --only scale            # stores of 10k/100k utterances, Dask extraction (issue 27)

Prints one ``name=value`` line per figure. Timings on shared machines vary by tens of
percent between runs, so every figure that compares two ways of doing something
measures both in the same run, interleaved, and reports medians or totals over the
interleaved rounds. Training work runs in fresh processes (benchmarks/bench_workers.py)
so that TensorFlow and PyTorch never share a process and every variant starts alike.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import previous_figures, write_results  # noqa: E402

SECTIONS = ("machine", "epoch", "step", "memory", "slots", "extraction", "cv_jobs", "deploy", "tsne",
            "loso", "scale")  # slowest last
EMODB_2S = ROOT.parent / "shared" / "data" / "emodb_2s"

# Workload sizes: (full, quick).
SIZES = {
    "epoch_sequences": (9_959, 1_000), "epoch_rounds": (4, 2), "padded_steps_per_round": (2, 1),
    "step_rounds": (8, 2), "step_steps": (3, 3), "memory_sequences": (9_959, 1_000),
    "slot_loop_subset": (None, 1_000), "tsne_points": (18_000, 1_000), "extraction_limit": (None, 20),
    "scale_sequences": ((10_000, 100_000), (1_000, 10_000)), "scale_steps": (60, 15), "scale_rounds": (2, 1),
    "scale_wavs": (400, 24),
}
MSP_PODCAST_HOURS = 300  # an MSP-Podcast-sized corpus: 108 million frames at 100 frames/s
PROJECTED_CORES = (2, 16, 64)


def run_worker(name, script="bench_workers.py", **options):
    """Run one worker of ``script`` (bench_workers.py) in a fresh process; its JSON result."""
    command = [sys.executable, str(ROOT / "benchmarks" / script), name, json.dumps(options)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"worker {name} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


class Figures:
    """Figures in order, printed as ``name=value`` as they come."""

    def __init__(self):
        self.values, self.notes = {}, {}

    def add(self, name, value, note=""):
        self.values[name] = value
        self.notes[name] = note
        print(f"{name}={_format(value)}", flush=True)


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


# --- sections --------------------------------------------------------------------


def bench_machine(figures, quick):
    """numpy float32 matmul speed with 1 and 2 threads: how loaded this machine is now."""
    for threads in (1, 2):
        code = ("import time, numpy as np\n"
                "a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)\n"
                "times = []\n"
                "for _ in range(5):\n"
                "    start = time.perf_counter(); a @ a; times.append(time.perf_counter() - start)\n"
                "print(2 * 2048 ** 3 / sorted(times)[2] / 1e9)\n")
        env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout
        figures.add(f"matmul_gflops_{threads}thread{'s' if threads > 1 else ''}", float(output.split()[-1]),
                    "numpy float32 2048x2048 matmul, median of 5; an earlier measurement on this machine type: ~205 with 2 threads")


def bench_epoch(figures, quick):
    """Figure 1: bucketed + masked training vs the published fixed padding to 2,453 frames."""
    pick = 1 if quick else 0
    result = run_worker("epoch", sequences=SIZES["epoch_sequences"][pick], rounds=SIZES["epoch_rounds"][pick],
                        padded_steps_per_round=SIZES["padded_steps_per_round"][pick])
    bucketed = result["bucketed_sequences"] / result["bucketed_s"]
    padded = result["padded_sequences"] / result["padded_s"]
    figures.add("bucketed_seq_per_s", bucketed,
                f"full epoch of {result['bucketed_sequences']} sequences, batch {result['batch_size']}, "
                f"in {result['rounds']} slices")
    figures.add("padded_seq_per_s", padded,
                f"{result['padded_sequences'] // result['batch_size']} batches of {result['batch_size']} "
                f"padded to 2,453 frames, interleaved with the bucketed slices")
    figures.add("speedup_bucketed_vs_padded", bucketed / padded, "bucketed_seq_per_s / padded_seq_per_s")
    figures.add("computed_frames_ratio_padded_vs_bucketed",
                (result["padded_frames"] / result["padded_sequences"])
                / (result["bucketed_frames"] / result["bucketed_sequences"]),
                "frames computed per sequence, padded / bucketed")
    figures.add("bucketed_real_frame_share", result["real_frames"] / result["bucketed_frames"] *
                result["bucketed_sequences"] / result["sequences"], "real frames / computed frames, bucketed")
    figures.add("bucketed_frames_per_s", result["bucketed_frames"] / result["bucketed_s"],
                "computed (padded) frames per second, bucketed epoch")
    figures.add("padded_frames_per_s", result["padded_frames"] / result["padded_s"],
                "computed frames per second at 2,453 frames")
    epoch_s = result["bucketed_s"] * result["sequences"] / result["bucketed_sequences"]
    figures.add("bucketed_epoch_s", epoch_s, f"{result['sequences']} sequences")
    figures.add("padded_epoch_s_projected", result["sequences"] / padded, "from the padded throughput")
    figures.add("input_pipeline_share", result["input_pipeline_epoch_s"] / epoch_s,
                "seconds to produce one epoch of padded batches (generator alone) / training epoch seconds")
    figures.add("first_fit_s", result["first_fit_s"], "tracing the training step + 2 batches (once per run)")
    figures.add("padding_invariance_max_abs_diff", result["padding_invariance_max_abs_diff"],
                "masked model, same weights: probabilities padded to own length vs 2,453 post vs 2,453 pre")


def bench_step(figures, quick):
    """Figure 2: frames/s of the training step, Keras vs the same model in PyTorch."""
    pick = 1 if quick else 0
    rounds, steps = SIZES["step_rounds"][pick], SIZES["step_steps"][pick]
    variants = ["published", "rd0", "rd0_keras", "recommended", "recommended_keras"]
    variants += [] if quick else ["lstm_mask", "unmasked"]
    keras_runs, torch_runs, xla_runs = [], [], []
    for _ in range(1 if quick else 2):  # alternate the libraries' processes
        keras_runs.append(run_worker("keras_step", steps=steps, rounds=rounds, variants=variants))
        xla_runs.append(run_worker("keras_step", steps=steps, rounds=rounds, variants=["jit", "jit_rd0"]))
        torch_runs.append(run_worker("torch_step", steps=steps, rounds=rounds,
                                     threads=[1] if quick else [1, 2]))
    batch, frames = keras_runs[0]["batch_size"], keras_runs[0]["frames"]

    def keras_fps(variant):
        return batch * frames / float(np.median([r["step_s"][variant] for r in keras_runs]))

    def torch_fps(rate):
        keys = [k for k in torch_runs[0]["step_s"] if k.startswith(f"rd{rate:g}_")]
        best = min(keys, key=lambda k: np.median([r["step_s"][k] for r in torch_runs]))
        return batch * frames / float(np.median([r["step_s"][best] for r in torch_runs])), best

    shape = f"batch {batch}, {frames} frames, 32 features"
    figures.add("frames_per_s", keras_fps("published"),
                f"Keras training step, published model (recurrent dropout 0.5) as trained by the CLI, {shape}")
    torch_published, setting = torch_fps(0.5)
    figures.add("torch_frames_per_s", torch_published,
                f"PyTorch, same model (per-step loop with recurrent dropout 0.5), {setting}")
    figures.add("ratio_vs_pytorch", keras_fps("published") / torch_published, "frames_per_s / torch_frames_per_s")
    figures.add("frames_per_s_rd0", keras_fps("rd0"),
                "Keras, --recurrent-dropout 0, as the CLI trains it: the fused LSTM kernel (--lstm-kernel auto)")
    figures.add("frames_per_s_rd0_keras_loop", keras_fps("rd0_keras"), "the same with --lstm-kernel keras")
    figures.add("speedup_fused_vs_keras_lstm", keras_fps("rd0") / keras_fps("rd0_keras"),
                "frames_per_s_rd0 / frames_per_s_rd0_keras_loop: TensorFlow's BlockLSTM vs Keras' while_loop, "
                "interleaved in one process")
    torch_rd0, setting = torch_fps(0.0)
    figures.add("torch_frames_per_s_rd0", torch_rd0, f"PyTorch nn.LSTM (fused), {setting}")
    figures.add("ratio_vs_pytorch_rd0", keras_fps("rd0") / torch_rd0,
                "both without recurrent dropout, both fused: Keras with the fused LSTM kernel vs nn.LSTM")
    figures.add("ratio_vs_pytorch_rd0_keras_loop", keras_fps("rd0_keras") / torch_rd0,
                "the same with Keras' own loop (--lstm-kernel keras; ratio_vs_pytorch_rd0 before issue 26)")
    figures.add("speedup_rd0_vs_published", keras_fps("rd0") / keras_fps("published"),
                "what --recurrent-dropout 0 buys (per-gate loop with 8 small matmuls vs the fused kernel)")
    figures.add("frames_per_s_recommended", keras_fps("recommended"),
                "--preset recommended's model and AdamW step (functionals batch-normalized), fused LSTM kernel")
    figures.add("speedup_fused_recommended", keras_fps("recommended") / keras_fps("recommended_keras"),
                "the recommended model's step, --lstm-kernel auto (fused) vs keras, interleaved")
    xla_fps = batch * frames / float(np.median([r["step_s"]["jit"] for r in xla_runs]))
    figures.add("frames_per_s_xla", xla_fps, "--jit-compile: the same step compiled by XLA (compile time excluded)")
    figures.add("speedup_train_vs_stock_keras", xla_fps / keras_fps("published"),
                "published model, --jit-compile vs the stock Keras step (no goal since issue 26: see "
                "speedup_fused_vs_keras_lstm)")
    xla_rd0_fps = batch * frames / float(np.median([r["step_s"]["jit_rd0"] for r in xla_runs]))
    figures.add("frames_per_s_xla_rd0", xla_rd0_fps, "--jit-compile --recurrent-dropout 0")
    figures.add("ratio_vs_pytorch_rd0_xla", xla_rd0_fps / torch_rd0,
                "both without recurrent dropout, Keras compiled by XLA vs PyTorch's fused nn.LSTM")
    peak = figures.values.get("matmul_gflops_2threads")
    if isinstance(peak, float):
        # Multiply-adds per frame of the LSTM (input and recurrent, 4 gates) and the attention scorer,
        # times 2 FLOPs, times 3 for forward + backward; the once-per-utterance layers are negligible.
        flops_per_frame = 3 * 2 * (32 * 240 + 60 * 240 + 60 * 50 + 50)
        figures.add("fraction_of_peak", keras_fps("recommended") * flops_per_frame / 1e9 / peak,
                    f"recommended model's training step (fused LSTM kernel): {flops_per_frame:,} FLOPs per frame "
                    "(LSTM and attention; the functionals add ~1%) x frames_per_s_recommended / "
                    "matmul_gflops_2threads")
        figures.add("fraction_of_peak_published", keras_fps("published") * flops_per_frame / 1e9 / peak,
                    "the same for the published model (frames_per_s; fraction_of_peak before issue 26)")
    figures.add("lstm_step_us", 1e6 * batch / keras_fps("published"),
                "microseconds per LSTM time step (forward + backward), published model")
    if "lstm_mask" in variants:
        figures.add("speedup_unmasked_lstm_view", keras_fps("published") / keras_fps("lstm_mask"),
                    "training.trainer_for: the LSTM skips its mask on post-padded batches")
        figures.add("speedup_no_mask_model", keras_fps("unmasked") / keras_fps("lstm_mask"),
                    "--no-mask model (no mask anywhere) vs the masked LSTM")
    if not quick:
        wide = [run_worker("keras_step", steps=steps, rounds=rounds, batch_size=64, variants=["published"])
                for _ in range(2)]
        fps64 = 64 * frames / float(np.median([r["step_s"]["published"] for r in wide]))
        figures.add("frames_per_s_batch64", fps64, "published model, batch 64 (CLI default is 32)")
        threads = {}
        for _ in range(2):
            for intra, inter in ((0, 0), (1, 1), (2, 1), (1, 2)):
                r = run_worker("keras_step", steps=steps, rounds=rounds, variants=["published"],
                               intra_op_threads=intra, inter_op_threads=inter)
                threads.setdefault((intra, inter), []).append(r["step_s"]["published"])
        default = np.median(threads[(0, 0)])
        for (intra, inter), times in threads.items():
            if (intra, inter) != (0, 0):
                figures.add(f"speedup_threads_intra{intra}_inter{inter}", default / float(np.median(times)),
                            "vs TensorFlow's default thread pools (2 + 2 on 2 cores)")


def bench_memory(figures, quick):
    """Figure 3: padded vs ragged bytes of the training set, peak RSS of training."""
    pick = 1 if quick else 0
    full = run_worker("memory", sequences=SIZES["memory_sequences"][pick])
    baseline = run_worker("memory", sequences=100)
    figures.add("memory_ratio_padded_vs_ragged", full["padded_bytes"] / full["ragged_bytes"],
                f"{full['sequences']} x 2,453 x 32 float32 = {full['padded_bytes'] / 2**30:.2f} GiB padded vs "
                f"{full['ragged_bytes'] / 2**20:.0f} MiB ragged")
    figures.add("ragged_mib", full["ragged_bytes"] / 2**20, f"{full['sequences']} sequences")
    figures.add("peak_rss_mib", full["peak_rss"] / 2**20, "VmHWM of the training process (epoch + analysis pass)")
    figures.add("baseline_peak_rss_mib", baseline["peak_rss"] / 2**20,
                "the same process on 100 sequences: TensorFlow, model, traced functions")
    over_baseline = full["peak_rss"] - baseline["peak_rss"]
    figures.add("peak_rss_over_baseline_vs_ragged", over_baseline / full["ragged_bytes"],
                "(peak - baseline) / ragged data size"
                + ("; --quick: so small a set that fixed costs dominate, see a full run" if quick else ""))


def bench_slots(figures, quick):
    """Figure 4a: vectorized slot averaging vs the published per-frame loop, 18,000 utterances."""
    from benchmarks.bench_slots import benchmark_slot_averaging

    result = benchmark_slot_averaging(18_000, loop_subset=SIZES["slot_loop_subset"][1 if quick else 0])
    scaled = result["loop_utterances_timed"] != result["n_utterances"]
    note = f"loop timed on {result['loop_utterances_timed']} utterances and scaled" if scaled else "all 18,000"
    figures.add("speedup_slots_vs_published_loop", result["speedup_slot_profiles"], f"slot_profiles; {note}")
    figures.add("speedup_published_vectorized_vs_loop", result["speedup_published"], note)
    figures.add("slot_profiles_s", result["slot_profiles_s"], f"{result['frames']} frames")


def bench_tsne(figures, quick):
    """Figure 4b: seconds of scikit-learn's t-SNE on 60-d representations (perplexity 40)."""
    from sklearn.manifold import TSNE

    points = SIZES["tsne_points"][1 if quick else 0]
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 60))
    z = centers[rng.integers(0, 5, points)] + rng.normal(scale=1.5, size=(points, 60))
    start = time.perf_counter()
    TSNE(n_components=2, perplexity=40, init="pca", learning_rate="auto", random_state=0).fit_transform(z)
    name = "tsne_seconds_18k" if points == 18_000 else f"tsne_seconds_{points}"
    figures.add(name, time.perf_counter() - start,
                f"{points} x 60, Barnes-Hut, as tsne_plot.py" + ("" if points == 18_000 else " (subset: --quick)"))


def bench_extraction(figures, quick):
    """Figure 4c: openSMILE IS09 extraction speed with 1 and all cores, as times real time; and
    what extract_manifest costs over openSMILE's own IS09 LLD pass over the same files."""
    if not (EMODB_2S / "wav").is_dir():
        figures.add("extraction_realtime_factor", "skipped", f"{EMODB_2S} not found")
        return
    limit = SIZES["extraction_limit"][1 if quick else 0]
    files = len(list((EMODB_2S / "wav").glob("*.wav"))) if limit is None else limit
    audio_s = 2.0 * files  # every emodb_2s file is exactly 2.0 s
    with tempfile.TemporaryDirectory() as folder:
        for jobs in (1, os.cpu_count()):
            command = [sys.executable, "extract_features.py", "--corpus", "emodb", str(EMODB_2S), "--out",
                       str(Path(folder) / f"jobs{jobs}.npz"), "--jobs", str(jobs), "--no-cache", "--quiet"]
            command += [] if limit is None else ["--limit", str(limit)]
            start = time.perf_counter()
            subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
            seconds = time.perf_counter() - start
            figures.add(f"extraction_realtime_factor_jobs{jobs}", audio_s / seconds,
                        f"{audio_s:.0f} s of audio ({files} emodb_2s files) / wall seconds of "
                        f"extract_features.py --jobs {jobs} --no-cache, start-up included"
                        + (" (--quick: start-up dominates)" if limit else ""))
    seconds = run_worker("extraction", root=str(EMODB_2S), limit=limit, rounds=1 if quick else 2)
    figures.add("extraction_overhead_vs_opensmile", seconds["manifest_jobs1"] / seconds["opensmile_lld"],
                "extract_manifest(jobs=1) / opensmile.Smile(IS09, LowLevelDescriptors).process_file over the "
                f"same {files} files, in one process, medians of interleaved rounds")
    figures.add("speedup_extraction_jobs2", seconds["manifest_jobs1"] / seconds["manifest_jobs2"],
                "extract_manifest jobs=1 / jobs=2, wall seconds (forked workers: their start-up included)")
    figures.add("extraction_jobs2_cpu_overhead", seconds["cpu_jobs2"] / seconds["cpu_jobs1"],
                "CPU seconds (parent and workers) of jobs=2 / jobs=1: the work 2 processes add; with a core "
                "each, jobs=2 would take about this / 2 of jobs=1's time")
    figures.add("extraction_jobs2_cpu_share", seconds["cpu_jobs2"] / (2 * seconds["manifest_jobs2"]),
                "CPU seconds jobs=2 got / (2 x its wall seconds): 1 on an idle 2-core machine")
    figures.add("extraction_load_average", seconds["load_average"], "1-minute load average after the runs")


def bench_cv_jobs(figures, quick):
    """A small leave-one-speaker-out run through the CLI with --jobs 2 vs --jobs 1 (same numbers)."""
    from serattn.features.feature_set import save_feature_set
    from serattn.testing import make_feature_set

    utterances, epochs = (400, 3) if not quick else (160, 2)
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "frames.npz"
        save_feature_set(make_feature_set(n=utterances, dim=32, speakers=4, min_length=100, max_length=300,
                                          seed=0), data)
        seconds = {1: [], 2: []}
        for _ in range(1 if quick else 2):
            for jobs in (1, 2):
                command = [sys.executable, str(ROOT / "train_attention_lstm.py"), "--data", str(data), "--cv",
                           "loso", "--epochs", str(epochs), "--quiet", "--jobs", str(jobs),
                           "--out", str(Path(folder) / f"jobs{jobs}-{len(seconds[jobs])}")]
                start = time.perf_counter()
                subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
                seconds[jobs].append(time.perf_counter() - start)
    figures.add("speedup_cv_jobs2", float(np.median(seconds[1]) / np.median(seconds[2])),
                f"train_attention_lstm.py --cv loso, 4 folds x {epochs} epochs of {utterances} utterances "
                f"(100-300 frames): --jobs 1 / --jobs 2 wall time, start-up included (goal >= 1.6 on 2 cores)")


def bench_loso(figures, quick):
    """Wall time of the recommended emodb_2s LOSO with the fused LSTM kernel and with the Keras loop."""
    if not (EMODB_2S / "wav").is_dir():
        figures.add("loso_wall_ratio_fused_vs_keras", "skipped", f"{EMODB_2S} not found")
        return
    epochs = 2 if quick else 11
    seconds = {"keras": [], "auto": []}
    with tempfile.TemporaryDirectory() as folder:
        data = ROOT / "data" / "emodb_2s.npz"
        if not data.is_file():
            data = Path(folder) / "emodb_2s.npz"
            subprocess.run([sys.executable, "extract_features.py", "--corpus", "emodb", str(EMODB_2S), "--out",
                            str(data), "--quiet"], cwd=ROOT, check=True, capture_output=True)
        for round_ in range(1 if quick else 2):
            for kernel in seconds:  # interleaved
                command = [sys.executable, str(ROOT / "train_attention_lstm.py"), "--data", str(data), "--cv", "loso",
                           "--norm", "speaker", "--val-speakers", "0", "--epochs", str(epochs), "--preset",
                           "recommended", "--lstm-kernel", kernel, "--quiet",
                           "--out", str(Path(folder) / f"{kernel}-{round_}")]
                start = time.perf_counter()
                subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
                seconds[kernel].append(time.perf_counter() - start)
    keras_s, fused_s = (float(np.median(seconds[k])) for k in ("keras", "auto"))
    recipe = (f"train_attention_lstm.py --data emodb_2s.npz --cv loso --norm speaker --val-speakers 0 --epochs "
              f"{epochs} --preset recommended" + (" (--quick: 2 epochs, start-up weighs more)" if quick else ""))
    figures.add("loso_wall_s_keras", keras_s, f"{recipe} --lstm-kernel keras, wall seconds")
    figures.add("loso_wall_s_fused", fused_s, "the same with --lstm-kernel auto (fused), interleaved")
    figures.add("loso_wall_ratio_fused_vs_keras", fused_s / keras_s, "loso_wall_s_fused / loso_wall_s_keras")


def bench_deploy(figures, quick):
    """Exported ONNX vs Keras inference; predict.py --stream speed and latency (benchmarks/bench_deploy.py)."""
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_deploy.py"), json.dumps({"quick": quick})]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"bench_deploy.py failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    figures.add("ratio_onnx_vs_keras_predict", result["keras_s"] / result["onnx_s"],
                f"Keras predict step (batches of 32, traced) / onnxruntime (one utterance per call) on the same "
                f"{result['utterances']} demo utterances ({result['frames']} frames), 1-epoch published-size model")
    figures.add("ratio_onnx_vs_keras_predict_per_utterance", result["keras_single_s"] / result["onnx_s"],
                "the same, Keras also one utterance per call (the exported graph's granularity)")
    figures.add("stream_rtf", result["stream_rtf"],
                f"predict.py --stream - fed {result['stream_audio_s']} s of PCM as fast as the pipe takes it: seconds "
                f"from first byte to last of {result['stream_windows']} lines / audio seconds (< 1: faster than real time)")
    figures.add("stream_latency_ms", result["stream_latency_ms"],
                f"fed at real-time pace in 100 ms chunks: median from a window's last chunk to its line over "
                f"{result['stream_latency_windows']} windows (max {result['stream_latency_ms_max']:.0f} ms)")


def bench_scale(figures, quick):
    """Issue 27: training from a sharded store (peak RSS at 10x the utterances, frames/s against
    in memory), extraction on 2 Dask workers against 1, and projections to a 300-hour corpus."""
    from serattn.features.demo_corpus import make_demo_corpus

    pick = 1 if quick else 0
    small, large = SIZES["scale_sequences"][pick]
    steps, rounds = SIZES["scale_steps"][pick], SIZES["scale_rounds"][pick]
    with tempfile.TemporaryDirectory(prefix="serattn-scale-") as folder:
        stores = {n: str(Path(folder) / f"fau{n}.store") for n in (small, large)}
        for n, path in stores.items():
            run_worker("make_store", "bench_scale.py", path=path, sequences=n)
        rss, fps = {small: [], large: []}, {"store": [], "memory": []}
        for _ in range(rounds):  # interleaved: store and memory, small and large
            for n in (small, large):
                rss[n].append(run_worker("train", "bench_scale.py", data=stores[n], steps=steps)["peak_rss"])
            for variant in ("store", "memory"):
                result = run_worker("train", "bench_scale.py", data=stores[small], steps=steps,
                                    in_memory=variant == "memory")
                fps[variant].append(result["frames_per_s"])
        figures.add("peak_rss_ratio_100k_vs_10k", float(np.median(rss[large]) / np.median(rss[small])),
                    f"VmHWM of a training process over {steps} bucketed batches of the published model (streaming "
                    f"global statistics, lazy normalized sequences), {large:,} vs {small:,} FAU-like utterances "
                    f"stored as shards of 1,000" + (" (--quick: 1k vs 10k)" if quick else ""))
        figures.add("peak_rss_mib_large_store", float(np.median(rss[large])) / 2**20, f"the {large:,}-utterance run")
        streaming = float(np.median(fps["store"]))
        figures.add("streaming_vs_memory_frames_per_s", streaming / float(np.median(fps["memory"])),
                    f"training frames/s reading the {small:,}-utterance store per batch vs the same frames in memory "
                    f"(as from an .npz), {steps} batches after 2 warm-up steps")
        figures.add("streaming_frames_per_s", streaming, "frames/s of that training from the store")

        manifest = make_demo_corpus(Path(folder) / "wavs", SIZES["scale_wavs"][pick], 6, seed=3,
                                    min_duration_s=2.0, max_duration_s=4.0)
        seconds, cpu_bound, shares, loads = {1: [], 2: []}, {1: [], 2: []}, [], []
        for _ in range(rounds):
            for workers in (1, 2):
                result = run_worker("extract", "bench_scale.py", manifest=str(manifest), workers=workers,
                                    shard_size=4 if quick else 8)
                seconds[workers].append(result["seconds"])
                # The wall time the run would take if every worker had a core to itself: the busiest
                # worker's CPU seconds plus the parent's (which plans the shards and writes the index).
                cpu_bound[workers].append(max(result["worker_cpu_s"]) + result["parent_cpu_s"])
                loads.append(result["load_average"])
                if workers == 2:
                    shares.append(sum(result["worker_cpu_s"]) / (2 * result["seconds"]))
        one, two = float(np.median(seconds[1])), float(np.median(seconds[2]))
        figures.add("speedup_extraction_dask2_cpu", float(np.median(cpu_bound[1]) / np.median(cpu_bound[2])),
                    "the same runs' speedup if each worker had a core to itself: (busiest worker's CPU s + the "
                    "parent's) with 1 worker over that with 2; measures our overhead and balance, not the machine")
        figures.add("extraction_dask2_cpu_share", float(np.median(shares)),
                    "CPU seconds the 2 workers got / (2 x wall seconds): 1 on an idle machine; below, the "
                    "machine's other load took the difference")
        figures.add("extraction_load_average", float(np.median(loads)), "1-minute load average after the runs")
        figures.add("speedup_extraction_dask2", one / two,
                    f"extract_features.py --dask-scheduler into a store: {result['files']} generated wavs "
                    f"({result['audio_s']:.0f} s of audio), LocalCluster of 2 worker processes vs 1, shards of "
                    f"{4 if quick else 8} files" + (" (--quick: start-up dominates)" if quick else ""))
        realtime_per_worker = result["audio_s"] / one
        figures.add("extraction_realtime_per_worker", realtime_per_worker, "seconds of audio per second, one worker")

    cores_here = len(os.sched_getaffinity(0))
    efficiency = min(1.0, (one / two) / 2)
    frames = MSP_PODCAST_HOURS * 3600 * 100
    for cores in PROJECTED_CORES:
        figures.add(f"projected_extraction_hours_300h_{cores}cores",
                    MSP_PODCAST_HOURS / (realtime_per_worker * cores * efficiency),
                    f"{MSP_PODCAST_HOURS} h of audio / (real-time factor per worker x {cores} workers x the 2-worker "
                    f"efficiency {efficiency:.2f})")
        figures.add(f"projected_epoch_hours_300h_{cores}cores", frames / (streaming / cores_here * cores) / 3600,
                    f"{frames / 1e6:.0f} M frames / (streaming frames/s per core here ({cores_here} cores) x {cores}): "
                    f"optimistic, assumes throughput grows with cores (data-parallel replicas), which one process "
                    f"does not do")


def environment():
    """Machine, load and package versions for RESULTS.md."""
    versions = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "numpy", "scikit-learn", "torch", "opensmile"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "serattn",
                              "benchmarks", "train_attention_lstm.py"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
    commit += "+changes" if changed else ""
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory / 2**30, "platform": platform.platform(),
            "versions": versions, "commit": commit, "load_before": os.getloadavg()}


BENCHES = {"machine": bench_machine, "deploy": bench_deploy, "epoch": bench_epoch, "step": bench_step, "memory": bench_memory,
           "slots": bench_slots, "tsne": bench_tsne, "extraction": bench_extraction, "cv_jobs": bench_cv_jobs,
           "loso": bench_loso, "scale": bench_scale}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, ~2 minutes in all")
    parser.add_argument("--only", help=f"comma-separated sections of: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default: benchmarks/RESULTS.md, or a scratch file with --quick)")
    args = parser.parse_args(argv)
    sections = SECTIONS if not args.only else [s.strip() for s in args.only.split(",")]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; expected some of: {', '.join(SECTIONS)}")
    out = args.out or (Path(tempfile.gettempdir()) / "serattn-bench-quick.md" if args.quick
                       else ROOT / "benchmarks" / "RESULTS.md")

    info = environment()
    started = datetime.datetime.now(datetime.timezone.utc)
    start = time.perf_counter()
    info["started"] = started.strftime("%Y-%m-%d %H:%M UTC")
    command = "python benchmarks/bench.py" + ("".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:])))
    figures = Figures()
    kept = previous_figures(out) if args.only else {}  # --only: the other sections' figures stay
    for done, section in enumerate(sections, 1):
        BENCHES[section](figures, args.quick)
        info["load_after"] = os.getloadavg()
        info["seconds"] = time.perf_counter() - start
        partial = "" if done == len(sections) else f" (partial: {done} of {len(sections)} sections so far)"
        write_results(out, figures, info, command + partial, args.quick, kept)  # an interrupted run leaves figures
    print(f"wrote {out} ({info['seconds']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
