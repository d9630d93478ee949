"""The interface between the evolution loop and what is being evolved."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np


@dataclass
class EvalResult:
    """The outcome of evaluating one genome once.

    ``fitness`` is the value maximised; ``weight`` is how many independent samples it
    averages (games played), so repeated evaluations of the same genome can be pooled.
    A failed evaluation has ``error`` set and the worst fitness.
    """

    fitness: float
    weight: int = 1
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    #: multi-objective problems: every objective's value (``fitness`` is the first one)
    objectives: tuple[float, ...] | None = None


class Problem(Protocol):
    """What the loop needs from a genome kind and its evaluator.

    Optional, for problems with state of their own (an evaluation cache): ``get_state()``
    returns it as a dict of JSON values and NumPy arrays (never pickled objects), saved
    in every checkpoint; ``set_state(state)`` restores it when ``evonet resume`` continues
    the run (see :mod:`evonet.checkpoint`). Without them a problem is taken to be stateless.
    """

    n_genes: int
    low: float
    up: float

    def init_genomes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random genomes, shape (n, n_genes)."""

    def make_tasks(
        self, genomes: np.ndarray, generation: int, indices: Sequence[int], chunk: int
    ) -> list[Any]:
        """Picklable tasks covering ``genomes`` in order; seeds derive from (generation, indices)."""

    @property
    def evaluate_task(self) -> Callable[[Any], list[EvalResult]]:
        """A pure module-level function: task -> one EvalResult per genome of the task."""

    def failed_results(self, task: Any, error: str) -> list[EvalResult]:
        """Failed results (worst fitness, ``error`` set) for every genome of a task that could not run."""

    def describe(self) -> dict:
        """What is evolved, as JSON (written to RUN_DIR/problem.json)."""

    def banner(self) -> str:
        """One line describing the problem at the start of a run."""

    def title(self) -> str:
        """A short title for plots."""

    def finalize(self, store, result, stream) -> dict:
        """Export the best genome's artefacts into the run store (model, agent, tables),
        print its report to ``stream``; returns figures for summary.json."""
