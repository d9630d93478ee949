"""CMA-ES as ask / tell, on DEAP's ``deap.cma.Strategy``.

The covariance matrix adaptation evolution strategy samples ``population`` (lambda)
genomes from a multivariate normal around a centroid, and moves the centroid, the step
size and the covariance towards the best ``mu`` of them. For the weights of small
networks (hundreds to a few thousand genes) it learns much faster than a GA: on classic
10x10 snake it reaches a mean of 60+ apples where the GA plateaus near 50 (see the README).

DEAP's implementation draws from NumPy's global legacy generator; :func:`numpy_random`
seeds that generator from the run's ``numpy.random.Generator`` around each draw and
restores its previous state, so every draw derives from the run seed and nothing else is
disturbed.

The hall of fame of a CMA-ES run holds the current centroid (the distribution's mean,
usually the best network of all) and the best sampled genomes of the last generation.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numpy as np
from deap import cma

from evonet.strategies.operators import individual_class
from evonet.core.strategy import Strategy
from evonet.core.types import EvalResult
from evonet.strategies.ga import WORST, _individuals_from_state, _individuals_state, _jsonable_state


@contextlib.contextmanager
def numpy_random(rng: np.random.Generator) -> Iterator[None]:
    """Seed NumPy's global generator from ``rng`` for the duration, then restore it."""
    saved = np.random.get_state()
    np.random.seed(int(rng.integers(0, 2**32)))
    try:
        yield
    finally:
        np.random.set_state(saved)


#: ``eigen_gap: auto`` postpones the eigendecomposition from this many genes on; below, it
#: takes under 2 ms and runs every generation (DEAP's own update, bit for bit)
LAZY_EIGEN_MIN_GENES = 200


def resolve_eigen_gap(gap, n_genes: int, population: int) -> int:
    """``ga.eigen_gap`` as a number of generations: ``"auto"`` is :func:`lazy_eigen_gap` from
    :data:`LAZY_EIGEN_MIN_GENES` genes on, else 1."""
    if gap == "auto":
        return lazy_eigen_gap(n_genes, population) if n_genes >= LAZY_EIGEN_MIN_GENES else 1
    return int(gap)


def lazy_eigen_gap(n_genes: int, population: int) -> int:
    """The generations between two eigendecompositions in Hansen's lazy update (purecma:
    decompose once more than ``0.5 / ((c1 + cmu) n)`` generations have passed, which keeps
    CMA-ES at O(n^2) per sample): 10 for 627 genes and lambda 64, 5 for lambda 128."""
    es = cma.Strategy(centroid=np.zeros(1), sigma=1.0, lambda_=population)  # the weights of this lambda
    es.dim = n_genes
    es.computeParams(es.params)
    return int(np.floor(0.5 / ((es.ccov1 + es.ccovmu) * n_genes))) + 1


class LazyStrategy(cma.Strategy):
    """``deap.cma.Strategy`` that decomposes its covariance matrix ``C = B D^2 B^T`` only every
    ``eigen_gap`` generations (Hansen's lazy update). In between, sampling and the step-size
    path use the last ``B`` and ``D`` while ``C`` itself is updated every generation.
    ``eigen_gap == 1`` is DEAP's own update, bit for bit. The update is the (mu/mu_w, lambda)
    CMA-ES of Hansen's tutorial with DEAP's parameters and variable names."""

    def __init__(self, centroid, sigma, eigen_gap: int = 1, **params):
        super().__init__(centroid=centroid, sigma=sigma, **params)
        self.eigen_gap = int(eigen_gap)
        self.eigen_update = 0  # update_count at the last decomposition

    def update(self, population):
        if self.eigen_gap <= 1:
            super().update(population)
            self.eigen_update = self.update_count
            return
        population.sort(key=lambda ind: ind.fitness, reverse=True)
        best = np.asarray(population[: self.mu], dtype=np.float64)
        old = self.centroid
        self.centroid = self.weights @ best
        step = self.centroid - old
        # the step-size path goes through C^(-1/2) = B D^-1 B^T of the last decomposition
        whitened = self.B @ ((self.B.T @ step) / self.diagD)
        self.ps = (1 - self.cs) * self.ps + np.sqrt(self.cs * (2 - self.cs) * self.mueff) / self.sigma * whitened
        norm_ps = np.linalg.norm(self.ps)
        hsig = float(norm_ps / np.sqrt(1.0 - (1.0 - self.cs) ** (2.0 * (self.update_count + 1.0))) / self.chiN
                     < 1.4 + 2.0 / (self.dim + 1.0))
        self.update_count += 1
        self.pc = (1 - self.cc) * self.pc + hsig * np.sqrt(self.cc * (2 - self.cc) * self.mueff) / self.sigma * step
        y = best - old
        keep = 1 - self.ccov1 - self.ccovmu + (1 - hsig) * self.ccov1 * self.cc * (2 - self.cc)
        self.C = (keep * self.C + self.ccov1 * np.outer(self.pc, self.pc)
                  + self.ccovmu * ((self.weights * y.T) @ y) / self.sigma ** 2)
        self.sigma *= np.exp((norm_ps / self.chiN - 1.0) * self.cs / self.damps)
        if self.update_count - self.eigen_update >= self.eigen_gap:
            self.decompose()

    def decompose(self) -> None:
        """``B`` and ``D`` (ascending eigenvalues, as DEAP orders them) from the current ``C``."""
        values, vectors = np.linalg.eigh(self.C)
        order = np.argsort(values)
        self.cond = values[order[-1]] / values[order[0]]
        self.diagD = values[order] ** 0.5
        self.B = vectors[:, order]
        self.BD = self.B * self.diagD
        self.eigen_update = self.update_count


class CMAES(Strategy):
    """CMA-ES over flat genomes, with the same ask / tell interface as the GA."""

    #: the parts of the strategy that change as it runs (the rest derives from its params)
    _ARRAYS = ("centroid", "pc", "ps", "C", "diagD", "B", "BD")
    _SCALARS = ("sigma", "cond", "update_count", "eigen_update")

    def __init__(self, ga_cfg, genomes: np.ndarray, low: float, up: float, rng: np.random.Generator):
        self.cfg = ga_cfg
        self.rng = rng
        self.low, self.up = low, up
        self.Individual = individual_class()
        genomes = np.asarray(genomes, dtype=np.float64)
        # the search starts at the mean of the initial genomes, with step size sigma
        centroid = genomes.mean(axis=0)
        self.eigen_gap = resolve_eigen_gap(getattr(ga_cfg, "eigen_gap", 1), centroid.size, ga_cfg.population)
        self.es = LazyStrategy(centroid=centroid, sigma=ga_cfg.sigma, eigen_gap=self.eigen_gap,
                               lambda_=ga_cfg.population)
        self.population: list = []
        self.hof: list = []
        self.generation = -1
        self._pending: list | None = None

    def ask(self) -> list:
        if self._pending is not None:
            raise RuntimeError("ask() called twice without tell()")
        self.generation += 1
        with numpy_random(self.rng):
            pending = self.es.generate(self.Individual)
        for ind in pending:
            ind[:] = np.clip(ind, self.low, self.up).tolist()
            ind.games = 0
        self._pending = pending
        return pending

    def tell(self, individuals: Sequence, results: Sequence[EvalResult]) -> None:
        if self._pending is None or list(map(id, individuals)) != list(map(id, self._pending)):
            raise RuntimeError("tell() must receive exactly the individuals of the last ask()")
        for ind, res in zip(individuals, results):
            ok = res.error is None and res.weight > 0 and np.isfinite(res.fitness)
            ind.fitness.values = (res.fitness if ok else WORST,)
            ind.games = res.weight if ok else 0
            ind.error = None if ok else (res.error or "non-finite fitness")
        self.es.update(list(individuals))  # sorts a copy by fitness, moves the distribution
        self.population = list(individuals)
        ranked = sorted(self.population, key=lambda ind: ind.fitness.values[0], reverse=True)
        centroid = self.Individual(np.clip(self.es.centroid, self.low, self.up).tolist())
        centroid.fitness.values = (float(np.mean([i.fitness.values[0] for i in ranked[: self.es.mu]])),)
        centroid.games = 0  # the centroid itself was never played; its value is the mean of the best mu
        self.hof = [centroid] + ranked[: max(0, self.cfg.hall_of_fame - 1)]
        self._pending = None

    def get_state(self) -> dict:
        """Everything needed to continue exactly (only between generations)."""
        if self._pending is not None:
            raise RuntimeError("get_state() between ask() and tell()")
        n = self.es.dim
        es = {k: np.array(getattr(self.es, k), dtype=np.float64) for k in self._ARRAYS}
        es.update({k: float(getattr(self.es, k)) for k in self._SCALARS})
        return {
            "algorithm": "cma_es",
            "generation": int(self.generation),
            "rng": _jsonable_state(self.rng.bit_generator.state),
            "es": es,
            "population": _individuals_state(self.population, n),
            "hof": _individuals_state(self.hof, n),
        }

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s dict into a fresh strategy of the same config."""
        if state.get("algorithm") != "cma_es":
            raise ValueError("the checkpoint was not written by a CMA-ES run")
        es = state["es"]
        for k in self._ARRAYS:
            value = np.asarray(es[k], dtype=np.float64)
            if value.shape != np.shape(getattr(self.es, k)):
                raise ValueError(f"CMA-ES state {k} has shape {value.shape}, expected {np.shape(getattr(self.es, k))}")
            setattr(self.es, k, value)
        self.es.sigma = float(es["sigma"])
        self.es.cond = float(es["cond"])
        self.es.update_count = int(es["update_count"])
        # a checkpoint of before the lazy update decomposed C at every update
        self.es.eigen_update = int(es.get("eigen_update", es["update_count"]))
        self.population = _individuals_from_state(self, state["population"])
        self.hof = _individuals_from_state(self, state["hof"])
        self.generation = int(state["generation"])
        self.rng.bit_generator.state = state["rng"]
        self._pending = None

    @property
    def sigma(self) -> float:
        return float(self.es.sigma)

    def fitnesses(self) -> np.ndarray:
        return np.array([ind.fitness.values[0] for ind in self.population])

    def genomes(self) -> np.ndarray:
        return np.array(self.population, dtype=np.float32)
