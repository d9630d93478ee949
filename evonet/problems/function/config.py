"""The fitness-function problem's config: the ``function:`` section and ``genome: function``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evonet.core.config import ProblemKind, Section, _f, register_problem


@dataclass
class FunctionConfig:
    """Fitness-function problems (genome: function): a Python function scores batches of weight vectors."""

    fitness: str = _f("", "the fitness function as module:function (maximised); batched: (genomes, seeds) -> (n,)")
    n_genes: int = _f(10, "genes per genome", min=1, max=100_000_000)
    init: Literal["uniform", "normal", "zeros"] = _f(
        "uniform", "initial genomes: uniform in [-init_scale, init_scale], normal(0, init_scale), or zeros"
    )
    init_scale: float = _f(1.0, "scale of the initial genomes", min=0.0)


register_problem(
    ProblemKind("function", "a vector scored by a fitness function (module:function)",
                "evonet.problems.function.problem:FunctionProblem.from_config",
                report="evonet.problems.function.report:report_section"),
    [Section("function", FunctionConfig, "fitness function (genome: function)")],
)
