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

from evonet.strategies.operators import deap_random, individual_class, register_operators
from evonet.core.strategy import WORST, Strategy
from evonet.core.types import EvalResult



class GeneticAlgorithm(Strategy):
    """ask / tell genetic algorithm over a DEAP toolbox."""

    def __init__(self, ga_cfg, genomes: np.ndarray, low: float, up: float, rng: np.random.Generator,
                 weights: Sequence[float] | None = None, similar=None):
        if ga_cfg.algorithm not in ("simple", "mu_plus_lambda"):
            raise ValueError(f"GeneticAlgorithm runs ga.algorithm simple or mu_plus_lambda, not {ga_cfg.algorithm!r}")
        self.cfg = ga_cfg
        self.rng = rng
        # weights: DEAP fitness weights of a multi-objective problem, e.g. (1.0, -1.0) for
        # (accuracy, parameters) under NSGA-II; results then carry ``objectives``
        self.Individual = individual_class(len(weights), weights) if weights else individual_class()
        self.toolbox = base.Toolbox()
        register_operators(self.toolbox, ga_cfg.selection, ga_cfg.crossover, ga_cfg.mutation, low, up)
        self.population = [self._new(g) for g in genomes]
        # similar: when two individuals are one genome for the hall of fame (default: equal
        # genes; hyperparameter genomes: the same network, i.e. the same canonical hash)
        self.hof = tools.HallOfFame(ga_cfg.hall_of_fame, similar=similar or _same_genome)
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

    # ------------------------------------------------------------------ state

    def get_state(self) -> dict:
        """Everything needed to continue exactly where this strategy stands.

        Only valid between generations (after ``tell``). Genomes are float64 arrays
        (genes leave float32 after crossover); fitness values are lists (``None`` when
        invalid); ``alias[i] = j`` records that population slot ``i`` holds the same
        object as slot ``j <= i`` (selection returns references, and a duplicated
        individual pools the fitness of both of its evaluations). The RNG state is
        ``rng.bit_generator.state`` (JSON-safe).
        """
        if self._pending is not None:
            raise RuntimeError("get_state() between ask() and tell()")
        first: dict[int, int] = {}
        alias = [first.setdefault(id(ind), i) for i, ind in enumerate(self.population)]
        return {
            "generation": int(self.generation),
            "rng": _jsonable_state(self.rng.bit_generator.state),
            "population": _individuals_state(self.population, _n_genes(self.population)),
            "alias": alias,
            "hof": _individuals_state(list(self.hof.items), _n_genes(self.population)),
            "fitness_weights": list(self.Individual().fitness.weights),
        }

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s dict (a fresh strategy of the same config)."""
        rng_state = state["rng"]
        if rng_state.get("bit_generator") != type(self.rng.bit_generator).__name__:
            raise ValueError(
                f"RNG {rng_state.get('bit_generator')!r} does not match this strategy's "
                f"{type(self.rng.bit_generator).__name__}"
            )
        weights = list(self.Individual().fitness.weights)
        if "fitness_weights" in state and len(state["fitness_weights"]) != len(weights):
            raise ValueError(f"checkpoint fitness has {len(state['fitness_weights'])} objectives, this run {len(weights)}")
        population = _individuals_from_state(self, state["population"])
        alias = [int(a) for a in state["alias"]]
        if len(alias) != len(population) or any(not 0 <= a <= i for i, a in enumerate(alias)):
            raise ValueError("population alias table does not match the population")
        self.population = [population[a] for a in alias]
        items = _individuals_from_state(self, state["hof"])
        self.hof.items = items
        self.hof.keys = [ind.fitness for ind in reversed(items)]
        self.generation = int(state["generation"])
        self.rng.bit_generator.state = rng_state
        self._pending = None
        self._offspring = None

    # ------------------------------------------------------------------ views

    def fitnesses(self) -> np.ndarray:
        return np.array([ind.fitness.values[0] for ind in self.population])

    def genomes(self) -> np.ndarray:
        return np.array(self.population, dtype=np.float32)


def _n_genes(population) -> int:
    return len(population[0]) if len(population) else 0


def _jsonable_state(obj):
    """A bit generator state with plain Python ints and lists only."""
    if isinstance(obj, dict):
        return {str(k): _jsonable_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable_state(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _individuals_state(individuals: list, n_genes: int) -> dict:
    genomes = np.array([list(ind) for ind in individuals], dtype=np.float64).reshape(len(individuals), n_genes)
    return {
        "genomes": genomes,
        "fitness": [list(ind.fitness.values) if ind.fitness.valid else None for ind in individuals],
        "games": [int(getattr(ind, "games", 0)) for ind in individuals],
        "errors": [getattr(ind, "error", None) for ind in individuals],
    }


def _individuals_from_state(ga: "GeneticAlgorithm", state: dict) -> list:
    genomes = np.asarray(state["genomes"], dtype=np.float64)
    n = len(genomes)
    if genomes.ndim != 2 or any(len(state[k]) != n for k in ("fitness", "games", "errors")):
        raise ValueError("individuals: genomes, fitness, games and errors differ in length")
    out = []
    for genome, fit, games, error in zip(genomes, state["fitness"], state["games"], state["errors"]):
        ind = ga.Individual(float(x) for x in genome)
        if fit is not None:
            ind.fitness.values = tuple(float(v) for v in fit)
        ind.games = int(games)
        ind.error = error
        out.append(ind)
    return out


def _same_genome(a, b) -> bool:
    return len(a) == len(b) and all(x == y for x, y in zip(a, b))


def _pool(ind, res: EvalResult) -> None:
    """Fold an evaluation into the individual's fitness (mean over all its games)."""
    weights = ind.fitness.weights
    if len(weights) > 1:  # multi-objective: the result's objectives, or the worst of each
        objectives = getattr(res, "objectives", None)
        if res.error is not None or objectives is None or not np.all(np.isfinite(objectives)):
            ind.fitness.values = tuple(WORST if w > 0 else -WORST for w in weights)
            ind.games = 0
            ind.error = res.error or "non-finite objectives"
        else:
            ind.fitness.values = tuple(float(v) for v in objectives)
            ind.games = res.weight
            ind.error = None
        return
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


def make_strategy(ga_cfg, genomes: np.ndarray, low: float, up: float, rng: np.random.Generator,
                  weights: Sequence[float] | None = None, similar=None, key=None, integer_budgets: bool = True):
    """The strategy ``ga.algorithm`` names: the GA or CMA-ES (ask / tell), or aging evolution
    (asynchronous jobs). ``similar(a, b)``: whether two individuals are the same genome for the
    GA's hall of fame; ``key(genome)``: the same as a hashable (aging evolution)."""
    if ga_cfg.algorithm == "auto":
        raise ValueError("ga.algorithm: auto must be resolved against the problem first "
                         "(evonet.config.resolve_algorithm)")
    if ga_cfg.algorithm == "aging":
        from evonet.strategies.aging import AgingEvolution, rung_budgets

        fid = ga_cfg.fidelity
        budgets = None if fid is None else rung_budgets(fid["min_budget"], fid["max_budget"],
                                                        fid["reduction_factor"], integer=integer_budgets)
        return AgingEvolution(ga_cfg, genomes, low, up, rng, budgets=budgets,
                              eta=3.0 if fid is None else float(fid["reduction_factor"]),
                              brackets=1 if fid is None else int(fid["brackets"]), key=key)
    if ga_cfg.algorithm == "cma_es":
        from evonet.strategies.cma_es import CMAES

        return CMAES(ga_cfg, genomes, low, up, rng)
    return GeneticAlgorithm(ga_cfg, genomes, low, up, rng, weights=weights, similar=similar)
