"""Evolution strategies on their own, as ask / tell over NumPy arrays (evosax-style).

The same algorithms the evolution loop runs, without a loop, an executor or a run
directory: you evaluate the genomes yourself::

    es = evonet.strategies.CMAES(n_genes=30, population=32, seed=0)
    for _ in range(200):
        genomes = es.ask()                     # (population, n_genes) float64
        es.tell(genomes, my_fitness(genomes))  # (population,) values, maximised
    es.best_genome, es.best_fitness
    state = es.get_state()                     # JSON values and arrays; set_state() continues exactly

Every draw derives from ``seed``; ``get_state`` / ``set_state`` between generations
continue a strategy exactly (the generator state is part of the state).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from evonet.core import seeding
from evonet.core.errors import ConfigError
from evonet.problems.base import EvalResult

__all__ = ["CMAES", "GeneticAlgorithm", "AskTell"]


def _ga_config(**values):
    from evonet.config import from_dict

    cfg = from_dict({"ga": {k: v for k, v in values.items() if v is not None}})
    return cfg.ga


class AskTell:
    """ask / tell over arrays around one of the loop's strategies (``self.impl``)."""

    impl: Any

    def __init__(self, n_genes: int, seed: int):
        if isinstance(n_genes, bool) or not isinstance(n_genes, (int, np.integer)) or n_genes < 1:
            raise ConfigError(f"n_genes: expected an integer >= 1, got {n_genes!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed: expected an integer >= 0, got {seed!r}")
        self.n_genes = int(n_genes)
        self.seed = int(seed)
        self._asked: list | None = None

    def ask(self) -> np.ndarray:
        """The genomes to evaluate next: (n, n_genes) float64 (a copy; edit it freely)."""
        if self._asked is not None:
            raise RuntimeError("ask() called twice without tell()")
        self._asked = self.impl.ask()
        return np.array(self._asked, dtype=np.float64).reshape(len(self._asked), self.n_genes)

    def tell(self, genomes: np.ndarray, fitness: Sequence[float]) -> None:
        """Hand back the last ``ask()``'s genomes and their fitness values (maximised; NaN or
        infinite values count as failed evaluations and get the worst fitness)."""
        if self._asked is None:
            raise RuntimeError("tell() without ask()")
        n = len(self._asked)
        genomes = np.asarray(genomes, dtype=np.float64)
        if genomes.shape != (n, self.n_genes):
            raise ValueError(f"tell(): genomes of shape {genomes.shape}, the last ask() gave ({n}, {self.n_genes})")
        asked = np.asarray(self._asked, dtype=np.float64).reshape(n, self.n_genes)
        if not np.allclose(genomes, asked, rtol=0, atol=1e-6):
            raise ValueError("tell(): the genomes are not those of the last ask() (evaluate them unchanged)")
        values = np.asarray(fitness, dtype=np.float64).reshape(-1)
        if values.shape != (n,):
            raise ValueError(f"tell(): {values.size} fitness values for {n} genomes")
        results = [EvalResult(fitness=float(v)) if np.isfinite(v) else
                   EvalResult(fitness=float("-inf"), weight=0, error=f"fitness {v}") for v in values]
        self.impl.tell(self._asked, results)
        self._asked = None

    @property
    def generation(self) -> int:
        """Generations told so far, minus one (0 after the first tell)."""
        return int(self.impl.generation)

    @property
    def population(self) -> np.ndarray:
        return np.array(self.impl.population, dtype=np.float64).reshape(-1, self.n_genes)

    @property
    def fitness(self) -> np.ndarray:
        """The current population's fitness values."""
        return np.asarray(self.impl.fitnesses(), dtype=np.float64)

    @property
    def best_genome(self) -> np.ndarray:
        """The best genome evaluated (GA: the hall of fame's first; CMA-ES: the best of the last generation)."""
        return np.array(self._best(), dtype=np.float64)

    @property
    def best_fitness(self) -> float:
        return float(self._best().fitness.values[0])

    def _best(self):
        pop = list(self.impl.population)
        if not pop:
            raise RuntimeError("no generation told yet")
        return max(pop, key=lambda ind: ind.fitness.values[0])

    def get_state(self) -> dict:
        """Everything needed to continue exactly (between tell() and the next ask())."""
        if self._asked is not None:
            raise RuntimeError("get_state() between ask() and tell()")
        return self.impl.get_state()

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state` into a strategy made with the same arguments."""
        self.impl.set_state(state)
        self._asked = None


class CMAES(AskTell):
    """CMA-ES (DEAP's ``deap.cma.Strategy``): ``population`` samples per generation around a
    centroid (default: zeros) with step size ``sigma``; genes are clipped to ``[-bound, bound]``.
    ``population=None``: CMA-ES's default ``4 + floor(3 ln n_genes)``. ``eigen_gap``: generations
    between two eigendecompositions of the covariance matrix (``"auto"``: Hansen's lazy update
    from 200 genes on, every generation below; 1: every generation, DEAP's own update)."""

    def __init__(self, n_genes: int, population: int | None = None, seed: int = 0, sigma: float = 0.5,
                 centroid: Sequence[float] | None = None, bound: float = 1e6, hall_of_fame: int = 10,
                 eigen_gap: int | str = "auto"):
        super().__init__(n_genes, seed)
        from evonet.strategies.cma_es import CMAES as _CMAES

        population = default_population("cma_es", self.n_genes) if population is None else population
        cfg = _ga_config(algorithm="cma_es", population=population, sigma=sigma, bound=bound,
                         hall_of_fame=hall_of_fame, generations=0, eigen_gap=eigen_gap)
        start = np.zeros((1, self.n_genes)) if centroid is None else np.asarray(centroid, dtype=np.float64)
        if start.size != self.n_genes:
            raise ConfigError(f"centroid: {start.size} values for {self.n_genes} genes")
        self.impl = _CMAES(cfg, start.reshape(1, self.n_genes), -cfg.bound, cfg.bound,
                           seeding.generator(self.seed, seeding.PURPOSE_STRATEGY))

    @property
    def sigma(self) -> float:
        return self.impl.sigma

    @property
    def mean(self) -> np.ndarray:
        """The distribution's centroid."""
        return np.array(self.impl.es.centroid, dtype=np.float64)


class GeneticAlgorithm(AskTell):
    """DEAP's generational GA (``algorithm="simple"``) or (mu + lambda) (``"mu_plus_lambda"``)
    with the named operators (see ``evonet operators``), genes in ``[-bound, bound]``; the
    initial population is uniform in ``[-init_scale, init_scale]``."""

    def __init__(self, n_genes: int, population: int = 64, seed: int = 0, algorithm: str = "mu_plus_lambda",
                 bound: float = 5.0, init_scale: float = 1.0, selection: dict | None = None,
                 crossover: dict | None = None, mutation: dict | None = None, cxpb: float | None = None,
                 mutpb: float | None = None, elitism: int | None = None, hall_of_fame: int = 10):
        super().__init__(n_genes, seed)
        from evonet.strategies.ga import GeneticAlgorithm as _GA

        if algorithm not in ("simple", "mu_plus_lambda"):
            raise ConfigError(f"algorithm: unknown value {algorithm!r}; choose from simple, mu_plus_lambda")
        cfg = _ga_config(algorithm=algorithm, population=population, bound=bound, selection=selection,
                         crossover=crossover, mutation=mutation, cxpb=cxpb, mutpb=mutpb, elitism=elitism,
                         hall_of_fame=hall_of_fame, generations=0, reevaluate=False)
        rng = seeding.generator(self.seed, seeding.PURPOSE_INIT)
        start = rng.uniform(-init_scale, init_scale, size=(cfg.population, self.n_genes))
        self.impl = _GA(cfg, np.clip(start, -cfg.bound, cfg.bound), -cfg.bound, cfg.bound,
                        seeding.generator(self.seed, seeding.PURPOSE_STRATEGY))

    def _best(self):
        if len(self.impl.hof):
            return self.impl.hof[0]
        return super()._best()


def default_population(algorithm: str, n_genes: int) -> int:
    """CMA-ES: ``4 + floor(3 ln n)`` (Hansen's default lambda); the GA: 64."""
    if algorithm == "cma_es":
        return max(4, 4 + int(3 * math.log(max(1, n_genes))))
    return 64
