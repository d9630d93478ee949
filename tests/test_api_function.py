"""evonet.evolve over a fitness function, and the strategies alone as ask / tell."""

import json
import math

import numpy as np
import pytest

import evonet
from evonet.runner import resume_experiment


def rastrigin(genomes, seeds):
    return -(10 * genomes.shape[1] + (genomes**2 - 10 * np.cos(2 * np.pi * genomes)).sum(axis=1))


def sphere(genomes, seeds):
    return -(genomes.astype(np.float64) ** 2).sum(axis=1)


def run(tmp_path, name="r", *args, **kw):
    kw.setdefault("progress", "none")
    kw.setdefault("tensorboard", False)
    return evonet.evolve(*args, out=tmp_path / name, **kw)


def test_cma_es_on_sphere_converges_and_writes_a_run_dir(tmp_path):
    r = run(tmp_path, n_genes=8, fitness=sphere, generations=60, seed=0)
    assert r.best_genome.shape == (8,) and r.best_genome.dtype == np.float32
    assert r.best_fitness > -1e-3  # the optimum is 0 at the origin; start around -8 * 1/3
    assert r.logbook[-1]["gen"] == 60 and r.logbook[-1]["best"] > r.logbook[0]["best"]
    for name in ("config.yaml", "logbook.jsonl", "summary.json", "problem.pkl", "best/genome.npz"):
        assert (r.run_dir / name).is_file(), name
    assert json.loads((r.run_dir / "problem.json").read_text())["genome"] == "function"
    assert r.summary["final_fitness"] == pytest.approx(r.best_fitness)


def test_same_seed_same_run_any_chunking(tmp_path):
    a = run(tmp_path, "a", n_genes=5, fitness=rastrigin, generations=15, seed=3)
    b = run(tmp_path, "b", n_genes=5, fitness=rastrigin, generations=15, seed=3, chunk=1)
    c = run(tmp_path, "c", n_genes=5, fitness=rastrigin, generations=15, seed=4)
    assert [g["best"] for g in a.logbook] == [g["best"] for g in b.logbook]
    np.testing.assert_array_equal(a.best_genome, b.best_genome)
    assert [g["best"] for g in a.logbook] != [g["best"] for g in c.logbook]


def test_ga_and_per_genome_functions(tmp_path):
    calls = []

    def one(genome, seed):
        calls.append(seed)
        return -float(np.sum(genome**2))

    r = run(tmp_path, n_genes=3, fitness=one, batched=False, algorithm="mu_plus_lambda", population=12,
            generations=5, seed=1)
    assert r.best_fitness <= 0 and len(set(calls)) > 12  # every call had its own seed
    assert all(s >= 2**63 for s in calls)  # training seeds never collide with evaluation seeds


def test_noisy_fitness_sees_per_genome_seeds_independent_of_workers(tmp_path):
    def noisy(genomes, seeds):
        noise = np.array([np.random.default_rng(int(s)).normal() for s in seeds])
        return sphere(genomes, seeds) + 0.01 * noise

    a = run(tmp_path, "a", n_genes=4, fitness=noisy, noisy=True, generations=4, seed=0, chunk=3)
    b = run(tmp_path, "b", n_genes=4, fitness=noisy, noisy=True, generations=4, seed=0)
    assert [g["mean"] for g in a.logbook] == [g["mean"] for g in b.logbook]
    assert a.summary["final_games"] > 1  # a noisy function picks its final best over fresh seeds


def test_evolving_the_weights_of_a_keras_model(tmp_path):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    target = x.sum(axis=1)

    def fit(genomes, seeds):  # genomes are the flat weights of the model: regress sum(x)
        from evonet.genomes.weights import from_keras
        from evonet.nn import forward, unflatten

        spec, _ = from_keras(model)
        out = forward(spec, unflatten(spec, genomes), np.broadcast_to(x, (len(genomes),) + x.shape))
        return -((out[..., 0] - target) ** 2).mean(axis=1)

    r = run(tmp_path, "r", model, fitness=fit, generations=40, seed=0)
    assert r.best_genome.size == model.count_params()
    pred = r.best_model.predict(x, verbose=0)[:, 0]
    assert np.mean((pred - target) ** 2) == pytest.approx(-r.best_fitness, rel=1e-3)
    assert np.mean((pred - target) ** 2) < np.var(target) / 4


@pytest.mark.parametrize("bad, message", [
    (lambda g, s: np.zeros(len(g) + 1), "shape (3,) for 2 genomes"),
    (lambda g, s: "high", "returned str"),
    (lambda g, s: [[1, 2], [3]], "expected an array"),
    (lambda g, s: 1 / 0, "ZeroDivisionError"),
])
def test_bad_fitness_functions_fail_before_any_work(tmp_path, bad, message):
    with pytest.raises(evonet.ConfigError) as err:
        run(tmp_path, n_genes=3, fitness=bad, generations=2)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()


def test_nan_mid_run_is_a_recorded_failure_and_the_run_goes_on(tmp_path):
    def sometimes_nan(genomes, seeds):
        out = sphere(genomes, seeds)
        out[genomes[:, 0] > 0.3] = np.nan
        return out

    r = run(tmp_path, n_genes=3, fitness=sometimes_nan, generations=4, seed=0)
    failures = [json.loads(line) for line in (r.run_dir / "failures.jsonl").read_text().splitlines()]
    assert failures and all("not a finite number" in f["error"] for f in failures)
    assert np.isfinite(r.best_fitness) and r.logbook[-1]["gen"] == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"n_genes": 3}, "exactly one of env= "),
    ({"fitness": sphere}, "give n_genes"),
    ({"fitness": sphere, "n_genes": 0}, "n_genes: expected an integer >= 1"),
    ({"fitness": 3, "n_genes": 2}, "fitness: expected a function"),
    ({"fitness": sphere, "n_genes": 2, "algorithm": "cmaes"}, "algorithm: unknown value 'cmaes'"),
    ({"fitness": sphere, "n_genes": 2, "population": 1}, "ga.population: must be >= 2"),
    ({"fitness": sphere, "n_genes": 2, "executor": "dask"}, "executor: unknown value 'dask'"),
])
def test_bad_arguments_are_one_line_config_errors(tmp_path, kwargs, message):
    with pytest.raises(evonet.ConfigError) as err:
        run(tmp_path, generations=1, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_api_run_resumes_from_its_run_dir(tmp_path):
    full = run(tmp_path, "full", n_genes=4, fitness=rastrigin, generations=8, seed=2)
    part = run(tmp_path, "part", n_genes=4, fitness=rastrigin, generations=4, seed=2)
    run_dir, result = resume_experiment(part.run_dir, ["ga.generations=8"], stream=open("/dev/null", "w"))
    assert [g["best"] for g in result.logbook] == [g["best"] for g in full.logbook]
    np.testing.assert_array_equal(result.best_genome, full.best_genome)


def test_config_experiment_imports_its_fitness_function(tmp_path, monkeypatch):
    (tmp_path / "myfit.py").write_text("import numpy as np\n"
                                       "def neg_sphere(g, s):\n    return -(g.astype(float) ** 2).sum(axis=1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from evonet import config
    from evonet.runner import run_experiment

    cfg = config.from_dict({"name": "f", "genome": "function", "function": {"fitness": "myfit:neg_sphere",
                            "n_genes": 3}, "ga": {"algorithm": "cma_es", "population": 8, "generations": 10,
                            "final_games": 1}, "log": {"progress": "none", "tensorboard": False},
                            "eval_games": 0})
    run_dir, result = run_experiment(cfg, tmp_path / "run", stream=open("/dev/null", "w"))
    assert result.best_fitness > -1.0
    bad = config.from_dict({"genome": "function", "function": {"fitness": "myfit:nope", "n_genes": 3}})
    with pytest.raises(evonet.ConfigError, match="has no 'nope'"):
        run_experiment(bad, tmp_path / "bad")


# ---------------------------------------------------------------------- ask / tell alone


def test_the_issue_example_of_cma_es_alone():
    es = evonet.strategies.CMAES(n_genes=30, population=32, seed=0)
    genomes = es.ask(); es.tell(genomes, rastrigin(genomes, None)); state = es.get_state()
    assert genomes.shape == (32, 30) and es.generation == 0
    assert state["generation"] == 0 and "es" in state


@pytest.mark.parametrize("make", [
    lambda: evonet.strategies.CMAES(n_genes=6, population=10, seed=5),
    lambda: evonet.strategies.GeneticAlgorithm(n_genes=6, population=10, seed=5),
])
def test_ask_tell_state_round_trip_continues_exactly(make):
    a = make()
    for _ in range(3):
        g = a.ask(); a.tell(g, rastrigin(g, None))
    state = json.loads(json.dumps(a.get_state(), default=lambda o: o.tolist()))  # JSON-safe after tolist
    b = make()
    b.set_state(state)
    for _ in range(3):
        ga, gb = a.ask(), b.ask()
        np.testing.assert_array_equal(ga, gb)
        a.tell(ga, rastrigin(ga, None)); b.tell(gb, rastrigin(gb, None))
    assert a.best_fitness == b.best_fitness


def test_ask_tell_misuse_is_refused():
    es = evonet.strategies.CMAES(n_genes=3, population=4, seed=0)
    with pytest.raises(RuntimeError):
        es.tell(np.zeros((4, 3)), np.zeros(4))
    g = es.ask()
    with pytest.raises(RuntimeError):
        es.ask()
    with pytest.raises(ValueError, match="3 fitness values for 4 genomes"):
        es.tell(g, np.zeros(3))
    with pytest.raises(ValueError, match="not those of the last ask"):
        es.tell(g + 1, np.zeros(4))
    es.tell(g, [0.0, np.nan, 1.0, 2.0])  # NaN: a failed evaluation, the worst fitness
    assert es.best_fitness == 2.0
    assert evonet.strategies.CMAES(n_genes=30).ask().shape[0] == 4 + math.floor(3 * math.log(30))
