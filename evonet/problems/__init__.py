"""Problems tie a genome kind to its evaluator: how to create genomes, how to cut a batch
of them into picklable evaluation tasks, and how to turn results into fitness.

A problem knows nothing of executors or of the loop; its ``evaluate_task`` is a pure
module-level function, so any executor (in process, Ray) can run it.
"""

from evonet.problems.base import EvalResult, Problem

__all__ = ["EvalResult", "Problem", "make_problem"]


def make_problem(cfg):
    """The problem an experiment config describes."""
    if cfg.genome == "weights":
        from evonet.problems.snake.problem import SnakeWeightsProblem

        return SnakeWeightsProblem.from_config(cfg)
    if cfg.genome == "hyperparameters":
        from evonet.problems.nas.problem import HyperparamProblem

        return HyperparamProblem.from_config(cfg)
    if cfg.genome == "gym":
        from evonet.problems.gym import GymProblem

        return GymProblem.from_config(cfg)
    if cfg.genome == "function":
        from evonet.problems.function import FunctionProblem

        return FunctionProblem.from_config(cfg)
    raise ValueError(f"unknown genome kind {cfg.genome!r}")
