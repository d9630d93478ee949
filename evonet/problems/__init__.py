"""Problems tie a genome kind to its evaluator: how to create genomes, how to cut a batch
of them into picklable evaluation tasks, and how to turn results into fitness.

Every problem is a package: ``snake`` (weights on the snake game), ``nas`` (Keras
architecture search), ``gym`` (policy weights on Gymnasium), ``function`` (any fitness
function). Each declares its config sections and genome kind in its ``config`` module,
imported here (light: dataclasses only); the problem itself loads when a run starts.
A problem knows nothing of executors or of the loop; its ``evaluate_task`` is a pure
module-level function, so any executor (in process, Ray) can run it.
"""

from evonet.core.config import make_problem
from evonet.core.problem import Problem
from evonet.core.types import EvalResult
from evonet.problems.snake import config as _snake  # noqa: F401 (registers genome: weights)
from evonet.problems.nas import config as _nas  # noqa: F401 (genome: hyperparameters)
from evonet.problems.gym import config as _gym  # noqa: F401 (genome: gym)
from evonet.problems.function import config as _function  # noqa: F401 (genome: function)

__all__ = ["EvalResult", "Problem", "make_problem"]
