"""The strategy and loop on the real snake problem: determinism and GA invariants."""

import numpy as np
import pytest

from evonet import config, seeding
from evonet.executors import LocalExecutor
from evonet.loop import run_evolution
from evonet.problems import make_problem
from evonet.strategy import GeneticAlgorithm

TIMING = {"seconds", "evals_per_s", "env_steps_per_s", "elapsed", "utilization"}


def evolve(overrides, chunk=64):
    cfg = config.load(None, ["ga.algorithm=mu_plus_lambda", "ga.population=12", "ga.generations=3", "snake.games=3", "ga.final_games=6",
                             "ga.hall_of_fame=4", *overrides])
    problem = make_problem(cfg)
    genomes = problem.init_genomes(seeding.generator(cfg.seed, seeding.PURPOSE_INIT), cfg.ga.population)
    ga = GeneticAlgorithm(cfg.ga, genomes, problem.low, problem.up,
                          seeding.generator(cfg.seed, seeding.PURPOSE_STRATEGY))
    result = run_evolution(ga, problem, LocalExecutor(), cfg.ga.generations, chunk, cfg.ga.final_games)
    logbook = [{k: v for k, v in rec.items() if k not in TIMING} for rec in result.logbook]
    return logbook, result, ga


@pytest.mark.parametrize("algorithm", ["simple", "mu_plus_lambda"])
def test_same_seed_same_logbook_whatever_the_chunking(algorithm):
    a, ra, _ = evolve([f"ga.algorithm={algorithm}"], chunk=64)
    b, rb, _ = evolve([f"ga.algorithm={algorithm}"], chunk=1)
    assert a == b
    np.testing.assert_array_equal(ra.best_genome, rb.best_genome)


def test_different_seed_differs():
    a, _, _ = evolve(["seed=1"])
    b, _, _ = evolve(["seed=2"])
    assert a != b


def test_population_size_genes_in_bounds_and_logbook_shape():
    logbook, result, ga = evolve(["ga.bound=0.5", "ga.mutation={name: gaussian, sigma: 3.0, indpb: 1.0}"])
    assert [r["gen"] for r in logbook] == [0, 1, 2, 3]
    assert len(ga.population) == 12
    genomes = ga.genomes()
    assert genomes.min() >= -0.5 and genomes.max() <= 0.5
    for rec in logbook:
        assert rec["min"] <= rec["mean"] <= rec["best"]
    assert len(result.candidates) == 4


def test_ask_tell_protocol_is_enforced():
    cfg = config.load(None, ["ga.algorithm=mu_plus_lambda", "ga.population=4"])
    problem = make_problem(cfg)
    genomes = problem.init_genomes(np.random.default_rng(0), 4)
    ga = GeneticAlgorithm(cfg.ga, genomes, problem.low, problem.up, np.random.default_rng(1))
    asked = ga.ask()
    with pytest.raises(RuntimeError):
        ga.ask()
    with pytest.raises(RuntimeError):
        ga.tell(asked[:2], [])


def test_mu_plus_lambda_never_loses_its_best_without_reevaluation():
    logbook, _, _ = evolve(["ga.algorithm=mu_plus_lambda", "ga.reevaluate=false", "ga.generations=5"])
    best = [r["best"] for r in logbook]
    assert all(b2 >= b1 for b1, b2 in zip(best, best[1:]))
