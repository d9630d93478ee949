"""Weight-vector genomes of a fixed network, scored by the snake game."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from evonet.core import seeding
from evonet.nn import MLPSpec
from evonet.problems.base import EvalResult
from evonet.problems.network import WeightVectorProblem


@dataclass(frozen=True)
class SnakeTask:
    """A chunk of genomes and the game seeds each one plays (picklable, self-contained)."""

    spec: MLPSpec
    rules: str
    board: int
    observation: str
    weights: np.ndarray  # (n, n_params) float32
    seeds: np.ndarray  # (n, games) uint64
    engine: str = "auto"  # evaluate_weights' engine
    threads: int | None = None  # the fused engine's threads; None: every core
    device: str = "cpu"  # evaluate_weights' device: cpu, cuda, or auto (decided where the games are played)


def make_snake_rules(name: str, board: int):
    from evonet.envs.snake.rules import make_rules

    return make_rules(name, width=board, height=board)


def evaluate_snake_task(task: SnakeTask) -> list[EvalResult]:
    """Play every genome of the task on its seeds; fitness = mean score. Pure."""
    from evonet.problems.snake.evaluate import evaluate_weights

    start = time.perf_counter()
    rules = make_snake_rules(task.rules, task.board)
    try:
        res = evaluate_weights(task.spec, task.weights, rules, task.observation, task.seeds, engine=task.engine,
                               threads=task.threads, device=task.device)
    except Exception as exc:  # a broken evaluation must not kill the run
        return SnakeWeightsProblem.failed_results(task, f"{type(exc).__name__}: {exc}")
    seconds = (time.perf_counter() - start) / max(1, len(task.weights))
    out = []
    for p in range(len(task.weights)):
        scores = np.asarray(res.scores[p], dtype=np.float64)
        out.append(
            EvalResult(
                fitness=float(scores.mean()),
                weight=int(scores.size),
                metrics={
                    "max_score": float(scores.max()),
                    "steps": float(np.sum(res.steps[p])),
                    "wins": float(np.sum(res.won[p])),
                },
                seconds=seconds,
            )
        )
    return out


class SnakeWeightsProblem(WeightVectorProblem):
    """Flat weight vectors of ``spec``; fitness = mean snake score over ``games`` games."""

    #: where the fused engine plays (evaluate_weights' device); the class default serves a
    #: problem pickled into a run directory before snake.device existed
    device: str = "cpu"

    def __init__(
        self, spec: MLPSpec, rules: str, board: int, observation: str, games: int, bound: float, run_seed: int = 0,
        eval_games: int = 1000, engine: str = "auto", threads: int | None = None, device: str = "cpu",
    ):
        from evonet.problems.snake.evaluate import DEVICES, pick_engine

        if device not in DEVICES:
            raise ValueError(f"device: expected one of {', '.join(DEVICES)}, got {device!r}")
        if device == "cuda" and engine == "batched":
            raise ValueError("device: cuda runs the fused engine, not engine='batched'")
        # "fused" or "batched"; cuda: the fused engine or FusedUnsupported
        self.engine = pick_engine(spec, "fused" if device == "cuda" else engine)
        self.engine_note = "" if engine != "auto" or self.engine == "fused" else \
            " (auto: the fused engine runs softmax only as the output activation)"
        self.threads = threads
        self.device = device if self.engine == "fused" else "cpu"  # auto: the batched engine is the CPU's
        self.run_seed = int(run_seed)
        self.eval_games = int(eval_games)
        self.spec = spec
        self.rules = rules
        self.board = board
        self.observation = observation
        self.games = games
        self.n_genes = spec.n_params
        self.low, self.up = -float(bound), float(bound)

    @classmethod
    def from_config(cls, cfg) -> "SnakeWeightsProblem":
        from evonet.envs.snake.observations import OBSERVATIONS

        spec = MLPSpec(
            n_inputs=OBSERVATIONS[cfg.snake.observation],
            hidden=tuple(cfg.network.hidden),
            n_outputs=3,
            activation=cfg.network.activation,
            output_activation=cfg.network.output_activation,
        )
        threads = cfg.snake.threads
        if threads is None and cfg.executor.kind in ("ray", "processes"):
            threads = max(1, int(cfg.executor.cpus_per_eval))  # a worker's task uses the CPUs it reserved
        return cls(
            spec, cfg.snake.rules, cfg.snake.board, cfg.snake.observation, cfg.snake.games, cfg.ga.bound, cfg.seed,
            cfg.eval_games, engine=cfg.snake.engine, threads=threads, device=cfg.snake.device,
        )

    @property
    def evaluate_task(self):
        return evaluate_snake_task

    def make_tasks(self, genomes, generation, indices, chunk, purpose=seeding.PURPOSE_GAMES, games=None):
        genomes = np.asarray(genomes, dtype=np.float32).reshape(-1, self.n_genes)
        seeds = seeding.training_game_seeds(
            self.run_seed, generation, indices, games or self.games, purpose=purpose
        )
        return [
            SnakeTask(self.spec, self.rules, self.board, self.observation, genomes[i : i + chunk], seeds[i : i + chunk],
                      self.engine, self.threads, self.device)
            for i in range(0, len(genomes), chunk)
        ]

    def banner(self) -> str:
        """One line for the start of a run."""
        return (
            f"weights genome of {self.n_genes} genes (network {'-'.join(map(str, self.spec.sizes))} "
            f"{self.spec.activation}), {self.rules} {self.board}x{self.board}, observation {self.observation}, "
            f"fitness = mean score over {self.games} training games; {self._engine_text()}"
        )

    def _engine_text(self) -> str:
        if self.engine == "batched":
            return f"batched engine{self.engine_note}"
        from evonet.problems.snake.config import resolve_device

        # auto: what this process finds (each task decides where it plays)
        if self.device == "cuda" or (self.device == "auto" and resolve_device("auto") == "cuda"):
            return "fused engine on the GPU (CUDA, one thread per game)"
        return f"fused engine, {self.threads or 'all'} thread{'' if self.threads == 1 else 's'}"

    def title(self) -> str:
        return f"{self.rules} {self.board}x{self.board}"

    def final_choice(self, result) -> str:
        return f"fitness {result.best_fitness:.2f} over {result.best_games} fresh training games"

    def rules_meta(self) -> dict:
        return {"name": self.rules, "width": self.board, "height": self.board}

    def finalize(self, store, result, stream) -> dict:
        """Write the best agent (genome, .keras model, agent.json) and its benchmark table
        on evaluation seeds ``0 .. eval_games-1``; returns figures for summary.json."""
        from evonet.problems.snake.evaluate import evaluate_weights, format_summary, summarize
        from evonet.problems.snake.agent import save_agent

        store.save_genome(
            "best/genome.npz", result.best_genome, network=self.spec.to_dict(), observation=self.observation,
            rules=self.rules_meta(), final_fitness=result.best_fitness, final_games=result.best_games,
        )
        save_agent(
            store.file("best"), self.spec, result.best_genome, self.observation, self.rules_meta(),
            extra={"run_seed": self.run_seed, "selection_fitness": result.best_fitness,
                   "selection_games": result.best_games},
        )
        if self.eval_games <= 0:
            return {}
        rules = make_snake_rules(self.rules, self.board)
        seeds = seeding.evaluation_game_seeds(self.eval_games)
        res = evaluate_weights(self.spec, result.best_genome[None], rules, self.observation, seeds[None],
                               engine=self.engine, threads=self.threads, device=self.device)
        table = summarize(res.scores[0], res.steps[0], res.won[0], rules)
        desc = f"evaluation seeds 0..{self.eval_games - 1}"
        record = {"rules": self.rules_meta(), "observation": self.observation, "seeds": desc, **table,
                  "seed_start": 0, "scores": [int(x) for x in res.scores[0]]}  # per seed: evonet watch's median game
        store.write_json("best/eval.json", record)
        stream.write(format_summary(table, rules, desc) + "\n")
        return {"eval": {k: v for k, v in record.items() if k != "scores"}}  # summary.json: the table only

    def describe(self) -> dict:
        return {
            "genome": "weights",
            "n_genes": self.n_genes,
            "network": self.spec.to_dict(),
            "rules": self.rules,
            "board": f"{self.board}x{self.board}",
            "observation": self.observation,
            "games": self.games,
            "engine": self.engine,
            "device": self.device,
        }
