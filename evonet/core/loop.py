"""The generational loop: ask, evaluate through the executor, tell, report to hooks.

The loop owns no randomness of its own, prints nothing and writes no files; loggers,
the progress bar, the run store and checkpoints subscribe as hooks: objects with any of

* ``on_start(info)``: once, before the first generation of this session;
* ``on_generation_start(generation, n_evaluations)`` and ``on_evaluations(done, total)``
  (progress within a generation, as the executor finishes tasks);
* ``on_generation(record, strategy)``: the generation's logbook record;
* ``after_generation(state, strategy)``: the complete :class:`LoopState` once the
  generation is over (what a checkpoint needs); ``state.last`` is true for the last one;
* ``on_interrupt(state)``: Ctrl-C or a termination signal arrived (the current
  generation is abandoned; the exception is re-raised after the hooks ran);
* ``on_end(result)``: after the final choice among the hall of fame.

A run can continue from a :class:`LoopState` (``start_state``) and a strategy restored
with ``set_state``: it then produces exactly the generations the uninterrupted run would
have produced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from evonet.core import seeding
from evonet.core.types import EvalResult
from evonet.core.stopping import Stop, StoppingRules
from evonet.core.strategy import WORST


@dataclass
class RunResult:
    """What a finished evolution returns."""

    logbook: list[dict]
    best_genome: np.ndarray
    best_fitness: float
    best_games: int
    candidates: list[dict] = field(default_factory=list)
    #: the genome of each ``candidates`` entry, in the same order (an ensemble of the best
    #: candidates is built from them: architecture search's ``search.ensemble``)
    candidate_genomes: list[np.ndarray] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    stop: dict | None = None
    evaluations: int = 0
    elapsed: float = 0.0
    #: busy worker seconds / (workers x wall seconds) of the evolution (None: not measured)
    utilization: float | None = None


@dataclass
class LoopState:
    """What the loop carries from one generation to the next (checkpointed, except
    ``results`` and ``last``)."""

    logbook: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    evaluations: int = 0
    elapsed: float = 0.0  # evolution seconds of every session of the run so far
    stopping: dict = field(default_factory=dict)
    stop: dict | None = None
    results: list[EvalResult] = field(default_factory=list, repr=False)  # the last generation's
    last: bool = False  # the generation just finished is the last one of the run
    #: the loop's own running figures (busy and wall seconds for utilization; checkpointed)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "logbook": [dict(r) for r in self.logbook],
            "failures": [dict(f) for f in self.failures],
            "evaluations": int(self.evaluations),
            "elapsed": float(self.elapsed),
            "stopping": dict(self.stopping),
            "stop": None if self.stop is None else dict(self.stop),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "LoopState":
        return cls(
            logbook=[dict(r) for r in data["logbook"]],
            failures=[dict(f) for f in data["failures"]],
            evaluations=int(data["evaluations"]),
            elapsed=float(data["elapsed"]),
            stopping=dict(data.get("stopping") or {}),
            stop=data.get("stop"),
            extra=dict(data.get("extra") or {}),
        )


def base_record(gen: int, results, fit: np.ndarray, best: float, strategy, dt: float, elapsed: float, busy: float,
                workers: int) -> dict:
    """The loop's own fields of a logbook record (both loops): evaluations, fitness statistics
    of the population, diversity, failures, timing and worker utilization."""
    return {
        "gen": int(gen),
        "evals": len(results),
        "games": int(sum(r.weight for r in results)),
        "best": float(best),
        "mean": float(fit.mean()),
        "std": float(fit.std()),
        "min": float(fit.min()),
        "diversity": diversity(strategy),
        "failed": sum(r.error is not None for r in results),
        "seconds": round(dt, 4),
        "evals_per_s": round(len(results) / dt, 2) if dt > 0 else float("inf"),
        "elapsed": round(elapsed, 3),
        "utilization": round(busy / (workers * dt), 4) if dt > 0 else 0.0,
    }


def evaluate(problem, executor, genomes: np.ndarray, generation: int, chunk: int,
             on_result: Callable[[int], None] | None = None, **task_kw) -> list[EvalResult]:
    """Evaluate genomes (n, n_genes) through ``executor.map``; results in genome order.

    ``on_result(n)`` is called with the number of genomes of every finished task.
    """
    if len(genomes) == 0:
        return []
    n_all = len(genomes)
    # problems with an evaluation cache (hyperparameter genomes) send only genomes never
    # evaluated before, once each, and fill in the rest: plan.merge(results of plan.todo)
    plan = problem.plan_evaluations(genomes, **task_kw)
    if plan is not None:
        genomes = genomes[plan.todo]
        if len(genomes) == 0:
            out = plan.merge([])
            if on_result is not None:
                on_result(len(out))
            return out
    if chunk <= 0:
        chunk = -(-len(genomes) // max(1, executor.workers))
    tasks = problem.make_tasks(genomes, generation, range(len(genomes)), chunk, **task_kw)
    live = None
    if on_result is not None:
        live = lambda part: on_result(len(part))  # noqa: E731
        if n_all > len(genomes):  # answered by the cache: done already
            on_result(n_all - len(genomes))
    out: list[EvalResult] = []
    for part in executor.map(problem.evaluate_task, tasks, on_error=problem.failed_results, on_result=live):
        out.extend(part)
    if plan is not None:
        out = plan.merge(out)
    return out


def commit_record(state: LoopState, record: dict, results, stop: Stop | None, rules, hooks, strategy) -> None:
    """A finished generation (or asynchronous period) into the loop state, then the hooks."""
    if stop is not None and stop.rule != "generations":
        record["stop"] = stop.reason
    state.logbook.append(record)
    state.stopping = rules.get_state()
    state.stop = None if stop is None else stop.to_dict()
    state.results = results
    state.last = stop is not None
    _call(hooks, "on_generation", record, strategy)
    _call(hooks, "after_generation", state, strategy)


def _call(hooks, name, *args):
    for hook in hooks:
        getattr(hook, name)(*args)


def diversity(strategy) -> float:
    """Population diversity: the mean over genes of the per-gene standard deviation."""
    genomes = np.asarray(strategy.population, dtype=np.float64)
    if genomes.ndim != 2 or len(genomes) < 2:
        return 0.0
    return float(genomes.std(axis=0).mean())


def run_evolution(strategy, problem, executor, generations: int, chunk: int, final_games: int,
                  hooks: Sequence[Any] = (), start_state: LoopState | None = None,
                  stopping: StoppingRules | None = None) -> RunResult:
    """Run generations up to ``generations`` (after the initial one) and pick the final best.

    ``start_state``: continue a run whose strategy was restored with ``set_state`` from
    the same checkpoint. ``stopping``: rules that may end the run early (checked after
    every generation; a resumed run checks them before its first new generation too).
    The final best is chosen among the hall of fame by re-scoring every member on
    ``final_games`` fresh training games (never evaluation seeds).
    """
    state = LoopState.from_dict(start_state.to_dict()) if start_state is not None else LoopState()
    rules = stopping if stopping is not None else StoppingRules()
    if start_state is not None:
        rules.set_state(state.stopping)
    _call(hooks, "on_start", {"generations": generations, "population": len(strategy.population),
                              "start_generation": strategy.generation + 1, "evaluations": state.evaluations,
                              "elapsed": state.elapsed})
    session_start = time.perf_counter()
    elapsed0 = state.elapsed
    workers = max(1, int(getattr(executor, "workers", 1)))
    extra = state.extra
    busy0, wall0 = float(extra.get("busy", 0.0)), float(extra.get("wall", 0.0))

    def stop_after(record: dict) -> Stop | None:
        stop = rules.check(record, state.evaluations, state.elapsed)
        if stop is None and record["gen"] >= generations:
            stop = Stop("generations", f"all {generations} generations done", int(record["gen"]))
        return stop

    stop = stop_after(state.logbook[-1]) if state.logbook else None
    try:
        while stop is None:
            t0 = time.perf_counter()
            individuals = strategy.ask()
            gen = strategy.generation
            total = len(individuals)
            _call(hooks, "on_generation_start", gen, total)
            done = 0

            def on_result(n: int) -> None:
                nonlocal done
                done += n
                _call(hooks, "on_evaluations", done, total)

            results = evaluate(problem, executor, np.asarray(individuals, dtype=np.float32), gen, chunk,
                               on_result=on_result)
            strategy.tell(individuals, results)
            dt = time.perf_counter() - t0
            state.evaluations += len(results)
            state.elapsed = elapsed0 + (time.perf_counter() - session_start)
            for i, res in enumerate(results):
                if res.error is not None:
                    state.failures.append({"generation": gen, "index": i, "error": res.error})
            fit = strategy.fitnesses()
            ok = fit[fit > WORST / 2]  # failed evaluations hold the worst fitness: no statistic of them
            fit = ok if len(ok) else fit
            busy = float(sum(r.seconds for r in results))
            busy0 += busy
            extra["busy"], extra["wall"] = busy0, wall0 + (time.perf_counter() - session_start)
            record = base_record(gen, results, fit, float(fit.max()), strategy, dt, state.elapsed, busy, workers)
            record.update(problem.record_metrics(results, dt))  # the problem's own fields
            rules.update(record)
            stop = stop_after(record)
            commit_record(state, record, results, stop, rules, hooks, strategy)
    except KeyboardInterrupt:
        _call(hooks, "on_interrupt", state)
        raise

    result = final_choice(strategy, problem, executor, chunk, final_games, state, stop)
    _call(hooks, "on_end", result)
    return result


def final_choice(strategy, problem, executor, chunk: int, final_games: int, state: LoopState,
                 stop: Stop) -> RunResult:
    """The final best: every hall-of-fame member re-scored on ``final_games`` fresh evaluations
    of their own purpose (``PURPOSE_FINAL``; an evaluation cache may answer them)."""
    members = list(strategy.hof) or [max(strategy.population, key=lambda ind: ind.fitness.values[0])]
    genomes = np.asarray(members, dtype=np.float32)
    final = evaluate(problem, executor, genomes, strategy.generation + 1, chunk,
                     purpose=seeding.PURPOSE_FINAL, games=final_games)
    candidates = [
        {"rank": i, "train_fitness": float(m.fitness.values[0]), "train_games": int(getattr(m, "games", 0)),
         "final_fitness": float(r.fitness), "final_games": int(r.weight)}
        for i, (m, r) in enumerate(zip(members, final))
    ]
    best = int(np.argmax([r.fitness if r.error is None else -np.inf for r in final]))
    wall = float(state.extra.get("wall", 0.0))
    workers = max(1, int(getattr(executor, "workers", 1)))
    return RunResult(
        logbook=state.logbook,
        best_genome=genomes[best],
        best_fitness=float(final[best].fitness),
        best_games=int(final[best].weight),
        candidates=candidates,
        candidate_genomes=list(genomes),
        failures=state.failures,
        stop=stop.to_dict(),
        evaluations=state.evaluations,
        elapsed=state.elapsed,
        utilization=round(float(state.extra.get("busy", 0.0)) / (workers * wall), 4) if wall > 0 else None,
    )
