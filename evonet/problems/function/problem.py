"""Genomes of ``n_genes`` floats scored by a user's fitness function.

The function is batched, as evosax's and EvoTorch's vectorized problems are::

    def fitness(genomes, seeds):   # genomes: (n, n_genes) float32; seeds: (n,) uint64
        return values              # (n,) finite floats, maximised

``seeds`` gives every row its own seed derived from (run seed, generation, index), so a
noisy fitness (a simulation, a game) draws the same noise whatever the number of workers
or the chunking; a deterministic function ignores it. One call covers one task (a chunk
of the population): a task's rows are independent, so the results do not depend on how
the population is cut.

What the function returns is checked: a wrong shape or type fails every genome of the
task with that error; a NaN or infinite value fails that genome. Failed evaluations are
recorded (``failures.jsonl``) and the run goes on with the worst fitness for them.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from evonet.core import seeding
from evonet.core.errors import ConfigError
from evonet.problems.base import EvalResult, Problem


@dataclass(frozen=True)
class FunctionTask:
    """A chunk of genomes, their seeds and the function (picklable by cloudpickle)."""

    fitness: Callable
    genomes: np.ndarray  # (n, n_genes) float32
    seeds: np.ndarray  # (n, repeats) uint64
    batched: bool = True


def _one_line(text: Any, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_values(values: Any, n: int) -> np.ndarray:
    """``values`` as a float64 array of shape (n,), else a ValueError naming what is wrong."""
    if isinstance(values, (str, bytes)) or values is None:
        raise ValueError(f"fitness returned {type(values).__name__}, expected an array of {n} numbers")
    try:
        arr = np.asarray(values)
    except Exception:  # noqa: BLE001 - ragged lists and odd objects
        raise ValueError(f"fitness returned {type(values).__name__}, expected an array of {n} numbers") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"fitness returned values of type {arr.dtype}, expected numbers")
    if np.iscomplexobj(arr):
        raise ValueError("fitness returned complex numbers, expected real numbers")
    if arr.shape not in ((n,), (n, 1)):
        raise ValueError(f"fitness returned shape {arr.shape} for {n} genomes, expected ({n},)")
    return arr.reshape(n).astype(np.float64)


def _call(task: FunctionTask, genomes: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    n = len(genomes)
    if task.batched:
        return check_values(task.fitness(genomes, seeds), n)
    return check_values([task.fitness(genomes[i], int(seeds[i])) for i in range(n)], n)


def evaluate_function_task(task: FunctionTask) -> list[EvalResult]:
    """Score every genome of the task ``repeats`` times (one batched call per repeat). Pure."""
    start = time.perf_counter()
    n, repeats = task.seeds.shape
    try:
        values = np.stack([_call(task, task.genomes, task.seeds[:, r].copy()) for r in range(repeats)], axis=1)
    except Exception as exc:  # noqa: BLE001 - a user function must not kill the run
        return failed_results(task, f"{type(exc).__name__}: {_one_line(exc)}")
    seconds = (time.perf_counter() - start) / max(1, n)
    out = []
    for row in values:
        if not np.all(np.isfinite(row)):
            bad = row[~np.isfinite(row)][0]
            out.append(EvalResult(fitness=float("-inf"), weight=0, seconds=seconds,
                                  error=f"fitness returned {bad} (not a finite number)"))
            continue
        out.append(EvalResult(fitness=float(row.mean()), weight=int(repeats), seconds=seconds,
                              metrics={"max_score": float(row.max())}))
    return out


def failed_results(task: FunctionTask, error: str) -> list[EvalResult]:
    return [EvalResult(fitness=float("-inf"), weight=0, error=error) for _ in range(len(task.genomes))]


def import_function(path: str, where: str = "function.fitness") -> Callable:
    """``"package.module:function"`` -> the function (a ConfigError names what is missing)."""
    if not isinstance(path, str) or ":" not in path:
        raise ConfigError(f"{where}: expected module:function, e.g. mypkg.fitness:sphere, got {path!r}")
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import module {module_name!r} ({_one_line(exc)})") from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ConfigError(f"{where}: module {module_name!r} has no {attr!r}")
    if not callable(fn):
        raise ConfigError(f"{where}: {path} is not callable")
    return fn


class FunctionProblem(Problem):
    """``n_genes`` floats in ``[low, up]``; fitness = the mean of ``repeats`` calls of ``fitness``.

    ``batched=False``: ``fitness(genome (n_genes,), seed int) -> float``, called per genome.
    ``noisy``: the fitness is random (it uses its seeds); the final choice among the hall of
    fame then re-scores every member on ``final_games`` fresh seeds (else once).
    """

    def __init__(self, fitness: Callable, n_genes: int, *, low: float = -5.0, up: float = 5.0, run_seed: int = 0,
                 init: str = "uniform", init_scale: float = 1.0, batched: bool = True, repeats: int = 1,
                 noisy: bool = False, name: str | None = None, init_genomes: Callable | None = None):
        if not callable(fitness):
            raise ConfigError(f"fitness: expected a function (genomes, seeds) -> values, got {type(fitness).__name__}")
        if isinstance(n_genes, bool) or not isinstance(n_genes, (int, np.integer)) or n_genes < 1:
            raise ConfigError(f"n_genes: expected an integer >= 1, got {n_genes!r}")
        if init not in ("uniform", "normal", "zeros"):
            raise ConfigError(f"init: unknown value {init!r}; choose from uniform, normal, zeros")
        if not low < up:
            raise ConfigError(f"bound: the genes' box must have low < up, got [{low}, {up}]")
        self.fitness = fitness
        self.n_genes = int(n_genes)
        self.low, self.up = float(low), float(up)
        self.run_seed = int(run_seed)
        self.init = init
        self.init_scale = float(init_scale)
        self.batched = bool(batched)
        self.repeats = int(repeats)
        self.noisy = bool(noisy)
        self.name = name or getattr(fitness, "__qualname__", None) or type(fitness).__name__
        self._init_genomes = init_genomes  # (rng, n) -> (n, n_genes): e.g. the weights of a Keras model

    fitness_digits = 4
    continuous = True

    @classmethod
    def from_config(cls, cfg) -> "FunctionProblem":
        f = cfg.function
        if not f.fitness:
            raise ConfigError("function.fitness: genome function needs a fitness function (module:function)")
        fn = import_function(f.fitness)
        return cls(fn, f.n_genes, low=-cfg.ga.bound, up=cfg.ga.bound, run_seed=cfg.seed, init=f.init,
                   init_scale=f.init_scale, name=f.fitness)

    # ------------------------------------------------------------------ Problem protocol

    @property
    def evaluate_task(self):
        return evaluate_function_task

    @staticmethod
    def failed_results(task: FunctionTask, error: str) -> list[EvalResult]:
        return failed_results(task, error)

    def init_genomes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self._init_genomes is not None:
            genomes = np.asarray(self._init_genomes(rng, n), dtype=np.float32)
        elif self.init == "zeros":
            genomes = np.zeros((n, self.n_genes), dtype=np.float32)
        elif self.init == "normal":
            genomes = rng.normal(0.0, self.init_scale, size=(n, self.n_genes)).astype(np.float32)
        else:
            genomes = rng.uniform(-self.init_scale, self.init_scale, size=(n, self.n_genes)).astype(np.float32)
        return np.clip(genomes, self.low, self.up)

    def make_tasks(self, genomes, generation, indices, chunk, purpose=seeding.PURPOSE_GAMES, games=None):
        genomes = np.asarray(genomes, dtype=np.float32).reshape(-1, self.n_genes)
        repeats = self.repeats
        if purpose == seeding.PURPOSE_FINAL:
            repeats = max(repeats, int(games or 1)) if self.noisy else repeats
        seeds = seeding.training_game_seeds(self.run_seed, generation, indices, repeats, purpose=purpose)
        return [FunctionTask(self.fitness, genomes[i:i + chunk], seeds[i:i + chunk], self.batched)
                for i in range(0, len(genomes), chunk)]

    def describe(self) -> dict:
        return {"genome": "function", "fitness": self.name, "n_genes": self.n_genes, "bounds": [self.low, self.up],
                "repeats": self.repeats, "noisy": self.noisy, "batched": self.batched}

    def banner(self) -> str:
        return f"function genome of {self.n_genes} genes in [{self.low:g}, {self.up:g}], fitness = {self.name}"

    def title(self) -> str:
        return f"{self.name}, {self.n_genes} genes"

    def final_choice(self, result) -> str:
        how = f"{result.best_games} fresh evaluations" if result.best_games > 1 else "a fresh evaluation"
        return f"fitness {result.best_fitness:.6g} on {how}"

    def finalize(self, store, result, stream) -> dict:
        store.save_genome("best/genome.npz", result.best_genome, fitness=self.name,
                          final_fitness=result.best_fitness, final_games=result.best_games)
        return {}
