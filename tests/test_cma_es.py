"""CMA-ES (DEAP's deap.cma behind ask / tell): determinism, bounds, global RNG untouched."""

import numpy as np
import pytest

from evonet import config, seeding
from evonet.cma_es import CMAES, numpy_random
from evonet.executors import LocalExecutor
from evonet.loop import run_evolution
from evonet.problems import make_problem
from evonet.problems.base import EvalResult
from evonet.strategy import make_strategy

TIMING = {"seconds", "evals_per_s", "env_steps_per_s", "elapsed", "utilization"}


def run(seed=0, generations=3):
    cfg = config.load(None, ["ga.algorithm=cma_es", "ga.population=8", f"ga.generations={generations}",
                             "snake.games=2", "ga.final_games=4", "ga.hall_of_fame=3", f"seed={seed}"])
    problem = make_problem(cfg)
    genomes = problem.init_genomes(seeding.generator(cfg.seed, seeding.PURPOSE_INIT), cfg.ga.population)
    es = make_strategy(cfg.ga, genomes, problem.low, problem.up, seeding.generator(cfg.seed, seeding.PURPOSE_STRATEGY))
    assert isinstance(es, CMAES)
    result = run_evolution(es, problem, LocalExecutor(), cfg.ga.generations, 0, cfg.ga.final_games)
    return [{k: v for k, v in r.items() if k not in TIMING} for r in result.logbook], result


def test_same_seed_same_run_and_numpy_global_state_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a, ra = run()
    b, rb = run()
    assert np.array_equal(np.random.get_state()[1], before)
    assert a == b
    np.testing.assert_array_equal(ra.best_genome, rb.best_genome)
    c, _ = run(seed=1)
    assert c != a


def test_numpy_random_restores_state_even_on_error():
    np.random.seed(5)
    state = np.random.get_state()[1].copy()
    with pytest.raises(ZeroDivisionError):
        with numpy_random(np.random.default_rng(0)):
            np.random.standard_normal(3)
            1 / 0
    assert np.array_equal(np.random.get_state()[1], state)


def test_centroid_moves_towards_the_better_half():
    cfg = config.load(None, ["ga.algorithm=cma_es", "ga.population=16", "ga.bound=100"])
    dim = 5
    es = CMAES(cfg.ga, np.zeros((4, dim)), -100.0, 100.0, np.random.default_rng(0))
    target = np.full(dim, 3.0)
    distance = []
    for _ in range(30):
        pop = es.ask()
        assert len(pop) == 16
        fits = [-float(np.sum((np.asarray(ind) - target) ** 2)) for ind in pop]
        es.tell(pop, [EvalResult(fitness=f, weight=1) for f in fits])
        distance.append(float(np.linalg.norm(np.asarray(es.es.centroid) - target)))
    assert distance[-1] < 0.1 * distance[0]
    assert len(es.hof) == cfg.ga.hall_of_fame and np.allclose(es.hof[0], es.es.centroid)


def test_genes_stay_in_bounds():
    cfg = config.load(None, ["ga.algorithm=cma_es", "ga.population=8", "ga.sigma=50"])
    es = CMAES(cfg.ga, np.zeros((2, 4)), -1.0, 1.0, np.random.default_rng(0))
    pop = es.ask()
    arr = np.asarray(pop)
    assert arr.min() >= -1.0 and arr.max() <= 1.0 and np.any(np.abs(arr) == 1.0)


def test_state_round_trip_continues_exactly():
    from evonet.checkpoint import join_arrays, split_arrays

    cfg = config.load(None, ["ga.algorithm=cma_es", "ga.population=8", "ga.bound=100"])

    def fitness(pop):
        return [EvalResult(fitness=-float(np.sum((np.asarray(ind) - 1.0) ** 2)), weight=1) for ind in pop]

    a = CMAES(cfg.ga, np.zeros((2, 6)), -100.0, 100.0, np.random.default_rng(3))
    for _ in range(4):
        pop = a.ask()
        a.tell(pop, fitness(pop))
    blob, arrays = split_arrays(a.get_state())
    b = CMAES(cfg.ga, np.zeros((2, 6)), -100.0, 100.0, np.random.default_rng(99))
    b.set_state(join_arrays(blob, arrays))
    for _ in range(3):
        pa, pb = a.ask(), b.ask()
        assert np.array_equal(np.asarray(pa), np.asarray(pb))
        a.tell(pa, fitness(pa))
        b.tell(pb, fitness(pb))
    assert np.array_equal(a.es.centroid, b.es.centroid) and a.sigma == b.sigma


def _logbook(run_dir):
    import json

    rows = [json.loads(x) for x in (run_dir / "logbook.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _cli(evonet_cmd, env, *args) -> str:
    import subprocess

    proc = subprocess.run(evonet_cmd + list(args), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cma_es_run_resumes_to_the_same_result(tmp_path, evonet_cmd, subprocess_env):
    base = ["--set", "ga.algorithm=cma_es", "--set", "ga.population=6", "--set", "snake.games=2",
            "--set", "ga.final_games=4", "--set", "eval_games=0", "--set", "ga.hall_of_fame=2"]

    def cli(*args):
        return _cli(evonet_cmd, subprocess_env, *args)

    cli("run", *base, "--set", "ga.generations=4", "--out", str(tmp_path / "straight"))
    cli("run", *base, "--set", "ga.generations=2", "--out", str(tmp_path / "resumed"))
    cli("resume", str(tmp_path / "resumed"), "--set", "ga.generations=4")
    assert _logbook(tmp_path / "straight") == _logbook(tmp_path / "resumed")
    a = np.load(tmp_path / "straight" / "best" / "genome.npz")["genome"]
    b = np.load(tmp_path / "resumed" / "best" / "genome.npz")["genome"]
    np.testing.assert_array_equal(a, b)


def test_auto_runs_cma_es_on_snake_weights_records_it_and_resumes(tmp_path, evonet_cmd, subprocess_env):
    """The default ga.algorithm (auto) is CMA-ES on the snake weights: the same run as naming
    cma_es, config.yaml and the first line say so, and resume continues it exactly."""
    import yaml

    base = ["--set", "ga.population=6", "--set", "snake.games=2", "--set", "ga.final_games=4",
            "--set", "eval_games=0", "--set", "ga.hall_of_fame=2", "--set", "log.progress=none"]

    def cli(*args):
        return _cli(evonet_cmd, subprocess_env, *args)

    out = cli("run", *base, "--set", "ga.generations=2", "--out", str(tmp_path / "auto"))
    assert "cma_es (auto: 627 real genes) population 6" in out.splitlines()[0]
    assert yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())["ga"]["algorithm"] == "cma_es"
    cli("run", *base, "--set", "ga.algorithm=cma_es", "--set", "ga.generations=3", "--out", str(tmp_path / "named"))
    cli("resume", str(tmp_path / "auto"), "--set", "ga.generations=3")
    assert _logbook(tmp_path / "auto") == _logbook(tmp_path / "named")
    np.testing.assert_array_equal(np.load(tmp_path / "auto" / "best" / "genome.npz")["genome"],
                                  np.load(tmp_path / "named" / "best" / "genome.npz")["genome"])


def _sum_fitness(genomes, seeds):
    return np.sum(genomes, axis=1)


def test_auto_picks_the_ga_for_large_or_non_real_genomes_and_checks_its_settings():
    from evonet.config import CMA_ES_MAX_GENES, resolve_algorithm
    from evonet.core.errors import ConfigError
    from evonet.core.problem import Problem
    from evonet.problems.function.problem import FunctionProblem
    from evonet.problems.nas.problem import HyperparamProblem
    from evonet.strategy import GeneticAlgorithm

    cfg = config.load(None)
    assert cfg.ga.algorithm == "auto"
    small = FunctionProblem(_sum_fitness, CMA_ES_MAX_GENES)
    large = FunctionProblem(_sum_fitness, CMA_ES_MAX_GENES + 1)
    resolved, auto = resolve_algorithm(cfg, small)
    assert auto and resolved.ga.algorithm == "cma_es"
    assert cfg.ga.algorithm == "auto"  # the caller's config is not changed
    assert resolve_algorithm(cfg, large)[0].ga.algorithm == "mu_plus_lambda"

    class Discrete(Problem):
        n_genes, low, up = 4, 0.0, 1.0

    assert resolve_algorithm(cfg, Discrete())[0].ga.algorithm == "mu_plus_lambda"
    assert HyperparamProblem.continuous is False
    named = config.load(None, ["ga.algorithm=simple"])
    assert resolve_algorithm(named, small) == (named, False)

    # settings only the GA checks are checked once auto has chosen the GA
    odd = config.load(None, ["ga.cxpb=0.7", "ga.mutpb=0.6"])
    assert resolve_algorithm(odd, small)[0].ga.algorithm == "cma_es"
    with pytest.raises(ConfigError, match=r"^ga\.cxpb: .*\(ga\.algorithm: auto chose mu_plus_lambda\)$"):
        resolve_algorithm(odd, large)

    genomes = np.zeros((4, 3))
    with pytest.raises(ValueError, match="auto must be resolved"):
        make_strategy(cfg.ga, genomes, -1.0, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="not 'cma_es'"):
        GeneticAlgorithm(config.load(None, ["ga.algorithm=cma_es"]).ga, genomes, -1.0, 1.0, np.random.default_rng(0))


# --------------------------------------------------------------------------------------
# the lazy eigendecomposition (ga.eigen_gap)


def _sphere_individuals(es, rng, cls):
    """One generation sampled from ``es`` and scored on a shifted sphere (maximised)."""
    from evonet.cma_es import numpy_random

    with numpy_random(rng):
        pop = es.generate(cls)
    for ind in pop:
        ind.fitness.values = (-float(np.sum((np.asarray(ind) - 1.0) ** 2)),)
    return pop


def test_lazy_update_is_deaps_update_when_it_decomposes_every_generation():
    from deap import cma

    from evonet.strategies.cma_es import LazyStrategy
    from evonet.strategies.operators import individual_class

    cls = individual_class()
    deap_es = cma.Strategy(centroid=np.zeros(12), sigma=0.5, lambda_=10)
    lazy = LazyStrategy(centroid=np.zeros(12), sigma=0.5, eigen_gap=1000, lambda_=10)
    for gen in range(15):
        pop = _sphere_individuals(deap_es, np.random.default_rng(gen), cls)
        same = [cls(list(ind)) for ind in pop]
        for a, b in zip(same, pop):
            a.fitness.values = b.fitness.values
        deap_es.update(pop)
        lazy.update(same)  # its own update (gap 1000), then the decomposition DEAP does every time
        lazy.decompose()
        for name in ("centroid", "C", "ps", "pc", "B", "diagD"):
            np.testing.assert_allclose(getattr(lazy, name), getattr(deap_es, name), rtol=1e-9, atol=1e-12,
                                       err_msg=f"{name} after generation {gen}")
        assert lazy.sigma == pytest.approx(deap_es.sigma, rel=1e-12)


def test_lazy_update_decomposes_every_gap_generations_and_still_optimizes():
    from evonet.strategies.cma_es import LazyStrategy, lazy_eigen_gap
    from evonet.strategies.operators import individual_class

    assert lazy_eigen_gap(627, 64) == 10 and lazy_eigen_gap(627, 128) == 5
    cls = individual_class()
    es = LazyStrategy(centroid=np.zeros(20), sigma=0.5, eigen_gap=4, lambda_=12)
    decomposed = []
    for gen in range(40):
        before = es.B.copy()
        es.update(_sphere_individuals(es, np.random.default_rng(gen), cls))
        if not np.array_equal(before, es.B):
            decomposed.append(es.update_count)
    assert decomposed == list(range(4, 41, 4))
    assert np.sum((es.centroid - 1.0) ** 2) < 0.05 * 20  # from 20 at the start


def test_lazy_runs_resume_exactly_and_old_states_load():
    import evonet

    def gens(es, n):
        out = []
        for _ in range(n):
            g = es.ask()
            f = -np.sum((g - 0.3) ** 2, axis=1)
            es.tell(g, f)
            out.append(g)
        return out

    from evonet.strategies.cma_es import resolve_eigen_gap

    # auto: lazy from 200 genes on, every generation below (where a decomposition is cheap)
    assert resolve_eigen_gap("auto", 627, 64) == 10 and resolve_eigen_gap("auto", 199, 64) == 1
    assert evonet.strategies.CMAES(n_genes=60, population=8).impl.eigen_gap == 1
    full = gens(evonet.strategies.CMAES(n_genes=60, population=8, seed=3, eigen_gap=8), 20)
    first = evonet.strategies.CMAES(n_genes=60, population=8, seed=3, eigen_gap=8)
    gens(first, 6)
    state = first.get_state()
    again = evonet.strategies.CMAES(n_genes=60, population=8, seed=3, eigen_gap=8)
    again.set_state(state)
    for a, b in zip(full[6:], gens(again, 14)):
        np.testing.assert_array_equal(a, b)
    # a state written before the lazy update (no eigen_update) loads: it decomposed every update
    del state["es"]["eigen_update"]
    old = evonet.strategies.CMAES(n_genes=60, population=8, seed=3)
    old.set_state(state)
    assert old.impl.es.eigen_update == old.impl.es.update_count


@pytest.mark.parametrize("value", [0, -2, "sometimes", 1.5])
def test_eigen_gap_rejects_bad_values(value):
    with pytest.raises(config.ConfigError, match="ga.eigen_gap"):
        config.load(None, [f"ga.eigen_gap={value}"])
