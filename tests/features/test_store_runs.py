"""Every script that reads a feature file gives, from its sharded store, the files it gives from the .npz
(issue 27: "every existing test passes on the store as well as on .npz"). Each test runs the script on
both and compares what it wrote; the stores come from conftest's ``store_of``."""

import csv
import json
import re

import pytest

import compare_runs
import export_model
import predict
import report
import search
import train_attention_lstm
from serattn.features.feature_set import load_feature_set, save_feature_set
from serattn.testing import make_feature_set

TINY = ["--units", "8", "--attention-units", "4", "--epochs", "2", "--batch-size", "16", "--quiet"]


def outputs(run):
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("seconds", None)  # wall time
    return metrics, (run / "predictions.csv").read_text()


def both(tmp_path, store_of, npz, run):
    """``run(data, out)`` on ``npz`` and on its store; the two output folders."""
    outs = tmp_path / "npz", tmp_path / "store"
    for data, out in zip((npz, store_of(npz)), outs):
        assert run(str(data), out) == 0
    return outs


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    """40 utterances of 3 speakers with a train/test split."""
    path = tmp_path_factory.mktemp("small") / "small.npz"
    save_feature_set(make_feature_set(n=40, speakers=3, signal=3.0, seed=4), path)
    return path


def test_train_and_test_files(small_file, store_of, tmp_path):
    full = load_feature_set(small_file)
    files = []
    for part in ("train", "test"):
        files.append(tmp_path / f"{part}.npz")
        save_feature_set(full.subset(full.split == part), files[-1])
    stores = [store_of(path) for path in files]
    for name, (train, test) in (("npz", files), ("store", stores)):
        assert train_attention_lstm.main(["--train", str(train), "--test", str(test), "--out", str(tmp_path / name),
                                          *TINY]) == 0
    assert outputs(tmp_path / "npz") == outputs(tmp_path / "store")


def test_loso_cross_validation_in_two_processes(small_file, store_of, tmp_path):
    """The store's run uses --jobs 2 (its workers unpickle lazy frames), the .npz's one process; a static
    model, so that the workers start without TensorFlow."""
    import train_static

    for name, data, jobs in (("npz", small_file, "1"), ("store", store_of(small_file), "2")):
        assert train_static.main(["--data", str(data), "--pool", "mean", "--cv", "loso", "--model", "logreg",
                                  "--norm", "speaker", "--jobs", jobs, "--out", str(tmp_path / name), "--quiet"]) == 0
    npz, store = outputs(tmp_path / "npz"), outputs(tmp_path / "store")
    assert len(npz[0]["folds"]) == 3 and npz == store


def test_search_trials(store_of, tmp_path):
    from tests.search.test_search import STATIC, STATIC_SPACE, functionals

    save_feature_set(functionals(), tmp_path / "functionals.npz")
    outs = both(tmp_path, store_of, tmp_path / "functionals.npz", lambda data, out: search.main(
        ["--space", str(STATIC_SPACE), "--data", data, *STATIC, "--trials", "2", "--out", str(out)]))
    rows = []
    for out in outs:
        with open(out / "search" / "trials.csv", newline="") as handle:
            rows.append([{k: v for k, v in row.items() if k in ("state", "ua", "wa")} for row in csv.DictReader(handle)])
    assert len(rows[0]) == 2 and rows[0] == rows[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, store_of, demo_corpus, demo_run):
    """IS09 features of a tiny demo corpus, and a 1-epoch run on them from the .npz (the session's, see
    tests/conftest.py) and one from the store, with the same flags."""
    features = demo_corpus["features"]
    store_run = tmp_path_factory.mktemp("demo-store") / demo_run.name  # one name: the tables below name their run
    assert train_attention_lstm.main(["--data", str(store_of(features)), "--out", str(store_run), *TINY[:4],
                                      "--epochs", "1", "--quiet"]) == 0
    return {"features": features, "runs": {"npz": demo_run, "store": store_run}, "wavs": demo_corpus["wavs"][:4]}


def test_runs_on_a_store_predict_and_compare_as_runs_on_its_npz(demo, tmp_path):
    runs = demo["runs"]
    assert outputs(runs["npz"]) == outputs(runs["store"])
    for name, run in runs.items():  # predict.py (the Recognizer) on audio, with the run's normalization
        assert predict.main([str(run), *map(str, demo["wavs"]), "--csv", str(tmp_path / f"{name}.csv")]) == 0
    assert (tmp_path / "npz.csv").read_text() == (tmp_path / "store.csv").read_text()
    for name, run in runs.items():
        assert compare_runs.main([str(run), "--csv", "--out", str(tmp_path / f"{name}.table")]) == 0
    tables = [(tmp_path / f"{name}.table").read_text().replace(runs[name].name, "RUN") for name in runs]
    assert tables[0] == tables[1]


@pytest.fixture
def frames_read_whole_fail(monkeypatch):
    """Reading a store's frames whole (np.asarray of them) fails: a script must read them utterance by utterance."""
    from serattn.features.store import ShardedFrames

    def refuse(*args, **kwargs):
        raise AssertionError("a store's frames were read whole")
    monkeypatch.setattr(ShardedFrames, "__array__", refuse)


def test_export_checks_against_a_store(demo, store_of, tmp_path, frames_read_whole_fail):
    run = demo["runs"]["npz"]
    for name, data in (("npz", demo["features"]), ("store", store_of(demo["features"]))):
        assert export_model.main([str(run), "--format", "savedmodel", "--out", str(tmp_path / name), "--check",
                                  str(data)]) == 0
    cards = [json.loads((tmp_path / name / "model_card.json").read_text())["parity"] for name in ("npz", "store")]
    assert cards[0]["utterances"] > 0 and cards[0] == cards[1]


def test_report_describes_a_store_as_its_npz(demo, store_of, tmp_path, frames_read_whole_fail):
    pages = []
    for name, data in (("npz", demo["features"]), ("store", store_of(demo["features"]))):
        assert report.main(["--data", str(data), "--out", str(tmp_path / f"{name}.html"), "--resamples", "200"]) == 0
        page = (tmp_path / f"{name}.html").read_text().replace(str(data), "DATA").replace(data.name, "DATA")
        pages.append(re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?", "TIME", page))
    assert len(pages[0]) > 1000 and pages[0] == pages[1]
