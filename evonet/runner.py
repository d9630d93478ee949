"""``evonet run``: wire a validated config into problem, strategy, executor, loop and store."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from evonet import config as config_mod
from evonet import seeding
from evonet.executors import make_executor
from evonet.loop import RunResult, run_evolution
from evonet.problems import make_problem
from evonet.store import RunStore, default_run_dir
from evonet.strategy import GeneticAlgorithm


class ConsoleLogger:
    """One live line per generation."""

    def __init__(self, stream: TextIO, generations: int):
        self.stream = stream
        self.width = len(str(generations))
        self.generations = generations

    def on_generation(self, rec: dict, strategy) -> None:
        self.stream.write(
            f"gen {rec['gen']:>{self.width}}/{self.generations}  evals {rec['evals']:>5}  "
            f"best {rec['best']:7.2f}  mean {rec['mean']:7.2f}  std {rec['std']:6.2f}  "
            f"best game {rec['best_game']:5.0f}  {rec['seconds']:6.2f} s  "
            f"{rec['evals_per_s']:8.1f} evals/s  {rec['env_steps_per_s'] / 1e6:5.2f} M steps/s"
            + (f"  failed {rec['failed']}" if rec["failed"] else "")
            + "\n"
        )
        self.stream.flush()


class StoreLogger:
    """Appends each generation to ``logbook.jsonl`` and failures to ``failures.jsonl``."""

    def __init__(self, store: RunStore):
        self.store = store

    def on_generation(self, rec: dict, strategy) -> None:
        self.store.append_jsonl("logbook.jsonl", rec)


def run_experiment(cfg, out: str | Path | None = None, stream: TextIO = sys.stdout) -> tuple[Path, RunResult]:
    """Run a validated experiment; returns the run directory and the result."""
    problem = make_problem(cfg)
    store = RunStore.create(out or default_run_dir(cfg.name, cfg.seed))
    store.write_text("config.yaml", config_mod.dump_yaml(cfg))
    store.write_json("problem.json", problem.describe())
    t_start = time.perf_counter()

    genomes = problem.init_genomes(seeding.generator(cfg.seed, seeding.PURPOSE_INIT), cfg.ga.population)
    strategy = GeneticAlgorithm(
        cfg.ga, genomes, problem.low, problem.up, seeding.generator(cfg.seed, seeding.PURPOSE_STRATEGY)
    )
    stream.write(
        f"evonet run {cfg.name}: seed {cfg.seed}, {problem.banner()}, {cfg.ga.algorithm} population "
        f"{cfg.ga.population}, {cfg.ga.generations} generations\n  run directory: {store.path}\n"
    )
    stream.flush()
    hooks = [ConsoleLogger(stream, cfg.ga.generations), StoreLogger(store)]
    with make_executor(cfg) as executor:
        result = run_evolution(
            strategy, problem, executor, cfg.ga.generations, cfg.executor.chunk, cfg.ga.final_games, hooks
        )
    evolve_seconds = time.perf_counter() - t_start

    store.write_csv("logbook.csv", result.logbook)
    for failure in result.failures:
        store.append_jsonl("failures.jsonl", failure)
    store.plot_fitness(result.logbook, title=f"{cfg.name}: {problem.title()}, seed {cfg.seed}")
    store.write_json("best/candidates.json", result.candidates)
    stream.write(
        f"best of hall of fame: fitness {result.best_fitness:.2f} over {result.best_games} fresh training games; "
        f"evolution took {evolve_seconds:.1f} s\n"
    )
    summary = {
        "name": cfg.name,
        "seed": cfg.seed,
        "generations": cfg.ga.generations,
        "evaluations": int(sum(r["evals"] for r in result.logbook)),
        "evolve_seconds": round(evolve_seconds, 2),
        "final_fitness": result.best_fitness,
        "final_games": result.best_games,
        "failures": len(result.failures),
    }
    summary.update(problem.finalize(store, result, stream))
    summary["total_seconds"] = round(time.perf_counter() - t_start, 2)
    store.write_json("summary.json", summary)
    stream.write(f"wrote {store.path}\n")
    stream.flush()
    return store.path, result
