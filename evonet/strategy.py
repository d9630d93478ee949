"""Evolution strategies as ask / tell over a DEAP toolbox.

``ask()`` returns the individuals that need a fitness; ``tell(individuals, results)``
hands their evaluation results back. The strategy never evaluates anything itself and
never prints: the loop decides how evaluations run (see :mod:`evonet.executors`).

Two algorithms, after DEAP's ``eaSimple`` and ``eaMuPlusLambda``:

* ``simple``: select N parents, vary them with ``varAnd`` (crossover with cxpb, then
  mutation with mutpb), the offspring replace the population; the best ``elitism``
  individuals of the hall of fame replace the worst offspring.
* ``mu_plus_lambda``: ``varOr`` makes lambda offspring; parents and offspring compete
  for the mu places through the selection operator.

Noisy fitness: with ``reevaluate`` on, surviving individuals are scored again on fresh
games every generation and their fitness is the mean over all the games they have ever
played (``ind.games`` counts them), so a lucky evaluation is corrected over time.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from deap import algorithms, base, tools

from evonet.operators import deap_random, individual_class, register_operators
from evonet.problems.base import EvalResult

WORST = -1e30


class GeneticAlgorithm:
    """ask / tell genetic algorithm over a DEAP toolbox."""

    def __init__(self, ga_cfg, genomes: np.ndarray, low: float, up: float, rng: np.random.Generator):
        self.cfg = ga_cfg
        self.rng = rng
        self.Individual = individual_class()
        self.toolbox = base.Toolbox()
        register_operators(self.toolbox, ga_cfg.selection, ga_cfg.crossover, ga_cfg.mutation, low, up)
        self.population = [self._new(g) for g in genomes]
        self.hof = tools.HallOfFame(ga_cfg.hall_of_fame, similar=_same_genome)
        self.generation = -1  # the initial population is generation 0
        self._pending: list | None = None
        self._offspring: list | None = None

    @property
    def lambda_(self) -> int:
        return self.cfg.offspring or self.cfg.population

    def _new(self, genome) -> list:
        ind = self.Individual(float(x) for x in genome)
        ind.games = 0
        return ind

    # ------------------------------------------------------------------ ask / tell

    def ask(self) -> list:
        """The individuals of the next generation that need (re-)evaluation."""
        if self._pending is not None:
            raise RuntimeError("ask() called twice without tell()")
        self.generation += 1
        if self.generation == 0:
            self._offspring = self.population
            pending = list(self.population)
        else:
            with deap_random(self.rng):
                if self.cfg.algorithm == "simple":
                    parents = self.toolbox.select(self.population, len(self.population))
                    offspring = algorithms.varAnd(parents, self.toolbox, self.cfg.cxpb, self.cfg.mutpb)
                else:
                    offspring = algorithms.varOr(
                        self.population, self.toolbox, self.lambda_, self.cfg.cxpb, self.cfg.mutpb
                    )
            for ind in offspring:
                if not ind.fitness.valid:
                    ind.games = 0
            self._offspring = offspring
            if self.cfg.reevaluate:
                pending = list(offspring)
                if self.cfg.algorithm == "mu_plus_lambda":
                    pending = list(self.population) + pending
            else:
                pending = [ind for ind in offspring if not ind.fitness.valid]
        # an individual may appear twice (a clone is a new object, so not by identity)
        self._pending = pending
        return pending

    def tell(self, individuals: Sequence, results: Sequence[EvalResult]) -> None:
        if self._pending is None or list(map(id, individuals)) != list(map(id, self._pending)):
            raise RuntimeError("tell() must receive exactly the individuals of the last ask()")
        for ind, res in zip(individuals, results):
            _pool(ind, res)
        offspring = self._offspring
        if self.generation == 0:
            pass
        elif self.cfg.algorithm == "simple":
            if self.cfg.elitism and len(self.hof):
                elite = [self.toolbox.clone(ind) for ind in self.hof[: self.cfg.elitism]]
                offspring.sort(key=lambda ind: ind.fitness.values[0])
                offspring[: len(elite)] = elite
            self.population[:] = offspring
        else:
            with deap_random(self.rng):
                self.population[:] = self.toolbox.select(self.population + offspring, self.cfg.population)
        if self.cfg.reevaluate:
            # hall-of-fame entries are frozen clones whose fitness would never be corrected;
            # with re-evaluation the current population holds every survivor's pooled fitness
            self.hof.clear()
        self.hof.update(self.population)
        self._pending = None
        self._offspring = None

    # ------------------------------------------------------------------ views

    def fitnesses(self) -> np.ndarray:
        return np.array([ind.fitness.values[0] for ind in self.population])

    def genomes(self) -> np.ndarray:
        return np.array(self.population, dtype=np.float32)


def _same_genome(a, b) -> bool:
    return len(a) == len(b) and all(x == y for x, y in zip(a, b))


def _pool(ind, res: EvalResult) -> None:
    """Fold an evaluation into the individual's fitness (mean over all its games)."""
    if res.error is not None or res.weight == 0 or not np.isfinite(res.fitness):
        ind.fitness.values = (WORST,)
        ind.games = 0
        ind.error = res.error or "non-finite fitness"
        return
    if ind.fitness.valid and getattr(ind, "games", 0) > 0:
        total = ind.fitness.values[0] * ind.games + res.fitness * res.weight
        ind.games += res.weight
        ind.fitness.values = (total / ind.games,)
    else:
        ind.games = res.weight
        ind.fitness.values = (res.fitness,)
    ind.error = None
