"""Asynchronous evolution (aging evolution + ASHA promotions) and its loop: reproducible on any
number of workers and after resume, greedy when asked, multi-fidelity promotions that continue
the parent's saved state, and the one-line errors of bad schedules."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

from evonet.core import config, seeding
from evonet.core.async_loop import MemoryStates, run_async
from evonet.core.errors import ConfigError
from evonet.core.problem import Problem
from evonet.core.types import EvalResult
from evonet.executors import LocalExecutor, SimulatedExecutor
from evonet.problems.function import FunctionProblem
from evonet.strategies.aging import AgingEvolution, rung_budgets
from evonet.strategies.ga import make_strategy

TIMING = {"seconds", "evals_per_s", "elapsed", "utilization"}


def sphere(genomes, seeds):
    return -(np.asarray(genomes, dtype=np.float64) ** 2).sum(axis=1)


def strip(logbook):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in logbook]


def ga_cfg(**ga):
    base = {"algorithm": "aging", "population": 12, "generations": 6, "lag": 6, "final_games": 1,
            "selection": {"name": "tournament", "tournsize": 4}}
    base.update(ga)
    return config.from_dict({"ga": base}).ga


def aging(problem, ga, extra: int = 8, seed: int = 0):
    genomes = problem.init_genomes(seeding.generator(seed, seeding.PURPOSE_INIT), ga.population + extra)
    return make_strategy(ga, genomes, problem.low, problem.up, seeding.generator(seed, seeding.PURPOSE_STRATEGY),
                         key=problem.genome_key)


class BudgetSphere(Problem):
    """A multi-fidelity problem: a genome's fitness at budget b is -|g|^2 - 1/b, and its state is
    the budget it reached (8 bytes). A task records the state it continued from, so a test can
    check that a promotion continues its parent's training."""

    n_genes, low, up = 4, -2.0, 2.0
    fidelity_unit = "steps"
    fidelity_limit_field = "max steps"

    def init_genomes(self, rng, n):
        return rng.uniform(-1, 1, (n, self.n_genes))

    def fidelity_limit(self):
        return 27.0

    def make_tasks(self, genomes, generation, indices, chunk, purpose=None, games=None):
        return [("full", np.asarray(g, dtype=np.float64), None, None) for g in genomes]

    def make_budget_task(self, genome, job, budget, state):
        return ("budget", np.asarray(genome, dtype=np.float64), float(budget), state)

    @property
    def evaluate_task(self):
        return budget_task

    def failed_results(self, task, error):
        return [EvalResult(float("-inf"), 0, error=error)]


def budget_task(task):
    kind, g, budget, state = task
    base = -float((g ** 2).sum())
    if kind == "full":
        return [EvalResult(base)]
    start = struct.unpack("<d", state)[0] if state is not None else 0.0
    if budget > 1 and int(abs(g[2]) * 1e6) % 4 == 0:  # a quarter of the promotions fail
        return [EvalResult(float("-inf"), 0, error="RuntimeError: diverged", metrics={"from": start})]
    res = EvalResult(base - 1.0 / budget, metrics={"from": start, "to": budget})
    res.state = struct.pack("<d", budget)
    return [res]


# ----------------------------------------------------------------------------- reproducible mode


def test_reproducible_mode_gives_the_same_search_on_any_number_of_workers():
    problem = FunctionProblem(sphere, 6, run_seed=0)
    durations = 1.5 * np.exp(0.3 * np.random.default_rng(1).standard_normal(500))
    runs = []
    for ex in (LocalExecutor(), SimulatedExecutor(1, durations), SimulatedExecutor(3, durations, seed=5),
               SimulatedExecutor(7, durations, seed=9)):
        ga = ga_cfg()
        s = aging(problem, ga)
        r = run_async(s, problem, ex, ga.generations, 1, 1, mode="reproducible", lag=ga.lag, period=ga.population)
        runs.append((strip(r.logbook), r.best_genome.tolist(), r.best_fitness, s.get_state()["member_genomes"]))
    for other in runs[1:]:
        assert other[0] == runs[0][0] and other[1] == runs[0][1] and other[2] == runs[0][2]
        np.testing.assert_array_equal(other[3], runs[0][3])
    assert runs[0][0][-1]["best"] > runs[0][0][0]["best"]  # it does evolve
    assert len(runs[0][0]) == 7 and all(r["evals"] == 12 for r in runs[0][0])


def test_greedy_mode_keeps_every_worker_busy_and_evolves():
    problem = FunctionProblem(sphere, 6, run_seed=0)
    durations = 1.5 * np.exp(0.3 * np.random.default_rng(1).standard_normal(500))
    util = {}
    for mode, lag in (("greedy", 0), ("reproducible", 1)):
        ga = ga_cfg(population=16, generations=15, mode=mode, lag=max(lag, 1))
        ex = SimulatedExecutor(8, durations, seed=2)
        s = aging(problem, ga, extra=8)
        r = run_async(s, problem, ex, ga.generations, 1, 1, mode=mode, lag=lag, period=ga.population)
        util[mode] = ex.busy / (8 * ex.clock)
        assert r.logbook[-1]["best"] > r.logbook[0]["best"]
        assert r.evaluations == 16 * 16
    # a lag of 1 lets two jobs out at once: 6 of the 8 workers idle; greedy fills them all
    assert util["greedy"] > 0.85 > 0.3 > util["reproducible"]


def test_an_api_run_extended_on_resume_equals_the_longer_uninterrupted_run(tmp_path):
    import evonet
    from evonet.core.runner import resume_experiment

    kw = dict(n_genes=6, fitness=sphere, algorithm="aging", population=10, seed=4, tensorboard=False,
              progress="none", stream=io.StringIO(), ga={"lag": 5})
    evonet.evolve(generations=7, out=tmp_path / "a", **kw)
    evonet.evolve(generations=3, out=tmp_path / "b", **kw)
    resume_experiment(tmp_path / "b", ["ga.generations=7"], stream=io.StringIO())
    logs = [strip([json.loads(x) for x in (tmp_path / d / "logbook.jsonl").read_text().splitlines()]) for d in "ab"]
    assert logs[0] == logs[1] and len(logs[0]) == 8
    jobs = [[{k: v for k, v in json.loads(x).items() if k not in ("seconds", "t")}
             for x in (tmp_path / d / "jobs.jsonl").read_text().splitlines()] for d in "ab"]
    assert jobs[0] == jobs[1] and [j["job"] for j in jobs[0]] == list(range(80))
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert 0 < summary["utilization"] <= 1 and summary["asynchronous"] == {"mode": "reproducible", "lag": 5}


# ----------------------------------------------------------------------------- multi-fidelity


def test_rungs_follow_the_reduction_factor():
    assert rung_budgets(1, 27, 3) == [1, 3, 9, 27]
    assert rung_budgets(1, 20, 3) == [1, 3, 9, 20]
    assert rung_budgets(2, 2, 3) == [2]
    assert rung_budgets(1, 10, 1.5, integer=True) == [1, 2, 3, 5, 8, 10]
    with pytest.raises(ValueError):
        rung_budgets(1, 9, 1.0)


def run_budget(workers=1, mode="reproducible", brackets=1, generations=8, seed=0, states=None):
    problem = BudgetSphere()
    ga = ga_cfg(population=9, generations=generations, lag=4, mode=mode,
                fidelity={"min_budget": 1, "max_budget": 27, "reduction_factor": 3, "brackets": brackets})
    s = aging(problem, ga, seed=seed)
    ex = SimulatedExecutor(workers, [1.0, 1.3, 2.0], seed=seed) if workers > 1 else LocalExecutor()
    jobs = []

    class Log:
        def __getattr__(self, name):
            return lambda *a: jobs.append((a[0], a[1])) if name == "on_job" else None

    r = run_async(s, problem, ex, ga.generations, 1, 1, hooks=[Log()], mode=mode, lag=ga.lag, period=ga.population,
                  states=states)
    return r, s, jobs


def test_asha_promotes_the_top_third_and_continues_from_the_parent_state():
    r, s, jobs = run_budget()
    assert s.budgets == [1, 3, 9, 27]
    counts = s.rung_counts()
    assert counts[0] > counts[1] > counts[2] > 0 and counts[3] > 0
    by_id = {job.id: (job, res) for job, res in jobs}
    for job, res in jobs:
        if job.rung == 0:
            assert job.parent is None and (res.error is not None or res.metrics["from"] == 0.0)
        else:  # a promotion: trained from the budget its parent job reached, never from scratch
            parent, _ = by_id[job.parent]
            assert parent.member == job.member and parent.rung == job.rung - 1
            assert res.metrics["from"] == s.budgets[job.rung - 1]
    # ASHA's rule: a promotion from rung r ranked in the top third of rung r's results that were
    # told when the job was made (reproducible mode: jobs k - lag and later were not), never failed
    lag = 4
    for job, res in jobs:
        if job.rung == 0:
            continue
        known = [(r.fitness if r.error is None else -np.inf, j.member) for j, r in jobs
                 if j.rung == job.rung - 1 and j.id < job.id - lag]
        top = sorted(known, key=lambda t: (-t[0], t[1]))[:len(known) // 3]
        assert job.member in {m for _, m in top} and np.isfinite(dict((m, f) for f, m in known)[job.member])
    failed = [(job, res) for job, res in jobs if res.error]
    assert failed and all("diverged" in res.error for _, res in failed)  # recorded, the search went on
    # the hall of fame: members that reached the top rung, best first
    top = sorted((res.fitness for job, res in jobs if job.rung == 3 and res.error is None), reverse=True)
    assert [ind.fitness.values[0] for ind in s.hof] == top[:len(s.hof)]
    assert r.logbook[-1]["rungs"] == counts and r.logbook[-1]["promotions"] == s.promotions


def test_multi_fidelity_is_reproducible_across_workers_and_brackets_start_higher():
    a, sa, _ = run_budget(workers=1)
    b, sb, _ = run_budget(workers=4)
    assert strip(a.logbook) == strip(b.logbook) and a.best_genome.tolist() == b.best_genome.tolist()
    _, s2, jobs = run_budget(brackets=2)
    starts = {job.member: job.rung for job, _ in jobs if job.parent is None}
    assert set(starts.values()) == {0, 1}  # bracket 1 starts its members at rung 1 (3 steps)
    assert all(starts[m] == m % 2 for m in starts)


def test_states_go_to_the_state_store_and_the_strategy_round_trips():
    states = MemoryStates()
    _, s, jobs = run_budget(states=states)
    saved = {j for j in states.data}
    assert saved and all(struct.unpack("<d", states.data[j])[0] == next(job.budget for job, _ in jobs if job.id == j)
                         for j in saved)
    assert not any(job.rung == 3 for job, _ in jobs if job.id in saved)  # a top-rung state is never continued
    state = s.get_state()
    again = AgingEvolution(s.cfg, s.warmup, -2.0, 2.0, np.random.default_rng(123), budgets=s.budgets, eta=3)
    again.set_state(state)
    assert again.next_job().to_dict().keys() == s.next_job().to_dict().keys()
    np.testing.assert_array_equal(again.get_state()["member_genomes"], s.get_state()["member_genomes"])
    other = AgingEvolution(s.cfg, s.warmup, -2.0, 2.0, np.random.default_rng(0), budgets=[1, 3, 9], eta=3)
    with pytest.raises(ValueError, match="rung schedule differs"):
        other.set_state(state)


class TimedBudgetSphere(BudgetSphere):
    """BudgetSphere whose jobs cost the steps they train (seconds = budget - the state's budget),
    and whose final choice is estimated at 100 times the hall of fame's seconds."""

    def __init__(self):
        self.asked: list[list[float]] = []

    @property
    def evaluate_task(self):
        return timed_budget_task

    def final_seconds(self, genomes, seconds):
        assert len(genomes) == len(seconds)
        self.asked.append([float(s) for s in seconds])
        return 100.0 * sum(seconds)


def timed_budget_task(task):
    _, _, budget, state = task
    results = budget_task(task)
    start = struct.unpack("<d", state)[0] if state is not None else 0.0
    for r in results:
        r.seconds = float(budget) - start
    return results


@pytest.mark.parametrize("include_final", [False, True])
def test_include_final_stops_the_search_by_the_estimate_of_the_final_choice(include_final):
    from evonet.core.stopping import StoppingRules

    problem = TimedBudgetSphere()
    ga = ga_cfg(population=9, generations=8, lag=4, hall_of_fame=3,
                fidelity={"min_budget": 1, "max_budget": 27, "reduction_factor": 3, "brackets": 1})
    s = aging(problem, ga)
    rules = StoppingRules(max_seconds=2500.0, include_final=include_final)  # 25 steps of training: the budget
    r = run_async(s, problem, LocalExecutor(), ga.generations, 1, 1, stopping=rules, lag=ga.lag, period=ga.population)
    if not include_final:
        assert r.stop["rule"] == "generations" and r.evaluations == 9 * 9 and not problem.asked
        return
    assert r.stop["rule"] == "max_seconds" and "estimated for the final choice" in r.stop["reason"]
    assert r.evaluations < 9 * 9 and len(problem.asked[-1]) == 3
    # a member's seconds add up over its jobs: a continuation trains from its parent's budget
    assert set(problem.asked[-1]) <= {1.0, 3.0, 9.0, 27.0}
    first = next(i for i, a in enumerate(problem.asked) if 100.0 * sum(a) >= 2500.0)
    assert first > 0 and all(a == problem.asked[first] for a in problem.asked[first:])  # it stopped right there
    state = s.get_state()
    again = AgingEvolution(s.cfg, s.warmup, -2.0, 2.0, np.random.default_rng(1), budgets=s.budgets, eta=3)
    again.set_state(state)
    assert [m.seconds for m in again.members] == [m.seconds for m in s.members]
    assert [getattr(m, "seconds") for m in again.hof] == [getattr(m, "seconds") for m in s.hof]


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("ga, fragment", [
    ({"fidelity": {"min_budget": 1, "max_budget": 9, "reduction_factor": 1}}, "ga.fidelity.reduction_factor: must be > 1"),
    ({"fidelity": {"min_budget": 10, "max_budget": 9}}, "ga.fidelity.min_budget: 10 is above ga.fidelity.max_budget 9"),
    ({"fidelity": {"min_budget": 0, "max_budget": 9}}, "ga.fidelity.min_budget: must be > 0"),
    ({"fidelity": {"min_budget": 1}}, "ga.fidelity.max_budget: required"),
    ({"fidelity": {"min_budget": 1, "max_budget": 9, "eta": 3}}, "ga.fidelity.eta: unknown key"),
    ({"fidelity": {"min_budget": 1, "max_budget": 9, "brackets": 1.5}}, "ga.fidelity.brackets: must be a whole number"),
    ({"algorithm": "mu_plus_lambda", "fidelity": {"min_budget": 1, "max_budget": 9}},
     "ga.fidelity: multi-fidelity needs ga.algorithm: aging"),
    ({"selection": {"name": "best"}}, "ga.selection.name: aging evolution samples a tournament"),
])
def test_bad_schedules_are_one_line_config_errors(ga, fragment):
    base = {"algorithm": "aging", "population": 8}
    base.update(ga)
    with pytest.raises(ConfigError) as err:
        config.from_dict({"ga": base})
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("data, fragment", [
    ({"ga": {"algorithm": "aging"}, "stop": {"include_final": True}}, "stop.include_final: needs stop.max_seconds"),
    ({"ga": {"algorithm": "mu_plus_lambda"}, "stop": {"include_final": True, "max_seconds": 60}},
     "stop.include_final: needs ga.algorithm: aging"),
])
def test_include_final_needs_a_time_budget_and_the_asynchronous_loop(data, fragment):
    with pytest.raises(ConfigError) as err:
        config.from_dict(data)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_aging_refuses_chunks_and_multi_objective_search():
    with pytest.raises(ConfigError, match="executor.chunk: aging evolution sends one genome per task"):
        config.from_dict({"ga": {"algorithm": "aging"}, "executor": {"chunk": 4}})
    with pytest.raises(ConfigError, match="needs ga.selection.name: nsga2 and ga.algorithm: mu_plus_lambda"):
        config.from_dict({"genome": "hyperparameters", "search": {"objectives": "accuracy+params"},
                          "ga": {"algorithm": "aging", "selection": {"name": "nsga2"}}})


def test_a_problem_without_a_budget_unit_and_a_budget_over_the_limit_are_refused():
    cfg = config.from_dict({"ga": {"algorithm": "aging", "fidelity": {"min_budget": 1, "max_budget": 9}}})
    with pytest.raises(ConfigError, match="ga.fidelity: FunctionProblem .* has no evaluation budget"):
        config.check_fidelity(cfg, FunctionProblem(sphere, 3))
    cfg = config.from_dict({"ga": {"algorithm": "aging", "fidelity": {"min_budget": 1, "max_budget": 30}}})
    with pytest.raises(ConfigError, match=r"ga.fidelity.max_budget: 30 steps is above the problem's limit, 27 \(max steps\)"):
        config.check_fidelity(cfg, BudgetSphere())
    cfg = config.from_dict({"ga": {"algorithm": "aging", "fidelity": {"min_budget": 1.5, "max_budget": 9}}})
    with pytest.raises(ConfigError, match="ga.fidelity.min_budget: budgets are whole steps, got 1.5"):
        config.check_fidelity(cfg, BudgetSphere())
