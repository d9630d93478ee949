"""The generational loop: ask, evaluate through the executor, tell, report to hooks.

The loop owns no randomness of its own and prints nothing; loggers, the run store and
stopping rules subscribe as hooks (objects with any of ``on_start``, ``on_generation``,
``on_end``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from evonet import seeding
from evonet.problems.base import EvalResult


@dataclass
class RunResult:
    """What a finished evolution returns."""

    logbook: list[dict]
    best_genome: np.ndarray
    best_fitness: float
    best_games: int
    candidates: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)


def evaluate(problem, executor, genomes: np.ndarray, generation: int, chunk: int, **task_kw) -> list[EvalResult]:
    """Evaluate genomes (n, n_genes) through ``executor.map``; results in genome order."""
    if len(genomes) == 0:
        return []
    if chunk <= 0:
        chunk = -(-len(genomes) // max(1, getattr(executor, "workers", 1)))
    tasks = problem.make_tasks(genomes, generation, range(len(genomes)), chunk, **task_kw)
    out: list[EvalResult] = []
    for part in executor.map(problem.evaluate_task, tasks, on_error=problem.failed_results):
        out.extend(part)
    return out


def _call(hooks, name, *args):
    for hook in hooks:
        fn = getattr(hook, name, None)
        if fn is not None:
            fn(*args)


def run_evolution(strategy, problem, executor, generations: int, chunk: int, final_games: int,
                  hooks: Sequence[Any] = ()) -> RunResult:
    """Run ``generations`` generations after the initial one and pick the final best.

    The final best is chosen among the hall of fame by re-scoring every member on
    ``final_games`` fresh training games (never evaluation seeds).
    """
    logbook: list[dict] = []
    failures: list[dict] = []
    total_evals = 0
    _call(hooks, "on_start", {"generations": generations, "population": len(strategy.population)})
    start = time.perf_counter()
    for _ in range(generations + 1):
        t0 = time.perf_counter()
        individuals = strategy.ask()
        gen = strategy.generation
        results = evaluate(problem, executor, np.asarray(individuals, dtype=np.float32), gen, chunk)
        strategy.tell(individuals, results)
        dt = time.perf_counter() - t0
        total_evals += len(results)
        for i, res in enumerate(results):
            if res.error is not None:
                failures.append({"generation": gen, "index": i, "error": res.error})
        fit = strategy.fitnesses()
        steps = sum(r.metrics.get("steps", 0.0) for r in results)
        games = sum(r.weight for r in results)
        record = {
            "gen": gen,
            "evals": len(results),
            "games": int(games),
            "best": float(fit.max()),
            "mean": float(fit.mean()),
            "std": float(fit.std()),
            "min": float(fit.min()),
            "best_game": float(max((r.metrics.get("max_score", r.fitness) for r in results), default=float("nan"))),
            "failed": sum(r.error is not None for r in results),
            "seconds": round(dt, 4),
            "evals_per_s": round(len(results) / dt, 2) if dt > 0 else float("inf"),
            "env_steps_per_s": round(steps / dt, 1) if dt > 0 else float("inf"),
            "elapsed": round(time.perf_counter() - start, 3),
        }
        logbook.append(record)
        _call(hooks, "on_generation", record, strategy)

    # final choice among the hall of fame, on fresh seeds of their own purpose
    members = list(strategy.hof) or [max(strategy.population, key=lambda ind: ind.fitness.values[0])]
    genomes = np.asarray(members, dtype=np.float32)
    final = evaluate(problem, executor, genomes, generations + 1, chunk,
                     purpose=seeding.PURPOSE_FINAL, games=final_games)
    candidates = [
        {"rank": i, "train_fitness": float(m.fitness.values[0]), "train_games": int(getattr(m, "games", 0)),
         "final_fitness": float(r.fitness), "final_games": int(r.weight)}
        for i, (m, r) in enumerate(zip(members, final))
    ]
    best = int(np.argmax([r.fitness if r.error is None else -np.inf for r in final]))
    result = RunResult(
        logbook=logbook,
        best_genome=genomes[best],
        best_fitness=float(final[best].fitness),
        best_games=int(final[best].weight),
        candidates=candidates,
        failures=failures,
    )
    _call(hooks, "on_end", result)
    return result
