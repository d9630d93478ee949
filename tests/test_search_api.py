"""evonet.search: the Python API over a user's own Keras model family, end to end on the
embedded digits (tiny settings), its input checks, its run directory (evonet report,
evonet resume), and a build function that fails for some genomes mid-run."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import evonet
from evonet.errors import ConfigError

TINY = dict(epochs=2, population=4, generations=1, progress="none", tensorboard=False)


def build_model(hp):
    import keras

    model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten()])
    for i in range(hp.Int("layers", 1, 3)):
        model.add(keras.layers.Dense(hp.Int(f"units_{i}", 16, 256, log=True),
                                     activation=hp.Choice("activation", ["relu", "elu", "tanh"])))
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(hp.Float("rate", 0.1, 0.5)))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-2, log=True)),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def digits():
    from evonet.data import load_digits

    images, target = load_digits()
    x = images.astype(np.float32) / 16.0
    order = np.random.default_rng(0).permutation(len(x))
    tr, va = order[:1300], order[1300:]
    return x[tr], target[tr], x[va], target[va]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits):
    x, y, xv, yv = digits
    base = tmp_path_factory.mktemp("api")
    a = evonet.search(build_model, x, y, validation_data=(xv, yv), seed=0, out=base / "a", stream=io.StringIO(),
                      **TINY)
    b = evonet.search(build_model, x, y, validation_data=(xv, yv), seed=0, out=base / "b", stream=io.StringIO(),
                      **TINY)
    return a, b


def test_the_api_example_end_to_end(runs, digits):
    from evonet.hp import discover

    r, _ = runs
    x, y, xv, yv = digits
    discovered = [g.name for g in discover(build_model).genes]
    best = r.best_hyperparameters
    assert set(best) <= set(discovered)
    # exactly the active ones: the per-layer widths of its layers, the rate only with dropout
    assert {f"units_{i}" for i in range(best["layers"])} == {k for k in best if k.startswith("units_")}
    assert ("rate" in best) == best["dropout"]
    assert all(type(v) in (int, float, str, bool) for v in best.values())
    import keras

    model = r.best_model
    assert isinstance(model, keras.Model) and model.compiled
    acc = float(np.mean(np.argmax(model.predict(xv, verbose=0), axis=-1) == yv))
    assert acc > 0.3  # chance is 0.1
    for name in ("logbook.jsonl", "summary.json", "best/model.keras", "best/hyperparameters.json", "problem.pkl",
                 "checkpoints/latest"):
        assert (r.run_dir / name).exists(), name
    assert json.loads((r.run_dir / "best" / "hyperparameters.json").read_text()) == best
    assert [rec["gen"] for rec in r.logbook] == [0, 1] and r.best_fitness == r.summary["final_fitness"]
    assert r.summary["best"]["trainings"] >= 4 and "SearchResult(best_fitness=" in repr(r)
    # the saved model loads back (lazily) as the same network
    again = evonet.search_api.SearchResult.from_run_dir(r.run_dir)
    np.testing.assert_allclose(again.best_model.predict(xv[:5], verbose=0), model.predict(xv[:5], verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_same_seed_same_search(runs):
    a, b = runs
    assert a.best_hyperparameters == b.best_hyperparameters
    assert [(r["best"], r["mean"], r["cache_hits"]) for r in a.logbook] == \
        [(r["best"], r["mean"], r["cache_hits"]) for r in b.logbook]


def test_report_and_resume_work_on_an_api_run(runs, tmp_path):
    import shutil

    from evonet.cli import main
    from evonet.runner import resume_experiment

    run_dir = tmp_path / "a"
    shutil.copytree(runs[0].run_dir, run_dir)
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report" / "report.md").is_file()
    path, result = resume_experiment(run_dir, ["ga.generations=2"], stream=io.StringIO())
    log = [json.loads(line) for line in (path / "logbook.jsonl").read_text().splitlines()]
    assert [r["gen"] for r in log] == [0, 1, 2]
    resumed = evonet.search_api.SearchResult.from_run_dir(path)
    assert resumed.summary["best"]["trainings"] >= runs[0].summary["best"]["trainings"]
    assert (path / "best" / "model.keras").is_file() and "ga.generations: 1 -> 2" in (path / "run.log").read_text()


def test_a_build_function_failing_for_some_genomes_mid_run_is_recorded_and_the_run_goes_on_with_cv(tmp_path, digits):
    x, y, xv, yv = digits

    def sometimes_broken(hp):
        model = build_model(hp)
        if hp.get("layers") >= 2:
            raise RuntimeError("two layers are not supported")
        return model

    r = evonet.search(sometimes_broken, x, y, validation_data=(xv, yv), seed=1, out=tmp_path / "r",
                      stream=io.StringIO(), final_folds=2, hall_of_fame=2, **{**TINY, "epochs": 1, "generations": 0})
    failures = [json.loads(line) for line in (r.run_dir / "failures.jsonl").read_text().splitlines()]
    assert failures and all("build_model raised RuntimeError: two layers are not supported" in f["error"]
                            for f in failures)
    assert r.best_hyperparameters["layers"] == 1 and r.best_model is not None
    cv = r.summary["best"]["cross_validation"]  # k-fold CV of the hall of fame works on user models
    assert cv["folds"] == 2 and cv["examples"] == len(y) + len(yv) and r.best_fitness == cv["accuracy"]


def test_ensemble_of_a_users_models_is_the_best_model(tmp_path, digits):
    x, y, xv, yv = digits
    r = evonet.search(build_model, x, y, validation_data=(xv, yv), seed=3, out=tmp_path / "r", stream=io.StringIO(),
                      ensemble=2, hall_of_fame=2, **{**TINY, "epochs": 1, "generations": 0})
    ens = r.summary["best"]["ensemble"]
    assert ens["size"] == 2 and ens["members"][0]["hash"] == r.summary["best"]["hash"]
    model = r.best_model
    members = [model.get_layer(f"member_{k}").predict(xv, verbose=0) for k in range(2)]
    np.testing.assert_allclose(model.predict(xv, verbose=0), (members[0] + members[1]) / 2, rtol=1e-5, atol=1e-6)
    assert model.compiled


def test_max_seconds_counts_from_the_call_and_include_final_keeps_the_cross_validation_inside(tmp_path, digits):
    import yaml

    x, y, xv, yv = digits
    r = evonet.search(build_model, x[:400], y[:400], validation_data=(xv, yv), seed=2, out=tmp_path / "r",
                      stream=io.StringIO(), algorithm="aging", fidelity={"min_budget": 1, "max_budget": 2},
                      final_folds=2, hall_of_fame=2, max_seconds=600, stop={"include_final": True},
                      **{**TINY, "generations": 1})
    saved = yaml.safe_load((r.run_dir / "config.yaml").read_text())["stop"]
    assert 0 < saved["max_seconds"] < 600 and saved["include_final"] is True  # probing and data came off it
    assert r.summary["stopped"]["rule"] == "generations"  # a large budget: the estimate did not stop it
    assert r.summary["best"]["cross_validation"]["folds"] == 2 and r.best_model is not None


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(y=np.zeros(5, dtype=int)), "x/y: x has 20 examples but y has 5"),
    (dict(y=np.eye(10)[np.arange(20) % 10]), "y must be one integer class label per example"),
    (dict(y=np.full(20, 0.5)), "y must hold integer class labels"),
    (dict(build_model=None), "build_model: expected a function"),
    (dict(validation_data=(np.zeros((3, 8, 8)),)), "validation_data: expected a pair"),
    (dict(population=1), "ga.population: must be >= 2, got 1"),
    (dict(executor="slurm"), "executor.kind: unknown value 'slurm'"),
    (dict(crossover_pb=0.3), "ga.crossover_pb: unknown key"),
    (dict(ensemble=3, hall_of_fame=2), "search.ensemble: 3 members are drawn from the hall of fame, which holds 2"),
])
def test_bad_arguments_are_one_line_config_errors_before_any_training(tmp_path, kwargs, fragment):
    args = dict(build_model=build_model, x=np.zeros((20, 8, 8), np.float32), y=np.arange(20) % 10)
    args.update({k: kwargs.pop(k) for k in list(kwargs) if k in args})
    with pytest.raises(ConfigError) as err:
        evonet.search(args.pop("build_model"), args.pop("x"), args.pop("y"), out=tmp_path / "r", **kwargs)
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()


def test_import_evonet_stays_light_and_exports_lazily(subprocess_env):
    import subprocess
    import sys

    code = ("import sys, evonet; assert 'tensorflow' not in sys.modules and 'evonet.search_api' not in sys.modules;"
            "assert callable(evonet.search) and evonet.HyperParameters and evonet.ConfigError;"
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env)
