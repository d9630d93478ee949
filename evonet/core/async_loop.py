"""The asynchronous loop: a worker that frees up gets the next job at once.

An asynchronous strategy (``strategy.asynchronous``, e.g.
:class:`~evonet.strategies.aging.AgingEvolution`) hands out one job at a time
(``next_job()``) and takes results back one at a time (``tell_job(job, result)``); the
executor's streaming interface (``submit`` / ``wait`` / ``idle``) runs them. Two modes:

* ``reproducible``: results are told in job order, and job ``k`` is created once exactly
  ``max(0, k - lag)`` results have been told. What the strategy sees when it creates a job
  therefore depends on the seed and ``lag`` only: the same search on 1, 2 or N workers, and
  after ``evonet resume`` (the jobs handed out and not told are part of the checkpoint and
  run again; evaluations are deterministic). At most ``lag + 1`` jobs are out at once, and a
  slow job holds back the results behind it: keep ``lag`` at about twice the workers or more.
* ``greedy``: results are told as they arrive and a job is created whenever a worker is
  idle. The fastest, and not reproducible (the order of arrival decides): the run says so.

Multi-fidelity jobs (``job.budget`` set) go through ``problem.make_budget_task(genome,
job_id, budget, state)``, where ``state`` is the training state saved by the job's parent
(``job.parent``) in ``states`` (``put`` / ``get``; the run store's ``fidelity/`` folder in a
run, a dict in memory otherwise); a result's ``state`` bytes are moved there, never kept in
the strategy or the logbook. Other jobs are ``problem.make_tasks([genome], job_id, [0], 1)``.
Both pass ``problem.plan_evaluations`` first (an evaluation cache answers a job without
running it).

The loop reports through the generational loop's hooks: a *period* of ``period`` told
results (the population size) is one logbook record (``gen`` counts periods), with the
generation hooks called around it, so loggers, the progress bar, checkpoints and stop rules
work unchanged; ``on_job(job, result)`` fires for every told result (the per-job log).
Utilization (seconds inside evaluations / (workers x wall seconds)) is in every record and
in the result.
"""

from __future__ import annotations

import collections
import time
from typing import Any, Sequence

import numpy as np

from evonet.core.loop import LoopState, RunResult, _call, base_record, commit_record, final_choice
from evonet.core.stopping import Stop, StoppingRules
from evonet.core.strategy import WORST

MODES = ("reproducible", "greedy")


class MemoryStates:
    """Training states kept in memory (simulations, tests, the Python API without a run store)."""

    def __init__(self):
        self.data: dict[int, bytes] = {}

    def put(self, job: int, state: bytes) -> None:
        self.data[int(job)] = state

    def get(self, job: int) -> bytes | None:
        return self.data.get(int(job))


def run_async(strategy, problem, executor, generations: int, chunk: int, final_games: int,
              hooks: Sequence[Any] = (), start_state: LoopState | None = None,
              stopping: StoppingRules | None = None, mode: str = "reproducible", lag: int = 8,
              period: int | None = None, states=None) -> RunResult:
    """Run jobs until ``(generations + 1) * period`` results are told (or a stop rule ends the
    run), then pick the final best among the hall of fame as the generational loop does."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if int(lag) < 0:
        raise ValueError(f"lag must be >= 0, got {lag}")
    lag = int(lag)
    period = int(period or len(strategy.warmup) or 1)
    states = states if states is not None else MemoryStates()
    state = LoopState.from_dict(start_state.to_dict()) if start_state is not None else LoopState()
    rules = stopping if stopping is not None else StoppingRules()
    if start_state is not None:
        rules.set_state(state.stopping)
    extra = state.extra
    extra.setdefault("busy", 0.0)
    extra.setdefault("wall", 0.0)
    workers = max(1, int(getattr(executor, "workers", 1)))
    _call(hooks, "on_start", {"generations": generations, "population": period,
                              "start_generation": strategy.generation + 1, "evaluations": state.evaluations,
                              "elapsed": state.elapsed, "mode": mode, "lag": lag})
    session_start = time.perf_counter()
    elapsed0, wall0, busy0 = state.elapsed, float(extra["wall"]), float(extra["busy"])
    total = (generations + 1) * period

    created: collections.deque = collections.deque()  # (job, plan) made, waiting for a worker (job order)
    inflight: dict[int, tuple] = {}  # ticket -> (job, plan)
    ready: dict[int, tuple] = {}  # job id -> (job, result, plan), until its turn to be told

    def add(job) -> None:
        """A new job: answered by the evaluation cache (planned when the job is made, so the
        cache holds exactly the results told so far), or queued for a worker."""
        genome = np.asarray(job.genome, dtype=np.float32)[None, :]
        plan = problem.plan_evaluations(genome, **({} if job.budget is None else {"budget": job.budget}))
        if plan is not None and not plan.todo:
            ready[job.id] = (job, plan.merge([])[0], None)
        else:
            created.append((job, plan))

    # jobs handed out before a checkpoint and not told: they run again first, in job order
    for job in sorted(strategy.pending.values(), key=lambda j: j.id):
        add(job)

    def make() -> None:
        if mode == "reproducible":  # made at a fixed count of told results (even past the end: a
            while strategy.next_id <= strategy.told + lag:  # longer resumed run then goes on the same)
                add(strategy.next_job())
        else:
            while len(created) + len(inflight) < workers and strategy.next_id < total:
                add(strategy.next_job())

    def dispatch() -> None:
        while created and len(inflight) < workers and created[0][0].id < total:
            job, plan = created.popleft()
            genome = np.asarray(job.genome, dtype=np.float32)[None, :]
            if job.budget is None:
                task = problem.make_tasks(genome, job.id, [0], 1)[0]
            else:
                parent = None if job.parent is None else states.get(job.parent)
                task = problem.make_budget_task(genome[0], job.id, job.budget, parent)
            ticket = executor.submit(problem.evaluate_task, task, problem.failed_results)
            inflight[ticket] = (job, plan)

    def arrived(job, result, plan) -> None:
        ready[job.id] = (job, result, plan)

    period_results: list = []
    t_period = time.perf_counter()
    busy_period = 0.0

    def tell_ready() -> int:
        """Tell what may be told now; returns how many."""
        nonlocal busy_period
        n = 0
        while ready and strategy.told < total and len(period_results) < period:
            if mode == "reproducible":
                if strategy.told not in ready:  # jobs are told in job order: 0, 1, 2, ...
                    break
                job, res, plan = ready.pop(strategy.told)
            else:
                job, res, plan = ready.pop(next(iter(ready)))
            busy_period += float(res.seconds)
            if plan is not None:  # the cache keeps the result, without the state
                saved, res.state = res.state, None
                res = plan.merge([res])[0]
                res.state = saved
            if res.state is not None:
                if job.rung < strategy.top:  # a top-rung state is never continued
                    states.put(job.id, res.state)
                res.state = None
            strategy.tell_job(job, res)
            state.evaluations += 1
            if res.error is not None:
                state.failures.append({"generation": strategy.generation, "job": job.id, "member": job.member,
                                       "rung": job.rung, "index": 0, "error": res.error})
            period_results.append((job, res))
            _call(hooks, "on_job", job, res)
            _call(hooks, "on_evaluations", len(period_results), period)
            n += 1
            if mode == "reproducible":
                make()
        return n

    def close_period() -> Stop | None:
        nonlocal t_period, busy_period, period_results
        now = time.perf_counter()
        dt = now - t_period
        state.elapsed = elapsed0 + (now - session_start)
        extra["busy"] = float(extra["busy"]) + busy_period
        extra["wall"] = wall0 + (now - session_start)
        results = [r for _, r in period_results]
        fit = strategy.fitnesses()
        ok = fit[fit > WORST / 2]
        fit = ok if len(ok) else fit
        top = strategy.best_top()
        counts = strategy.rung_counts()
        record = base_record(strategy.generation, results, fit, top if top > WORST / 2 else fit.max(), strategy, dt,
                             state.elapsed, busy_period, workers)
        record.update(jobs=int(strategy.told), promotions=int(strategy.promotions))
        if strategy.budgets is not None:
            record["rungs"] = counts
        record.update(problem.record_metrics(results, dt))
        rules.update(record)
        stop = rules.check(record, state.evaluations, state.elapsed, reserve())
        if stop is None and strategy.told >= total:
            stop = Stop("generations", f"all {generations} generations done", int(record["gen"]))
        commit_record(state, record, results, stop, rules, hooks, strategy)
        period_results, busy_period, t_period = [], 0.0, time.perf_counter()
        return stop

    def reserve() -> float:
        """``stop.include_final``: the problem's estimate of the final choice among today's hall
        of fame, in wall seconds on these workers (0 otherwise)."""
        if not rules.include_final or rules.max_seconds is None:
            return 0.0
        hof = list(strategy.hof)
        if not hof:
            return 0.0
        est = problem.final_seconds(np.asarray(hof, dtype=np.float32), [float(getattr(m, "seconds", 0.0)) for m in hof])
        return max(0.0, float(est)) / workers

    def out_of_time() -> bool:
        elapsed = elapsed0 + (time.perf_counter() - session_start)
        return (rules.max_seconds is not None and elapsed + reserve() >= rules.max_seconds) or \
            (rules.max_evaluations is not None and state.evaluations >= rules.max_evaluations)

    stop = None
    if state.logbook:  # a resumed run may be over already
        last = state.logbook[-1]
        stop = rules.check(last, state.evaluations, state.elapsed, reserve())
        if stop is None and strategy.told >= total:
            stop = Stop("generations", f"all {generations} generations done", int(last["gen"]))
    try:
        if stop is None:
            strategy.generation += 1
            _call(hooks, "on_generation_start", strategy.generation, period)
        while stop is None:
            make()
            dispatch()
            if tell_ready() == 0:
                if inflight:
                    for ticket, results in executor.wait():  # a task's results: one per genome
                        if ticket not in inflight:  # not this loop's (a task abandoned earlier)
                            continue
                        job, plan = inflight.pop(ticket)
                        arrived(job, results[0], plan)
                    tell_ready()
                elif strategy.told < total:
                    raise RuntimeError("asynchronous loop: results are due but no job is in flight")
            if len(period_results) >= period or strategy.told >= total or out_of_time():
                stop = close_period()
                if stop is None:
                    strategy.generation += 1
                    _call(hooks, "on_generation_start", strategy.generation, period)
    except KeyboardInterrupt:
        _call(hooks, "on_interrupt", state)
        raise
    result = final_choice(strategy, problem, executor, chunk, final_games, state, stop)
    _call(hooks, "on_end", result)
    return result
