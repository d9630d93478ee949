"""The Strategy protocol: ask / tell over individuals, with exact state.

``ask()`` returns the individuals that need a fitness (sequences of floats, DEAP
individuals in evonet's strategies); ``tell(individuals, results)`` hands back one
:class:`~evonet.core.types.EvalResult` each. A strategy never evaluates anything and
never prints. ``get_state()`` / ``set_state()`` between generations continue it exactly
(JSON values and NumPy arrays only: checkpoints hold no pickles).

To add a strategy, subclass :class:`Strategy`, implement the members below, and register
its ``ga.algorithm`` name in :func:`evonet.strategies.ga.make_strategy`; the strategy
contract tests (tests/test_contract_strategy.py) then run over it too.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from evonet.core.types import EvalResult

#: the fitness of a failed evaluation (no statistic of the loop counts it)
WORST = -1e30


class Strategy:
    """Base class of the loop's strategies."""

    #: the current population (after ``tell``) and the hall of fame, best first
    population: list
    hof: list
    #: the generation of the last ``ask`` (-1 before the first; the initial one is 0)
    generation: int
    #: whether get_state / set_state continue the strategy exactly (checkpoints, resume)
    resumable: bool = True

    def ask(self) -> list:
        raise NotImplementedError(f"{type(self).__name__}.ask")

    def tell(self, individuals: Sequence, results: Sequence[EvalResult]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.tell")

    def get_state(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__}.get_state")

    def set_state(self, state: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__}.set_state")

    def fitnesses(self) -> np.ndarray:
        """The first fitness value of every member of the population."""
        return np.array([ind.fitness.values[0] for ind in self.population])

    def genomes(self) -> np.ndarray:
        return np.array(self.population, dtype=np.float32)
