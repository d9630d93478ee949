"""Stopping rules: target fitness, stagnation, wall-clock and evaluation budgets; the
reason is recorded in the logbook, the console and summary.json."""

from __future__ import annotations

import io
import json

import pytest

from evonet import config, seeding
from evonet.executors import LocalExecutor
from evonet.loop import run_evolution
from evonet.problems import make_problem
from evonet.stopping import StoppingRules
from evonet.strategy import GeneticAlgorithm


def rec(gen, best):
    return {"gen": gen, "best": best}


def test_rules_in_isolation():
    rules = StoppingRules(stagnation=4)  # best set at generation 1; 2, 3, 4 and 5 bring nothing better
    for gen, best in enumerate([1.0, 2.0, 2.0, 1.5, 2.0]):
        rules.update(rec(gen, best))
        assert rules.check(rec(gen, best), 0, 0.0) is None
    rules.update(rec(5, 1.9))
    stop = rules.check(rec(5, 1.9), 0, 0.0)
    assert stop.rule == "stagnation" and "no improvement of best for 4 generations" in stop.reason
    assert StoppingRules(target_fitness=2.0).check(rec(0, 2.0), 0, 0.0).rule == "target_fitness"
    assert StoppingRules(target_fitness=2.0).check(rec(0, 1.99), 0, 0.0) is None
    assert StoppingRules(max_evaluations=10).check(rec(1, 0), 10, 0.0).rule == "max_evaluations"
    assert StoppingRules(max_evaluations=10).check(rec(1, 0), 9, 0.0) is None
    assert StoppingRules(max_seconds=5).check(rec(1, 0), 0, 5.1).rule == "max_seconds"
    # state round trip (checkpoints)
    again = StoppingRules(stagnation=4)
    again.set_state(json.loads(json.dumps(rules.get_state())))
    assert again.check(rec(5, 1.9), 0, 0.0).reason == stop.reason


def evolve(stop_overrides, generations=30):
    cfg = config.load(None, ["ga.algorithm=mu_plus_lambda", "ga.population=8", "snake.games=2", "ga.final_games=4", "ga.hall_of_fame=3",
                             f"ga.generations={generations}", *stop_overrides])
    problem = make_problem(cfg)
    genomes = problem.init_genomes(seeding.generator(cfg.seed, seeding.PURPOSE_INIT), cfg.ga.population)
    ga = GeneticAlgorithm(cfg.ga, genomes, problem.low, problem.up,
                          seeding.generator(cfg.seed, seeding.PURPOSE_STRATEGY))
    return run_evolution(ga, problem, LocalExecutor(), cfg.ga.generations, 0, cfg.ga.final_games,
                         stopping=StoppingRules.from_config(cfg.stop))


def test_target_fitness_stops_at_the_first_generation_reaching_it():
    free = evolve([], generations=10)
    target = free.logbook[4]["best"]
    first = next(r["gen"] for r in free.logbook if r["best"] >= target)
    result = evolve([f"stop.target_fitness={target}"], generations=10)
    assert result.stop["rule"] == "target_fitness" and result.logbook[-1]["gen"] == first
    assert "stop" in result.logbook[-1] and "target fitness" in result.logbook[-1]["stop"]
    assert all("stop" not in r for r in result.logbook[:-1])


def test_stagnation_evaluation_and_time_budgets():
    result = evolve(["stop.stagnation=2"])
    best_gen = max(range(len(result.logbook)), key=lambda i: (result.logbook[i]["best"], -i))
    assert result.stop["rule"] == "stagnation"
    assert result.logbook[-1]["gen"] - result.stop["generation"] == 0
    assert "no improvement of best for 2 generations" in result.stop["reason"]
    assert result.logbook[-1]["gen"] >= best_gen + 2

    result = evolve(["stop.max_evaluations=40"])  # 8 + 16 + 16 = 40 after generation 2
    assert result.stop["rule"] == "max_evaluations" and result.logbook[-1]["gen"] == 2 and result.evaluations == 40

    result = evolve(["stop.max_seconds=0.001"])
    assert result.stop["rule"] == "max_seconds" and len(result.logbook) == 1

    result = evolve([], generations=3)
    assert result.stop["rule"] == "generations" and result.logbook[-1]["gen"] == 3


def test_the_reason_reaches_console_summary_and_logbook(tmp_path):
    from evonet.runner import run_experiment

    cfg = config.load(None, ["ga.algorithm=mu_plus_lambda", "ga.population=8", "snake.games=2", "ga.final_games=4", "ga.hall_of_fame=3",
                             "ga.generations=30", "eval_games=0", "log.tensorboard=false",
                             "stop.max_evaluations=40"])
    out = io.StringIO()
    run_dir, result = run_experiment(cfg, tmp_path / "run", stream=out)
    assert "stopped: evaluation budget (40 evaluations >= 40)" in out.getvalue()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stopped"]["rule"] == "max_evaluations" and summary["generations_done"] == 2
    last = json.loads((run_dir / "logbook.jsonl").read_text().splitlines()[-1])
    assert last["stop"].startswith("evaluation budget")
    assert "stop" in (run_dir / "logbook.csv").read_text().splitlines()[0]
    assert "stopped: evaluation budget" in (run_dir / "run.log").read_text()


@pytest.mark.parametrize("overrides, fragment", [
    (["stop.stagnation=0"], "stop.stagnation: must be >= 1"),
    (["stop.max_seconds=-1"], "stop.max_seconds: must be >= 0.001"),
    (["stop.target_fitness=high"], "stop.target_fitness: expected a number"),
    (["stop.patience=3"], "stop.patience: unknown key"),
    (["checkpoint.every=0"], "checkpoint.every: must be >= 1"),
    (["log.progress=fancy"], "log.progress: unknown value 'fancy'"),
])
def test_bad_stop_checkpoint_and_log_settings(overrides, fragment):
    from evonet.errors import ConfigError

    with pytest.raises(ConfigError, match=None) as err:
        config.load(None, overrides)
    assert fragment in str(err.value)
