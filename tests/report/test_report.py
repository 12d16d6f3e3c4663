"""report.py on fabricated run folders: one run, several runs, static, CV parent, corpus, refusals."""

import base64
import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

import compare_runs
import report
from tests.fake_runs import make_fake_run
from serattn.features.feature_set import save_feature_set
from serattn.runs.reading import open_run
from serattn.runs.folder import ATTENTION_FILE, HISTORY_FILE, METRICS_FILE
from serattn.testing import make_feature_set

SMALL = dict(counts={"train": 6, "val": 2, "test": 4}, min_frames=30, max_frames=160)
CLASSES = ("A", "E", "N", "P", "R")
FAST = ["--resamples", "200"]


def run_report(argv):
    """report.main; (status, html of --out)."""
    status = report.main([*argv, *FAST])
    out = Path(argv[argv.index("--out") + 1])
    return status, out.read_text(encoding="utf-8")


def one_line_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        from serattn.errors import run_main
        run_main(report.main, [*argv, *FAST])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs on the same test utterances (with audio), and one with other classes."""
    root = tmp_path_factory.mktemp("report-runs")
    first = make_fake_run(root, "tanh", seed=1, accuracy=0.7, audio=True, **SMALL)
    second = make_fake_run(root, "relu", activation="relu", seed=2, accuracy=0.3, audio=True, **SMALL)
    other = make_fake_run(root, "four", classes=CLASSES[:4], manifest=False, **SMALL)
    history = "epoch,loss,ua,val_loss,val_ua,val_wa,wa\n0,1.6,0.2,1.5,0.3,0.3,0.25\n1,1.4,0.3,1.45,0.35,0.3,0.3\n"
    (first / HISTORY_FILE).write_text(history)
    metrics = json.loads((first / METRICS_FILE).read_text())
    metrics.update(attention_effective_width=0.4213, attention_top10_mass=0.3, attention_cue_ratio=1.734)
    (first / METRICS_FILE).write_text(json.dumps(metrics))
    return first, second, other


@pytest.fixture(scope="module")
def single_page(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "tanh.html"
    status, page = run_report([str(runs[0]), "--out", str(out), "--gallery", "2"])
    assert status == 0
    return out, page


def sources(page, tag):
    return [html.unescape(s) for s in re.findall(rf'<{tag}[^>]* src="([^"]+)"', page)]


def test_one_run_page_is_self_contained(single_page):
    out, page = single_page
    # Nothing is fetched: every image and audio source is inline, no script or style is loaded from elsewhere.
    assert all(src.startswith("data:image/") for src in sources(page, "img"))
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page and "<script src" not in page


def test_one_run_page_has_intervals_curves_and_attention(single_page, runs):
    _, page = single_page
    metrics = json.loads((runs[0] / METRICS_FILE).read_text())
    # UA as the estimate with its interval, in percent.
    assert re.search(rf"{100 * metrics['ua']:.1f} \[\d+\.\d, \d+\.\d\]", page)
    assert "speaker-level (cluster) bootstrap" in " ".join(page.split())
    assert 'alt="learning curves"' in page and 'alt="confusion matrix"' in page
    assert 'alt="attention over time slots per class"' in page and 'alt="t-SNE map"' in page
    diagnostics = " ".join(re.sub(r"<[^>]+>", " ", page.split("diagnostic (test)")[1].split("</table>")[0]).split())
    assert "effective width (%) 42.1" in diagnostics and "cue ratio 1.73" in diagnostics
    assert "sha256 " + "0" * 63 + "1" in page  # the fake run's data hash
    assert "Cramér's V" in page


def test_gallery_embeds_the_wavs_and_lets_the_curve_seek(single_page, runs):
    _, page = single_page
    audio = sources(page, "audio")
    # Up to 2 right and 2 wrong per class.
    rows = [row for row in open_run(runs[0]).prediction_rows() if row["split"] == "test"]
    expected = sum(min(2, sum((r["true"] == c) and ((r["predicted"] == c) == right) for r in rows))
                   for c in CLASSES for right in (True, False))
    assert len(audio) == expected
    first_id = re.search(r'<div class="mono">([^<]+)</div>', page.split("Gallery of test utterances")[1]).group(1)
    wav = (runs[0].parent / "tanh_corpus" / first_id).read_bytes()
    assert base64.b64decode(audio[0].split(",", 1)[1]) == wav
    assert page.count('class="seekable"') == len(audio)
    for player in re.findall(r'data-audio="([^"]+)"', page):
        assert f'<audio id="{player}"' in page
    assert "audio.currentTime" in page


def test_audio_over_the_budget_is_linked_relative_to_the_page(runs, tmp_path):
    out = tmp_path / "sub" / "page.html"
    out.parent.mkdir()
    status, page = run_report([str(runs[0]), "--out", str(out), "--gallery", "1", "--max-audio-mb", "0"])
    assert status == 0
    links = sources(page, "audio")
    assert links and not any(link.startswith("data:") for link in links)
    assert all((out.parent / link).is_file() for link in links)


def test_without_manifest_the_gallery_says_why(runs, tmp_path):
    status, page = run_report([str(runs[2]), "--out", str(tmp_path / "p.html"), "--gallery", "1"])
    assert status == 0
    assert "names no manifest or corpus root" in page
    assert "<audio" not in page
    assert page.count('class="attention-curve"') == page.count('<div class="card') > 0


def test_several_runs_are_compared_with_paired_tests(runs, tmp_path):
    status, page = run_report([str(runs[0]), str(runs[1]), "--out", str(tmp_path / "c.html"), "--gallery", "0"])
    assert status == 0
    assert "Comparison on the same 20 test utterances" in page
    assert "exact" in page  # 4 speakers: all 16 swaps
    row = re.search(r"<tr><td>relu</td>.*?</tr>", page, re.S).group(0)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert re.fullmatch(r"-?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\]", cells[4])  # ΔUA with its interval
    assert float(cells[5]) >= 2 / 16 and float(cells[6]) >= float(cells[5])  # p, then Holm
    assert 'alt="confusion matrices side by side"' in page


def test_runs_on_other_classes_are_refused(runs, tmp_path, capsys):
    line = one_line_error([str(runs[0]), str(runs[2]), "--out", str(tmp_path / "x.html")], capsys)
    assert "cannot compare" in line and "classes A,E,N,P,R vs A,E,N,P" in line
    assert not (tmp_path / "x.html").exists()


def test_existing_page_is_not_replaced_silently(single_page, capsys):
    out, _ = single_page
    line = one_line_error([str(single_page[0].parent.parent / "x"), "--out", str(out)], capsys)
    assert "already exists" in line and "--overwrite" in line


def test_static_and_cross_validation_runs(tmp_path):
    static = make_fake_run(tmp_path, "svm", audio=True, config={"model": "linear-svm"}, **SMALL)
    (static / ATTENTION_FILE).unlink()
    (static / HISTORY_FILE).unlink()
    status, page = run_report([str(static), "--out", str(tmp_path / "s.html"), "--gallery", "1"])
    assert status == 0
    assert "static runs have no attention weights" in page and "static runs have no history.csv" in page
    # Without attention the gallery still plays each utterance over its spectrogram.
    assert "the figures show the audio only" in page
    assert page.count("<audio") == page.count('class="seekable"') > 0

    cv = make_fake_run(tmp_path, "cv", manifest=False, config={"cv": ["loso", None], "folds": ["fold-00", "fold-01"]},
                       **SMALL)
    metrics = json.loads((cv / METRICS_FILE).read_text())
    metrics.update(ua_fold_mean=0.5, ua_fold_std=0.1, folds=[
        {"fold": 0, "test_speakers": ["spk0", "spk1"], "ua": 0.4, "wa": 0.45, "n": 10},
        {"fold": 1, "test_speakers": ["spk2", "spk3"], "ua": 0.6, "wa": 0.55, "n": 10}])
    (cv / METRICS_FILE).write_text(json.dumps(metrics))
    status, page = run_report([str(cv), "--out", str(tmp_path / "cv.html"), "--gallery", "0"])
    assert status == 0
    assert "(cross-validation)" in page and "<td class=\"text\">spk2, spk3</td>" in page and "50.0 ± 10.0" in page


def test_corpus_page(tmp_path):
    data = tmp_path / "features.npz"
    save_feature_set(make_feature_set(n=60, speakers=6, seed=3), data)
    status, page = run_report(["--data", str(data), "--out", str(tmp_path / "corpus.html")])
    assert status == 0
    assert "Corpus features.npz" in page and "60 utterances" in page and "Cramér's V" in page
    assert "Duplicates</b> (identical feature frames): none" in page
    assert "bootstrap" not in page  # no runs, no intervals


def test_compare_runs_gains_interval_and_p_columns(runs, capsys):
    assert compare_runs.main([str(runs[0]), str(runs[1]), "--by", "activation", "--csv", *FAST]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[1].split(",")
    assert header[5:10] == ["UA 95% CI", "WA 95% CI", "ΔUA vs first", "p", "p (Holm)"]
    assert re.search(r',"\[\d+\.\d, \d+\.\d\]",', lines[2]) and ",first," in lines[2]
    assert re.search(r'"[+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\]",0\.\d+,0\.\d+', lines[3])


def test_trainers_warn_once_when_speaker_norm_meets_single_class_speakers(tmp_path, capsys):
    import dataclasses

    import train_static

    features = make_feature_set(n=90, dim=8, classes=("A", "B", "C"), speakers=6, min_length=1, max_length=1,
                                signal=3.0, seed=3)
    # Every "A" utterance of the training speakers by one speaker: that speaker covers a single class.
    speakers = np.where((features.labels == "A") & (features.split == "train"), "only-A", features.speakers)
    data = tmp_path / "functionals.npz"
    save_feature_set(dataclasses.replace(features, speakers=speakers), data)
    argv = ["--data", str(data), "--grid", "C=1", "--quiet", "--val-speakers", "0", "--cv", "kfold-speakers", "2"]
    assert train_static.main([*argv, "--norm", "speaker", "--out", str(tmp_path / "spk")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: --norm speaker")]
    assert len(warnings) == 1  # once per command, not per fold
    assert "1 of 7 speakers have a single class (only-A)" in warnings[0]
    assert train_static.main([*argv, "--norm", "global", "--out", str(tmp_path / "global")]) == 0
    assert "warning: --norm speaker" not in capsys.readouterr().err


def test_training_seconds_come_from_the_run_files_when_not_recorded(runs, tmp_path):
    import os

    from serattn.report.run import elapsed_seconds
    from serattn.runs.folder import NORMALIZATION_FILE

    run = open_run(runs[0])
    os.utime(runs[0] / NORMALIZATION_FILE, (1000.0, 1000.0))
    os.utime(runs[0] / METRICS_FILE, (1042.5, 1042.5))
    assert elapsed_seconds(run) == pytest.approx(42.5)
    os.utime(runs[0] / METRICS_FILE, (900.0, 900.0))  # a copy that lost the order: no guess
    assert elapsed_seconds(run) is None
