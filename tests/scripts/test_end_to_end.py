"""The whole job on a tiny demo corpus: wavs -> openSMILE -> training -> figures -> prediction."""

import csv
import json

import pytest

import attention_visualize
import extract_features
import make_demo_corpus
import predict
import train_attention_lstm
import tsne_plot
from serattn.features.feature_set import load_feature_set
from serattn.errors import InputError


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    corpus, features, run = root / "demo", root / "demo" / "features.npz", root / "run"
    assert make_demo_corpus.main(["--out", str(corpus), "--utterances", "60", "--speakers", "6",
                                  "--max-duration", "1.5"]) in (0, None)
    assert extract_features.main(["--manifest", str(corpus / "manifest.csv"), "--out", str(features),
                                  "--jobs", "1", "--quiet"]) in (0, None)
    assert train_attention_lstm.main(["--data", str(features), "--out", str(run), "--units", "8",
                                      "--attention-units", "4", "--epochs", "2", "--quiet"]) == 0
    return corpus, features, run


def test_features_are_is09_frames(demo_run):
    _, features, _ = demo_run
    feature_set = load_feature_set(features)
    assert len(feature_set) == 60 and feature_set.dim == 32
    assert feature_set.meta["feature_set"] == "is09" and feature_set.meta["frame_rate"] == 100
    assert set(feature_set.split) == {"train", "test"}


def test_figures_come_from_the_run_folder(demo_run):
    _, _, run = demo_run
    assert attention_visualize.main([str(run)]) in (0, None)
    assert tsne_plot.main([str(run), "--perplexity", "5"]) in (0, None)
    figures = run / "figures"
    for name in ("attention_slots.png", "attention_slots.csv", "attention_cue.json", "tsne.png", "tsne.csv"):
        assert (figures / name).is_file(), name
    cue = json.loads((figures / "attention_cue.json").read_text())
    assert cue  # the demo manifest knows where the cue is, so the report exists


def test_predict_matches_the_run_predictions(demo_run, tmp_path, capsys):
    corpus, _, run = demo_run
    rows = list(csv.DictReader(open(run / "predictions.csv")))
    tested = [r for r in rows if r["split"] == "test"][:3]
    wavs = [str(corpus / r["id"]) for r in tested]
    assert predict.main([str(run), *wavs, "--csv", str(tmp_path / "p.csv"),
                         "--attention-plot", str(tmp_path / "plots")]) == 0
    predicted = list(csv.DictReader(open(tmp_path / "p.csv")))
    for row, saved in zip(predicted, tested):
        assert row["predicted"] == saved["predicted"]
        for c in "AENPR":
            assert float(row[f"p_{c}"]) == pytest.approx(float(saved[f"p_{c}"]), abs=1e-3)
    assert len(list((tmp_path / "plots").glob("*.png"))) == 3


def test_predict_refuses_a_run_on_foreign_features(feature_file, tmp_path):
    run = tmp_path / "synthetic"
    train_attention_lstm.main(["--data", str(feature_file), "--out", str(run), "--units", "4",
                               "--attention-units", "2", "--epochs", "1", "--quiet"])
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(InputError, match="trained on features 'synthetic'"):
        predict.main([str(run), str(tmp_path / "a.wav")])


def test_metrics_carry_the_attention_diagnostics_and_the_cue_ratio(demo_run):
    _, _, run = demo_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["attention_effective_width"] <= 1 and 0 < metrics["attention_top10_mass"] <= 1
    cue = json.loads((run / "figures" / "attention_cue.json").read_text()) if (run / "figures").exists() else None
    assert metrics["attention_cue_ratio"] > 0  # the demo manifest knows each cue
    if cue:  # the figure script's test-split ratio is the same number
        assert metrics["attention_cue_ratio"] == pytest.approx(
            cue["splits"]["test"]["all"]["mean_mass_in_cue"] / cue["splits"]["test"]["all"]["mean_cue_share"],
            rel=1e-3)
