"""evonet's core: the protocols, the generational loop and the runner.

It knows nothing of any problem (no snake, Keras, TensorFlow, Gymnasium or pygame import):
problems, strategies and executors plug in through the protocols of
:mod:`evonet.core.problem`, :mod:`evonet.core.strategy` and :mod:`evonet.core.executor`.
See docs/architecture.md.
"""

from evonet.core.executor import Executor
from evonet.core.problem import Problem
from evonet.core.strategy import Strategy
from evonet.core.types import EvalResult

__all__ = ["EvalResult", "Executor", "Problem", "Strategy"]
