"""``evonet bench simulate``: the generational and the asynchronous loop on 16 to 1,024 simulated workers.

The real strategy and loop code run against :class:`~evonet.executors.SimulatedExecutor`:
each genome is one task charged a training time resampled from a measured distribution,
list-scheduled on N virtual workers. The generational GA's generation ends when its slowest
training ends; aging evolution hands a free worker its next job at once, greedy (results as
they arrive) or reproducible (in job order, with a lag of twice the workers). Every strategy
gets the same number of jobs per worker. The report: utilization of the evolution (busy
worker time / (workers x wall time), up to the last result of the search: the final choice
among the hall of fame is left out) and the driver's own overhead per result, per worker
count. The default durations are lognormal with median
1.50 s and log-sd 0.21, the training times measured for the issue's define-by-run digits
search (10 epochs, 20 trainings); ``--from RUN_DIR`` resamples a run's own eval_times.jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DEFAULT_MEDIAN_S, DEFAULT_LOG_SD = 1.50, 0.21


def measured_durations(run_dir: str | Path, floor: float = 0.05) -> np.ndarray:
    """The evaluation seconds of a run (cache hits, under ``floor`` seconds, left out)."""
    path = Path(run_dir) / "eval_times.jsonl"
    seconds = [float(s) for line in path.read_text().splitlines() if line.strip()
               for s in json.loads(line).get("seconds", []) if float(s) >= floor]
    if not seconds:
        raise ValueError(f"{path}: no evaluation times of {floor} s or more")
    return np.array(seconds)


def _sphere(genomes, seeds):
    return -(genomes.astype(np.float64) ** 2).sum(axis=1)


class _EvolutionClock:
    """Hook: the simulated executor's figures when the last result of the search is in."""

    def __init__(self, ex):
        self.ex = ex
        self.busy = self.clock = 0.0
        self.results = 0

    def after_generation(self, state, strategy) -> None:
        self.busy, self.clock, self.results = self.ex.busy, self.ex.clock, self.ex.results

    def utilization(self) -> float:
        return self.busy / (self.ex.workers * self.clock) if self.clock > 0 else 0.0

    def __getattr__(self, name):  # every other hook event: nothing to do
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)


def _row(kind: str, workers: int, population: int, generations: int, ex, clock, result) -> dict:
    return {"strategy": kind, "workers": workers, "population": population, "generations": generations,
            "evaluations": clock.results, "virtual_wall_s": round(clock.clock, 3),
            "utilization": round(clock.utilization(), 4),
            "overhead_ms_per_result": round(1e3 * ex.overhead_per_result, 4),
            "failures": ex.failures, "best_fitness": result.best_fitness}


def simulate_generational(workers: int, durations, generations: int = 5, population: int | None = None,
                          failure_rate: float = 0.0, seed: int = 0) -> dict:
    """One generational (mu + lambda) GA run, a genome per task, on ``workers`` simulated workers."""
    from evonet.core import config, seeding
    from evonet.core.loop import run_evolution
    from evonet.executors import SimulatedExecutor
    from evonet.problems.function import FunctionProblem
    from evonet.strategies.ga import make_strategy

    population = population or workers
    ga = config.from_dict({"ga": {"algorithm": "mu_plus_lambda", "population": population, "generations": generations,
                                  "reevaluate": False, "final_games": 1,
                                  "selection": {"name": "tournament", "tournsize": 2}}}).ga
    problem = FunctionProblem(_sphere, 8, run_seed=seed)
    genomes = problem.init_genomes(seeding.generator(seed, seeding.PURPOSE_INIT), population)
    strategy = make_strategy(ga, genomes, problem.low, problem.up, seeding.generator(seed, seeding.PURPOSE_STRATEGY))
    ex = SimulatedExecutor(workers, durations, failure_rate=failure_rate, seed=seed)
    clock = _EvolutionClock(ex)
    result = run_evolution(strategy, problem, ex, generations, 1, 1, hooks=[clock])
    return _row("generational", workers, population, generations, ex, clock, result)


def simulate_async(workers: int, durations, generations: int = 5, population: int | None = None,
                   mode: str = "greedy", lag: int | None = None, failure_rate: float = 0.0, seed: int = 0) -> dict:
    """Aging evolution, a genome per job, ``(generations + 1) * population`` jobs, on
    ``workers`` simulated workers; ``lag`` (reproducible mode) defaults to twice the workers."""
    from evonet.core import config, seeding
    from evonet.core.async_loop import run_async
    from evonet.executors import SimulatedExecutor
    from evonet.problems.function import FunctionProblem
    from evonet.strategies.ga import make_strategy

    population = population or workers
    lag = 2 * workers if lag is None else int(lag)
    ga = config.from_dict({"ga": {"algorithm": "aging", "population": population, "generations": generations,
                                  "mode": mode, "lag": lag, "final_games": 1,
                                  "selection": {"name": "tournament", "tournsize": min(8, population)}}}).ga
    problem = FunctionProblem(_sphere, 8, run_seed=seed)
    genomes = problem.init_genomes(seeding.generator(seed, seeding.PURPOSE_INIT), population + max(lag, workers))
    strategy = make_strategy(ga, genomes, problem.low, problem.up, seeding.generator(seed, seeding.PURPOSE_STRATEGY),
                             key=problem.genome_key)
    ex = SimulatedExecutor(workers, durations, failure_rate=failure_rate, seed=seed)
    clock = _EvolutionClock(ex)
    result = run_async(strategy, problem, ex, generations, 1, 1, hooks=[clock], mode=mode, lag=lag,
                       period=population)
    row = _row(f"aging {mode}", workers, population, generations, ex, clock, result)
    if mode == "reproducible":
        row["lag"] = lag
    return row


def bench_simulate(workers=(16, 64, 256, 1024), generations: int = 40, run_dir: str | None = None,
                   failure_rate: float = 0.0, seed: int = 0) -> dict:
    if run_dir is not None:
        durations, source = measured_durations(run_dir), f"eval_times.jsonl of {run_dir}"
    else:
        rng = np.random.default_rng(seed)
        durations = DEFAULT_MEDIAN_S * np.exp(DEFAULT_LOG_SD * rng.standard_normal(10_000))
        source = f"lognormal, median {DEFAULT_MEDIAN_S} s, log-sd {DEFAULT_LOG_SD}"
    rows = []
    for w in workers:
        rows.append(simulate_generational(w, durations, generations, failure_rate=failure_rate, seed=seed))
        for mode in ("greedy", "reproducible"):
            rows.append(simulate_async(w, durations, generations, mode=mode, failure_rate=failure_rate, seed=seed))
    return {"durations": source, "failure_rate": failure_rate,
            "strategies": "generational mu+lambda GA; aging evolution greedy and reproducible (lag = 2 x workers)",
            "runs": rows}
