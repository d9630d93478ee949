"""Gymnasium problems (genome: gym): the weights of a fixed policy network evolved on any
Gymnasium environment. See docs/gym.md."""

from evonet.problems.gym.problem import GymProblem, GymTask, evaluate_gym_task, evaluate_policy

__all__ = ["GymProblem", "GymTask", "evaluate_gym_task", "evaluate_policy"]
