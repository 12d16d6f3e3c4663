"""RESULTS.md for benchmarks/bench.py: the machine, the versions, the command and every figure."""

from pathlib import Path

GOALS = {
    "speedup_bucketed_vs_padded": (">= 10", lambda v: v >= 10),
    "ratio_vs_pytorch": (">= 1.0", lambda v: v >= 1.0),
    "peak_rss_over_baseline_vs_ragged": ("<= 2", lambda v: v <= 2),
    "speedup_slots_vs_published_loop": (">= 100", lambda v: v >= 100),
    "speedup_fused_vs_keras_lstm": (">= 1.6", lambda v: v >= 1.6),
    "ratio_vs_pytorch_rd0": (">= 1.0", lambda v: v >= 1.0),
    "loso_wall_ratio_fused_vs_keras": ("<= 0.6", lambda v: v <= 0.6),
    "speedup_cv_jobs2": (">= 1.6", lambda v: v >= 1.6),
    "extraction_overhead_vs_opensmile": ("<= 1.10", lambda v: v <= 1.10),
    "speedup_extraction_jobs2": (">= 1.7", lambda v: v >= 1.7),
    "stream_rtf": ("< 1 (real time)", lambda v: v < 1),
    "stream_latency_ms": ("< 500 (one hop)", lambda v: v < 500),
    "peak_rss_ratio_100k_vs_10k": ("<= 1.2", lambda v: v <= 1.2),
    "streaming_vs_memory_frames_per_s": (">= 0.9", lambda v: v >= 0.9),
    "speedup_extraction_dask2": (">= 1.7", lambda v: v >= 1.7),
}


def _value(value):
    if isinstance(value, float):
        if abs(value) >= 1e4:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _goal(name, value):
    if name not in GOALS:
        return ""
    text, met = GOALS[name]
    if not isinstance(value, (int, float)):
        return text
    return f"{text} ({'met' if met(value) else 'NOT met'})"


def where_the_time_goes(values):
    """Paragraphs explaining the step and epoch costs, filled with this run's figures."""
    get = values.get

    def have(*names):
        return all(isinstance(values.get(name), (int, float)) for name in names)

    lines = ["## Where the time goes", ""]
    if have("lstm_step_us", "speedup_rd0_vs_published", "frames_per_s"):
        lines.append(
            f"- **The LSTM loop is op-bound, not FLOP-bound.** One training step of the published model "
            f"costs {get('lstm_step_us'):.0f} us per time step (forward + backward) at batch 32: the "
            f"matmuls of one step are tiny (32 x 60 x 240), and with `recurrent_dropout > 0` Keras uses its "
            f"per-gate cell (`implementation=1`: 8 matmuls, 4 dropout products and ~30 element-wise ops per "
            f"step, each a separate TensorFlow op in a `while_loop`, twice as many in the gradient). "
            f"Recurrent dropout 0 lets training run TensorFlow's one-op `BlockLSTM` kernel "
            f"(`--lstm-kernel auto`): {get('speedup_rd0_vs_published'):.2f}x faster here"
            + (f" ({get('speedup_fused_vs_keras_lstm'):.2f}x over Keras' own fused-cell loop)"
               if have("speedup_fused_vs_keras_lstm") else "") + ". Larger batches amortise the per-op cost"
            + (f" ({get('frames_per_s_batch64'):,.0f} frames/s at batch 64 vs {get('frames_per_s'):,.0f} at 32)"
               if have("frames_per_s_batch64") else "") + ".")
    if have("ratio_vs_pytorch", "ratio_vs_pytorch_rd0"):
        lines.append(
            f"- **PyTorch.** The same model in PyTorch needs a Python loop over time steps for recurrent "
            f"dropout (`nn.LSTM` has none), which is where Keras' graph-mode `while_loop` wins "
            f"(ratio {get('ratio_vs_pytorch'):.2f}). Without recurrent dropout PyTorch's fused `nn.LSTM` is one "
            f"op per sequence, as is TensorFlow's `BlockLSTM` that serattn trains with there (ratio "
            f"{get('ratio_vs_pytorch_rd0'):.2f}"
            + (f"; {get('ratio_vs_pytorch_rd0_keras_loop'):.2f} with Keras' loop"
               if have("ratio_vs_pytorch_rd0_keras_loop") else "") + "). PyTorch "
            "with 2 threads collapses on this shared 2-core machine; the best of 1 and 2 threads is used.")
    if have("speedup_unmasked_lstm_view"):
        lines.append(
            f"- **The mask in the LSTM** costs per-step selects on outputs and both states and their "
            f"gradients. `training.fit` now trains a view of the model whose LSTM skips the mask on "
            f"post-padded batches (exact: a one-way LSTM's valid outputs never see post-padding; the saved "
            f"model keeps its mask): {get('speedup_unmasked_lstm_view'):.2f}x on the step"
            + (f" (a `--no-mask` model, no mask anywhere: {get('speedup_no_mask_model'):.2f}x)"
               if have("speedup_no_mask_model") else "") + ".")
    if have("input_pipeline_share", "first_fit_s"):
        lines.append(
            f"- **Input pipeline.** Producing one epoch of bucketed, padded batches (Python generator + "
            f"`pad_batch`) takes {100 * get('input_pipeline_share'):.1f}% of the training epoch's time, "
            f"and `prefetch(2)` overlaps it with training. Retracing: none; the step is traced once for "
            f"`(None, None, 32)` inputs ({get('first_fit_s'):.1f} s, `first_fit_s`), whatever the batch lengths.")
    if have("speedup_bucketed_vs_padded", "computed_frames_ratio_padded_vs_bucketed", "bucketed_real_frame_share"):
        lines.append(
            f"- **Padding.** Fixed padding to 2,453 frames computes "
            f"{get('computed_frames_ratio_padded_vs_bucketed'):.1f}x the frames of length bucketing "
            f"({100 * get('bucketed_real_frame_share'):.1f}% of bucketed frames are real); the measured "
            f"throughput ratio is {get('speedup_bucketed_vs_padded'):.1f}x.")
    if have("matmul_gflops_1thread", "matmul_gflops_2threads"):
        lines.append(
            f"- **This machine now.** numpy float32 matmul ran at {get('matmul_gflops_1thread'):.0f} GFLOP/s "
            f"on 1 thread and {get('matmul_gflops_2threads'):.0f} on 2 (an earlier measurement on this machine "
            f"type: ~205 on 2): the cores are shared with other jobs, so absolute frames/s are lower than "
            f"then; compare ratios.")
    return lines + [""]


def previous_figures(path):
    """``{name: (table row, value)}`` of an earlier results file's figures, in its order: a run of some
    sections (``--only scale``) keeps the other sections' figures instead of dropping them."""
    figures = {}
    if not Path(path).is_file():
        return figures
    for line in Path(path).read_text().splitlines():
        if line.startswith("| `"):
            cells = line.split(" | ")
            try:
                value = float(cells[1].replace(",", ""))
            except (IndexError, ValueError):
                value = cells[1] if len(cells) > 1 else ""
            figures[cells[0][3:-1]] = (line, value)
    return figures


def write_results(path, figures, info, command, quick, kept=None):
    """Write the results file (markdown) for one bench run; ``kept`` (see :func:`previous_figures`) are
    figures of sections this run did not measure, kept in their places."""
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    previous = kept or {}
    kept = {name: row for name, row in previous.items() if name not in figures.values}

    def row(name):
        value = figures.values[name]
        return f"| `{name}` | {_value(value)} | {_goal(name, value)} | {figures.notes[name]} |"

    rows = [kept[name][0] if name in kept else row(name) for name in previous] \
        + [row(name) for name in figures.values if name not in previous]
    values = {**{name: value for name, (_, value) in kept.items()}, **figures.values}
    lines = [
        "# Benchmark results",
        "",
        "Made by `benchmarks/bench.py` (`make bench`); do not edit by hand. Every ratio compares two "
        "things measured in the same run, interleaved, on the same machine.",
        "",
        f"- command: `{command}`" + (" (quick: smaller workloads, see notes)" if quick else ""),
        f"- started: {info['started']}, took {info['seconds'] / 60:.1f} min",
        f"- machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']:.0f} GiB, {info['platform']}",
        f"- load average before / after: {' '.join(f'{x:.2f}' for x in info['load_before'])} / "
        f"{' '.join(f'{x:.2f}' for x in info['load_after'])}",
        f"- versions: {versions}",
        f"- git commit: {info['commit']}",
        *([f"- figures of sections this run did not measure ({len(kept)}) are kept from the previous results "
           f"file (see its git history for their command and machine state)"] if kept else []),
        "",
        "Workload: a synthetic FAU-Aibo-like training set (benchmarks/workload.py): 9,959 sequences of 32 "
        "features, lognormal lengths with mean 180 frames, longest 2,453, classes A 8.8% E 21.0% N 56.1% "
        "P 6.8% R 7.2%; the published model (LSTM 60, recurrent dropout 0.5, attention 50, softmax 5), "
        "batch 32, Adam, built and compiled by `training.build_model` like the CLI.",
        "",
        "| figure | value | goal | how |",
        "|---|---|---|---|",
        *rows,
        "",
        *where_the_time_goes(values),
        "## How the figures are measured",
        "",
        "- Figure 1: the bucketed pipeline trains one full epoch cut into slices; before each slice the "
        "padded pipeline (`--pad-to-max`: every batch padded to 2,453 frames) trains a fixed number of "
        "batches, because a padded epoch takes many minutes here. Throughput = sequences / training "
        "seconds of each. Both use `training.EpochBatches` and the model the CLI trains.",
        "- Figure 2: one fixed random batch, `model.fit` over repeated copies, the median of per-step times "
        "(a Keras callback) over interleaved rounds; Keras and PyTorch run in alternating processes.",
        "- Figure 3: peak RSS (`VmHWM`) of a process that generates the set, trains one bucketed epoch and "
        "runs the analysis pass (`predict_with_attention`), minus the peak of the same process on 100 "
        "sequences (TensorFlow, the traced functions and the model: the baseline any run pays), divided by "
        "the ragged float32 feature bytes. The padded size is computed, not allocated.",
        "- Figure 4: `benchmarks/bench_slots.py`; scikit-learn `TSNE` as tsne_plot.py "
        "calls it, on clustered random 60-d points; `extract_features.py` on emodb_2s (2.0 s per file).",
        "",
    ]
    Path(path).write_text("\n".join(lines))
