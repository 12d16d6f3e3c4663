"""attention_visualize.py, tsne_plot.py and compare_runs.py on fabricated run folders."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import attention_visualize
import compare_runs
import tsne_plot
from tests.fake_runs import make_fake_run
from serattn.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = dict(counts={"train": 6, "val": 2, "test": 4}, min_frames=30, max_frames=160)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished run with a demo-like manifest (cue times) and audio."""
    return make_fake_run(tmp_path_factory.mktemp("runs"), "tanh-seed1", audio=True, **SMALL)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """tanh and ReLU, two seeds each, as `make paper` will compare them."""
    root = tmp_path_factory.mktemp("paper")
    return [make_fake_run(root, f"{activation}-seed{seed}", activation=activation, seed=seed,
                          accuracy=accuracy, manifest=False, **SMALL)
            for activation, accuracy in [("tanh", 0.6), ("relu", 0.25)] for seed in (1, 2)]


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --- attention_visualize.py ------------------------------------------------------------


def test_attention_slots_figure_table_and_cue_report(run_dir, capsys):
    assert attention_visualize.main([str(run_dir)]) == 0
    figures = run_dir / "figures"
    assert (figures / "attention_slots.png").read_bytes()[:8] == PNG_MAGIC

    rows = read_csv(figures / "attention_slots.csv")
    assert list(rows[0]) == ["split", "label", "slot", "mean", "std"]
    assert len(rows) == 2 * 5 * 100
    # The fake run puts class k's attention at (k + 0.5) / 5 of the duration.
    test_means = {}
    for row in rows:
        if row["split"] == "test":
            test_means.setdefault(row["label"], []).append(float(row["mean"]))
    peaks = [int(np.argmax(test_means[c])) for c in "AENPR"]
    assert peaks == sorted(peaks) and abs(peaks[0] - 10) <= 6 and abs(peaks[-1] - 90) <= 6
    assert np.mean([np.mean(v) for v in test_means.values()]) == pytest.approx(1.0, abs=1e-3)

    cue = json.loads((figures / "attention_cue.json").read_text())
    for split in ("train", "test"):
        summary = cue["splits"][split]["all"]
        assert summary["mean_mass_in_cue"] > summary["mean_cue_share"]
        assert set(cue["splits"][split]["per_class"]) == set("AENPR")
        # The fake run's bump is on the cue: its peak is too, whether the prediction was right or not.
        assert summary["fraction_peak_in_cue"] > 0.9
        outcome = cue["splits"][split]["by_outcome"]
        assert outcome["recognized"]["n"] + outcome["missed"]["n"] == summary["n"]
        assert outcome["recognized"]["n"] > 0 and outcome["missed"]["n"] > 0
    predictions = read_csv(run_dir / "predictions.csv")
    recognized = sum(row["true"] == row["predicted"] for row in predictions if row["split"] == "test")
    assert cue["splits"]["test"]["by_outcome"]["recognized"]["n"] == recognized
    out = capsys.readouterr().out
    assert "of those recognized" in out
    assert "peak per class" in out
    # Aligned on each utterance's cue, every class's attention peaks inside it (the fake run's bump is on the cue).
    assert (figures / "attention_cue_slots.png").read_bytes()[:8] == PNG_MAGIC
    aligned = [row for row in read_csv(figures / "attention_cue_slots.csv") if row["split"] == "test"]
    assert len(aligned) == 5 * 100
    for label in "AENPR":
        means = np.array([float(row["mean"]) for row in aligned if row["label"] == label])
        assert 33 <= np.nanargmax(means) <= 66, label  # slots 33-66 of -1..2 cue lengths are the cue
    assert "5 of 5 inside" in out


def test_published_algorithm_writes_its_own_files(run_dir, tmp_path):
    out = tmp_path / "out"
    attention_visualize.main([str(run_dir), "--published-algorithm", "--slots", "20",
                              "--split", "test", "--out-dir", str(out)])
    rows = read_csv(out / "attention_slots_published.csv")
    assert len(rows) == 5 * 20 and {row["split"] for row in rows} == {"test"}
    assert (out / "attention_slots_published.png").is_file()
    assert not (out / "attention_slots.png").exists()


def test_one_utterance_over_its_waveform(run_dir, tmp_path, capsys):
    utterance = "wav/test/A/utt0040.wav"
    attention_visualize.main([str(run_dir), "--utterance", utterance, "--out-dir", str(tmp_path)])
    assert (tmp_path / "utterance_wav_test_A_utt0040.wav.png").read_bytes()[:8] == PNG_MAGIC
    assert "not found" not in capsys.readouterr().out


def test_one_utterance_without_audio_is_a_plain_plot(tmp_path, capsys):
    run_dir = make_fake_run(tmp_path, manifest=False, **SMALL)
    attention_visualize.main([str(run_dir), "--utterance", "wav/train/A/utt0000.wav"])
    assert (run_dir / "figures" / "utterance_wav_train_A_utt0000.wav.png").is_file()
    assert "plotting attention only" in capsys.readouterr().out
    assert not (run_dir / "figures" / "attention_cue.json").exists()


def test_safe_name():
    from serattn.plots.attention import safe_name

    assert safe_name("wav/A b/x.wav") == "wav_A_b_x.wav"


@pytest.mark.parametrize("argv, message", [
    (["--slots", "0"], "--slots must be at least 1, got 0"),
    (["--split", "dev"], "unknown split 'dev'; expected one of: test, train, val"),
    (["--utterance", "nope.wav"], "utterance 'nope.wav' is not in"),
    (["--manifest", "missing.csv"], "manifest 'missing.csv' does not exist"),
])
def test_attention_visualize_bad_input(run_dir, argv, message):
    with pytest.raises(InputError, match=message):
        attention_visualize.main([str(run_dir)] + argv)


# --- tsne_plot.py ------------------------------------------------------------------------


def test_tsne_map_table_and_separation(run_dir, tmp_path, capsys):
    assert tsne_plot.main([str(run_dir), "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "tsne.png").read_bytes()[:8] == PNG_MAGIC
    rows = read_csv(tmp_path / "tsne.csv")
    assert list(rows[0]) == ["id", "split", "label", "x", "y"]
    assert len(rows) == 5 * (6 + 4)
    separation = json.loads((tmp_path / "tsne_separation.json").read_text())["splits"]
    assert set(separation) == {"train", "test"}
    for values in separation.values():
        assert -1 <= values["silhouette"] <= 1
        assert 0 <= values["knn5_ua"] <= 1 and values["chance_ua"] == 0.2
    # 20 test points cannot take perplexity 40: clipped, with a warning.
    assert separation["test"]["perplexity"] == 19
    assert "--perplexity 40 is not below the 20 points" in capsys.readouterr().err


def test_tsne_max_points_subsamples_each_split_by_class(run_dir, tmp_path):
    tsne_plot.main([str(run_dir), "--max-points", "10", "--split", "train", "--perplexity", "3",
                    "--out-dir", str(tmp_path)])
    rows = read_csv(tmp_path / "tsne.csv")
    assert len(rows) == 10
    assert sorted(row["label"] for row in rows) == sorted("AENPR" * 2)


def test_stratified_subsample_keeps_proportions():
    labels = np.array(["N"] * 60 + ["A"] * 30 + ["P"] * 9 + ["R"])
    index = tsne_plot.stratified_subsample(labels, 20, np.random.default_rng(0))
    assert len(index) == 20 and len(set(index)) == 20
    counts = {c: int(np.sum(labels[index] == c)) for c in "NAPR"}
    assert counts["N"] in (11, 12) and counts["A"] == 6 and counts["P"] in (1, 2) and counts["R"] == 1


@pytest.mark.parametrize("argv, message", [
    (["--perplexity", "0"], "--perplexity must be positive"),
    (["--max-points", "2"], "--max-points must be at least 4"),
    (["--split", "val", "test", "holdout"], "unknown split 'holdout'"),
])
def test_tsne_bad_input(run_dir, argv, message):
    with pytest.raises(InputError, match=message):
        tsne_plot.main([str(run_dir)] + argv)


# --- compare_runs.py ---------------------------------------------------------------------


def metrics_of(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def test_runs_group_by_the_key_that_differs(runs, capsys):
    compare_runs.main([str(r) for r in runs])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["activation", "n", "seeds"]
    tanh_ua = 100 * np.array([metrics_of(r)["ua"] for r in runs[:2]])
    expected = f"{tanh_ua.mean():.1f} ± {tanh_ua.std(ddof=1):.1f}"
    tanh_row = next(line for line in lines if line.startswith("tanh"))
    assert tanh_row.split()[1:3] == ["2", "1,2"] and expected in tanh_row
    assert "Confusion" not in out


def test_markdown_tables_to_a_file_with_summed_confusion(runs, tmp_path, capsys):
    out = tmp_path / "paper" / "tables.md"
    compare_runs.main([str(r) for r in runs] + ["--by", "activation,mask", "--confusion-group",
                                                "--out", str(out)])
    text = out.read_text()
    assert "| activation | mask | n | seeds | UA (%) |" in text
    assert "Confusion matrix of activation=relu, mask=true, summed over 2 runs" in text
    summed = np.add(*[metrics_of(r)["confusion"] for r in runs[2:]])
    table = text.split("activation=relu")[1]
    first_row = next(line for line in table.splitlines() if line.startswith("| A |"))
    assert [int(n) for n in first_row.split("|")[2:7]] == summed[0].tolist()
    assert "| average recall (UA) |" in text
    assert "activation" in capsys.readouterr().out.splitlines()[1]  # aligned text on stdout


def test_csv_and_one_runs_confusion(runs, capsys):
    compare_runs.main([str(runs[0]), "--csv", "--confusion", str(runs[0])])
    blocks = capsys.readouterr().out.split("\n\n")
    table1 = list(csv.reader(blocks[0].splitlines()))
    assert table1[1][:3] == ["runs", "n", "seeds"] and table1[2][:2] == ["all", "1"]
    table2 = list(csv.reader(blocks[1].splitlines()))
    metrics = metrics_of(runs[0])
    assert [int(n) for n in table2[2][1:6]] == metrics["confusion"][0]
    assert table2[-1][0] == "average recall (UA)"
    assert float(table2[-1][-1]) == pytest.approx(100 * metrics["ua"], abs=0.05)


def test_confusion_table_layout():
    title, header, rows = compare_runs.confusion_table([[8, 2], [1, 3]], ["A", "N"], "t")
    assert header == ["true \\ predicted", "A", "N", "recall (%)"]
    assert rows == [["A", "8", "2", "80.0"], ["N", "1", "3", "75.0"],
                    ["average recall (UA)", "", "", "77.5"]]


def test_auto_grouping_ignores_seeds_paths_and_versions(runs):
    configs = [compare_runs.flatten_config(json.loads((r / "config.json").read_text())) for r in runs]
    assert compare_runs.grouping_keys(None, configs) == ["activation"]
    assert compare_runs.grouping_keys(None, configs[:2]) == []


@pytest.mark.parametrize("argv, message", [
    (["--by", "colour"], "unknown config key 'colour' for --by; expected one of: .*activation"),
])
def test_compare_bad_input(runs, argv, message):
    with pytest.raises(InputError, match=message):
        compare_runs.main([str(r) for r in runs] + argv)


def test_a_run_given_twice_is_an_input_error(runs):
    with pytest.raises(InputError, match="given twice"):
        compare_runs.main([str(runs[0]), str(runs[0])])


# --- as programs: exit status, one-line errors, no TensorFlow ---------------------------------


@pytest.mark.parametrize("script", ["attention_visualize.py", "tsne_plot.py", "compare_runs.py"])
def test_incomplete_run_exits_2_with_one_line(tmp_path, script):
    run_dir = make_fake_run(tmp_path, incomplete=True, manifest=False, **SMALL)
    result = subprocess.run([sys.executable, script, str(run_dir)], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is incomplete" in result.stderr


def test_scripts_do_not_import_tensorflow(run_dir, runs, tmp_path):
    code = f"""
import sys
import attention_visualize, compare_runs, tsne_plot
attention_visualize.main([{str(run_dir)!r}, "--out-dir", {str(tmp_path)!r}])
tsne_plot.main([{str(run_dir)!r}, "--split", "test", "--out-dir", {str(tmp_path)!r}])
compare_runs.main([{str(runs[0])!r}, {str(runs[2])!r}])
loaded = [name for name in ("tensorflow", "keras", "torch") if name in sys.modules]
assert not loaded, loaded
"""
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
