"""The values that cross the core's boundaries: one evaluation's result."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalResult:
    """The outcome of evaluating one genome once.

    ``fitness`` is the value maximised; ``weight`` is how many independent samples it
    averages (games or episodes played), so repeated evaluations of the same genome can be
    pooled. A failed evaluation has ``error`` set and the worst fitness. ``metrics`` are the
    problem's own figures (steps taken, best game, ...): they reach the logbook through
    :meth:`evonet.core.problem.Problem.record_metrics`.
    """

    fitness: float
    weight: int = 1
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    #: multi-objective problems: every objective's value (``fitness`` is the first one)
    objectives: tuple[float, ...] | None = None
    #: multi-fidelity: the training state the evaluation ended in (opaque bytes a later
    #: evaluation of the same genome continues from); the loop moves it out at once
    state: bytes | None = field(default=None, repr=False)
