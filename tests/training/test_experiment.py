"""Experiments as data: recipes, from_dict/to_dict, layers of presets, recipes and flags, search trials."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import train_attention_lstm
import train_static
from serattn import Experiment, run
from serattn.errors import InputError
from serattn.experiment import read_recipe
from serattn.features.feature_set import save_feature_set
from serattn.runs.folder import METRICS_FILE
from serattn.search import space as spaces
from serattn.search.study import SearchJob
from serattn.testing import make_feature_set

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    names = {path.stem for path in RECIPES}
    assert {"demo", "paper_tanh", "paper_relu", "emodb_2s_recommended", "emodb_2s_linear_svm_innercv"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.stem)
def test_every_recipe_loads_checks_and_round_trips(path):
    experiment = Experiment.from_dict(read_recipe(path))
    assert Experiment.from_dict(experiment.to_dict()) == experiment
    # through YAML and JSON text too, as a recipe or config is stored
    assert Experiment.from_dict(yaml.safe_load(yaml.safe_dump(experiment.to_dict()))) == experiment
    assert Experiment.from_dict(json.loads(json.dumps(experiment.to_dict()))) == experiment


def test_a_recipe_plus_a_flag_equals_the_flags():
    recipe = str(ROOT / "recipes" / "demo.yaml")
    with_recipe, _ = train_attention_lstm.parse_args(["--recipe", recipe, "--epochs", "3", "--activation", "relu"])
    with_flags, _ = train_attention_lstm.parse_args(["--data", "data/demo/features.npz", "--out", "results/demo",
                                                     "--epochs", "3", "--activation", "relu"])
    assert with_recipe == with_flags
    # a row of benchmarks/emodb_table.sh: one change against the recipe, one seed of its three
    recipe = str(ROOT / "recipes" / "emodb_2s_att_tanh_fixed30.yaml")
    row = ["--norm", "global", "--seed", "2", "--out", "results/emodb/att-tanh-globalnorm-fixed30-seed2"]
    with_recipe, _ = train_attention_lstm.parse_args(["--recipe", recipe, *row])
    with_flags, _ = train_attention_lstm.parse_args(
        ["--data", "data/emodb_2s.npz", "--cv", "loso", "--norm", "speaker", "--val-speakers", "0", "--epochs", "30",
         "--quiet", "--activation", "tanh", *row])
    assert with_recipe == with_flags and with_recipe.seeds == (2,)


def test_a_static_recipe_plus_a_flag_equals_the_flags():
    recipe = str(ROOT / "recipes" / "emodb_2s_mlp.yaml")
    with_recipe = train_static.parse_args(["--recipe", recipe, "--hidden", "64,32", "--jobs", "2"])
    with_flags = train_static.parse_args(["--data", "data/emodb_2s_func.npz", "--cv", "loso", "--model", "mlp",
                                          "--seed", "1", "--out", "results/emodb/mlp-seed1", "--quiet",
                                          "--hidden", "64,32", "--jobs", "2"])
    assert with_recipe == with_flags
    assert with_recipe.model.hidden == (64, 32) and with_recipe.model.max_iter == 300
    assert with_recipe.output.grid_jobs == 1  # --jobs runs the folds side by side


def test_the_recommended_recipes_are_the_preset():
    recipe, _ = train_attention_lstm.parse_args(["--recipe", str(ROOT / "recipes" / "emodb_2s_recommended.yaml")])
    preset, _ = train_attention_lstm.parse_args(  # the preset's rows before --functionals-fit: joint
        ["--data", "data/emodb_2s.npz", "--cv", "loso", "--norm", "speaker", "--val-speakers", "0", "--epochs", "11",
         "--preset", "recommended", "--functionals-fit", "joint", "--seeds", "1,2,3", "--out",
         "results/emodb-variants/f-funcspk-wd1-e11", "--quiet"])
    assert recipe == preset and recipe.model.functionals_norm == "speaker"
    recipe, _ = train_attention_lstm.parse_args(["--recipe", str(ROOT / "recipes" /
                                                                 "emodb_2s_recommended_auto.yaml")])
    preset, _ = train_attention_lstm.parse_args(
        ["--data", "data/emodb_2s.npz", "--cv", "loso", "--norm", "speaker", "--epochs", "auto", "--preset",
         "recommended", "--seeds", "1,2,3", "--seed-ensemble", "--out", "results/emodb-auto/rec-auto", "--quiet"])
    assert recipe == preset and recipe.model.functionals_fit == "logreg"


def trial_experiment(trainer, base_argv, space_text, values, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(space_text)
    space = spaces.load_space(path)
    script = train_attention_lstm if trainer == "attention-lstm" else train_static
    base, _ = script.experiment_spec(base_argv)
    job = SearchJob(base=base, space=space, data=None, classes=[], data_files={}, inner_cv=("kfold-speakers", 3),
                    storage="", study="s", trials=1, timeout=None, folder=tmp_path, seed=1)
    return job.experiment(values, tmp_path / "trial", ("kfold-speakers", 3))


def as_trial(experiment, out):
    """What a search does to a command's experiment: its own folds, folder and quiet output."""
    data = dataclasses.replace(experiment.data, cv=("kfold-speakers", 3), stratify_speakers_by=None, repeats=1)
    output = dataclasses.replace(experiment.output, out=str(out), quiet=True, overwrite=True, resume=None, jobs=1)
    return dataclasses.replace(experiment, data=data, output=output, seeds=(experiment.seed,))


def test_a_search_trial_is_the_experiment_of_its_command_line(tmp_path):
    base = ["--data", "x.npz", "--preset", "recommended", "--norm", "speaker", "--epochs", "4"]
    space = ("trainer: attention-lstm\nparams:\n  learning-rate: {low: 0.001, high: 0.1, log: true}\n"
             "  pooling: {choices: [attention, attention+functionals]}\n  pool-inputs: {choices: [true, false]}\n")
    values = {"learning_rate": 0.02, "pooling": "attention", "pool_inputs": True}
    trial = trial_experiment("attention-lstm", base, space, values, tmp_path)
    command, _ = train_attention_lstm.parse_args(base + ["--learning-rate", "0.02", "--pooling", "attention",
                                                         "--pool-inputs"])
    assert trial == as_trial(command, tmp_path / "trial")
    # functionals_norm auto was resolved for the trial's pooling, not the command's
    assert trial.model.functionals_norm == "batch"


def test_a_static_search_trial_is_the_experiment_of_its_command_line(tmp_path):
    base = ["--data", "x.npz", "--model", "rbf-svm", "--grid", "C=1,10;gamma=scale"]
    space = "trainer: static\nparams:\n  grid.C: {low: 1, high: 100, log: true}\n  norm: {choices: [global, speaker]}\n"
    trial = trial_experiment("static", base, space, {"grid.C": 3, "norm": "speaker"}, tmp_path)
    command = train_static.parse_args(base + ["--grid", "C=3", "--norm", "speaker"])
    assert trial == as_trial(command, tmp_path / "trial")
    assert trial.model.grid == {"C": [3.0]}


@pytest.mark.parametrize("spec, message", [
    ({"model": {"lerning_rate": 0.1}}, "'lerning_rate' is not a setting of 'model'"),
    ({"model": {"learning_rate": 0.1}}, "it belongs in 'training'"),
    ({"training": {"learning_rate": "fast"}}, r"training.learning_rate: expected float, got 'fast'"),
    ({"training": {"epochs": 2.5}}, "training.epochs: expected int, got 2.5"),
    ({"trainer": "lstm"}, "unknown trainer 'lstm'"),
    ({"data": {"data": "x.npz", "val_speakers": 1.5}}, "--val-speakers: expected a fraction"),
    ({"data": {"data": "x.npz"}, "model": {"model": "mlp"}, "trainer": "static", "training": {"inner_folds": 1}},
     "--inner-folds must be at least 2"),
    ({"data": {"data": "x.npz"}, "trainer": "static", "model": {"grid": {"gamma": [1.0]}}},
     "'gamma' is not tunable for linear-svm"),
    ({"data": {"data": "x.npz"}, "output": {"jobs": 2}, "training": {"strategy": "mirrored"}},
     "use one or the other"),
    ({"seeds": [1], "extra": 1}, "unknown key 'extra'"),
])
def test_bad_experiments_are_refused_before_any_data_is_read(spec, message):
    with pytest.raises(InputError, match=message):
        Experiment.from_dict(spec)


def test_yaml_numbers_and_flag_forms_are_typed():
    experiment = Experiment.from_dict({"data": {"data": "x.npz", "cv": "kfold-speakers 5", "val_speakers": 0.25},
                                       "training": {"learning_rate": "1e-3", "epochs": 3.0}, "seeds": "1,2"})
    assert experiment.data.cv == ("kfold-speakers", 5) and experiment.data.val_speakers == "0.25"
    assert experiment.training.learning_rate == 0.001 and experiment.training.epochs == 3
    assert experiment.seeds == (1, 2)


def test_recipe_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {data: x.npz}\nmodel: {units: [}\n")
    with pytest.raises(InputError, match="recipe '.*bad.yaml' is not valid YAML"):
        train_attention_lstm.parse_args(["--recipe", str(path)])
    path.write_text("data: {dta: x.npz}\n")
    with pytest.raises(InputError, match="recipe '.*bad.yaml': 'dta' is not a setting of 'data'"):
        train_attention_lstm.parse_args(["--recipe", str(path)])


def test_import_serattn_stays_light():
    code = "import sys, serattn; print('tensorflow' in sys.modules, 'sklearn' in sys.modules, callable(serattn.run))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False", "True"]


def test_the_library_runs_an_experiment(tmp_path):
    path = tmp_path / "functionals.npz"
    save_feature_set(make_feature_set(n=60, dim=6, classes=("A", "N"), speakers=4, min_length=1, max_length=1,
                                      signal=3.0, seed=2), path)
    experiment = Experiment.from_dict({"trainer": "static", "data": {"data": str(path), "cv": "loso"},
                                       "model": {"model": "logreg", "grid": {"C": [1.0]}},
                                       "seeds": [1, 2], "output": {"out": str(tmp_path / "run"), "quiet": True}})
    reported = []
    folders = run(experiment, report=lambda metrics, title: reported.append(metrics["ua"]))
    assert [f.path.name for f in folders] == ["run-seed1", "run-seed2"]
    for folder, ua in zip(folders, reported):
        assert json.loads((folder.path / METRICS_FILE).read_text())["ua"] == ua
        assert (folder.path / "fold-03" / METRICS_FILE).exists()
