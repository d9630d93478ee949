"""Fitness-function problems: flat genomes scored by a Python function (maximised)."""

from evonet.problems.function.problem import FunctionProblem, FunctionTask, evaluate_function_task, import_function

__all__ = ["FunctionProblem", "FunctionTask", "evaluate_function_task", "import_function"]
