"""benchmarks/attention_sharpening.py: a saved evidence-attention run predicted again with its attention sharpened."""

import json
import re

import pytest

import train_attention_lstm
from benchmarks import attention_sharpening
from serattn.errors import InputError


@pytest.fixture(scope="module")
def evidence_run(demo_corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("sharpening") / "evidence"
    assert train_attention_lstm.main(["--data", str(demo_corpus["features"]), "--out", str(run), "--units", "6",
                                      "--attention-units", "3", "--pooling", "evidence-attention",
                                      "--recurrent-dropout", "0", "--epochs", "2", "--val-speakers", "1",
                                      "--quiet"]) == 0
    return run


def scores_printed(out, factor):
    line = next(line for line in out.splitlines() if f" x{factor}: " in line)
    return {split: (float(ua), float(ratio)) for split, ua, ratio in
            re.findall(r"(val|test) UA ([\d.]+) cue ratio ([\d.]+)", line)}


def test_factor_one_gives_the_runs_own_numbers_back_and_sharper_attention_is_scored(evidence_run, capsys):
    assert attention_sharpening.main([str(evidence_run), "--factors", "1,1000"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((evidence_run / "metrics.json").read_text())
    own = scores_printed(out, "1")
    assert own["test"] == (pytest.approx(round(100 * metrics["ua"], 1)),
                           pytest.approx(round(metrics["attention_cue_ratio"], 2)))
    assert own["val"][0] == pytest.approx(round(100 * metrics["val_ua"], 1))
    sharp = scores_printed(out, "1000")
    assert set(sharp) == {"val", "test"}
    assert "| 1000 |" in out  # the table of means over the runs
    # The saved model is left as it was.
    assert attention_sharpening.main([str(evidence_run), "--factors", "1"]) == 0
    assert scores_printed(capsys.readouterr().out, "1") == own


def test_a_run_without_a_learned_sharpness_is_refused(demo_run):
    with pytest.raises(InputError, match="no learned attention sharpness"):
        attention_sharpening.main([str(demo_run)])
