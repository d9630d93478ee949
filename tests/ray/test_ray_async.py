"""Asynchronous evolution on Ray workers: the reproducible mode gives the local executor's
search, bit for bit, also when a worker is killed under a job (its job runs again)."""

import pytest

import ray_helpers as h
from evonet.core import seeding
from evonet.core.async_loop import run_async
from evonet.executors import LocalExecutor, RayExecutor
from evonet.problems import make_problem
from evonet.strategies.ga import make_strategy

pytestmark = pytest.mark.ray

AGING = ["ga.algorithm=aging", "ga.lag=4", "ga.selection.name=tournament", "ga.selection.tournsize=3"]


def evolve_async(cfg, executor, problem):
    genomes = problem.init_genomes(seeding.generator(cfg.seed, seeding.PURPOSE_INIT), cfg.ga.population + cfg.ga.lag)
    s = make_strategy(cfg.ga, genomes, problem.low, problem.up, seeding.generator(cfg.seed, seeding.PURPOSE_STRATEGY),
                      key=problem.genome_key)
    result = run_async(s, problem, executor, cfg.ga.generations, 1, cfg.ga.final_games, mode=cfg.ga.mode,
                       lag=cfg.ga.lag, period=cfg.ga.population)
    return h.strip_timing(result.logbook), result


def test_reproducible_aging_on_ray_with_a_killed_worker_equals_the_local_run(ray_session, tmp_path):
    cfg = h.tiny_config(*AGING, "executor.kind=ray", "executor.workers=2")
    base = make_problem(cfg)
    problem = h.MarkedProblem(base, tmp_path, delay=0.3)
    killed, thread = h.kill_worker_at_start(tmp_path, 6)  # mid-run: a job is under way on that worker
    try:
        with RayExecutor.from_config(cfg.executor) as ex:
            log, result = evolve_async(cfg, ex, problem)
            stats = dict(ex.stats)
    finally:
        killed["stop"] = True
        thread.join()
    assert "pid" in killed and stats["retries"] >= 1 and not result.failures
    local_log, local = evolve_async(h.tiny_config(*AGING), LocalExecutor(), base)
    assert log == local_log and h.same_genomes(result.best_genome, local.best_genome)
    assert result.best_fitness == local.best_fitness
    assert result.utilization is not None and 0 < result.utilization <= 1


def test_greedy_aging_on_ray_streams_jobs_to_both_workers(ray_session, tmp_path):
    cfg = h.tiny_config(*AGING, "ga.mode=greedy", "executor.kind=ray", "executor.workers=2")
    problem = h.MarkedProblem(make_problem(cfg), tmp_path, delay=0.2)
    with RayExecutor.from_config(cfg.executor) as ex:
        log, result = evolve_async(cfg, ex, problem)
    assert len(log) == cfg.ga.generations + 1 and result.evaluations == 8 * 4
    assert len({pid for _, pid in h.start_files(tmp_path)}) == 2
