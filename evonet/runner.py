"""``evonet run``: wire a validated config into problem, strategy, executor, loop and store."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import numpy as np

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


def evaluate_agent_table(spec, weights, rules_name: str, board: int, observation: str, games: int, start: int = 0):
    """Benchmark figures of one network on evaluation seeds ``start .. start+games-1``."""
    from evonet.envs.snake.rules import make_rules
    from evonet.evaluators.snake import evaluate_weights, summarize

    rules = make_rules(rules_name, width=board, height=board)
    seeds = seeding.evaluation_game_seeds(games, start)
    res = evaluate_weights(spec, np.asarray(weights, np.float32)[None], rules, observation, seeds[None])
    summary = summarize(res.scores[0], res.steps[0], res.won[0], rules)
    return rules, summary


def seeds_desc(games: int, start: int = 0) -> str:
    return f"evaluation seeds {start}..{start + games - 1}"


def run_experiment(cfg, out: str | Path | None = None, stream: TextIO = sys.stdout) -> tuple[Path, RunResult]:
    """Run a validated experiment; returns the run directory and the result."""
    from evonet.evaluators.snake import format_summary
    from evonet.snake import save_agent

    problem = make_problem(cfg)
    store = RunStore.create(out or default_run_dir(cfg.name, cfg.seed))
    store.write_text("config.yaml", config_mod.dump_yaml(cfg))
    store.write_json("problem.json", problem.describe())
    t_start = time.perf_counter()

    genomes = problem.init_genomes(seeding.generator(cfg.seed, seeding.PURPOSE_INIT), cfg.ga.population)
    strategy = GeneticAlgorithm(
        cfg.ga, genomes, problem.low, problem.up, seeding.generator(cfg.seed, seeding.PURPOSE_STRATEGY)
    )
    p = problem.describe()
    stream.write(
        f"evonet run {cfg.name}: seed {cfg.seed}, {p['genome']} genome of {p['n_genes']} genes "
        f"(network {'-'.join(map(str, problem.spec.sizes))} {problem.spec.activation}), "
        f"{cfg.snake.rules} {p['board']}, observation {cfg.snake.observation}, "
        f"{cfg.snake.games} games per evaluation, {cfg.ga.algorithm} population {cfg.ga.population}, "
        f"{cfg.ga.generations} generations\n  run directory: {store.path}\n"
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
    store.plot_fitness(
        result.logbook,
        title=f"{cfg.name}: {cfg.snake.rules} {p['board']}, seed {cfg.seed}",
    )
    rules_meta = {"name": cfg.snake.rules, "width": cfg.snake.board, "height": cfg.snake.board}
    store.save_genome(
        "best/genome.npz", result.best_genome, network=problem.spec.to_dict(), observation=cfg.snake.observation,
        rules=rules_meta, final_fitness=result.best_fitness, final_games=result.best_games,
    )
    save_agent(
        store.file("best"), problem.spec, result.best_genome, cfg.snake.observation, rules_meta,
        extra={"run": cfg.name, "seed": cfg.seed, "selection_fitness": result.best_fitness,
               "selection_games": result.best_games},
    )
    store.write_json("best/candidates.json", result.candidates)

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
    stream.write(
        f"best of hall of fame: {result.best_fitness:.2f} mean score over {result.best_games} fresh training games; "
        f"evolution took {evolve_seconds:.1f} s\n"
    )
    if cfg.eval_games > 0:
        rules, table = evaluate_agent_table(
            problem.spec, result.best_genome, cfg.snake.rules, cfg.snake.board, cfg.snake.observation, cfg.eval_games
        )
        desc = seeds_desc(cfg.eval_games)
        store.write_json("best/eval.json", {"rules": rules_meta, "seeds": desc, **table})
        summary["eval"] = {"rules": rules_meta, "seeds": desc, **table}
        stream.write(format_summary(table, rules, desc) + "\n")
    summary["total_seconds"] = round(time.perf_counter() - t_start, 2)
    store.write_json("summary.json", summary)
    stream.write(f"wrote {store.path}\n")
    stream.flush()
    return store.path, result
