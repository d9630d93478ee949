"""The interface between the evolution loop and what is being evolved (see :mod:`evonet.core.problem`)."""

from evonet.core.problem import GameMetrics, Problem
from evonet.core.types import EvalResult

__all__ = ["EvalResult", "GameMetrics", "Problem"]
