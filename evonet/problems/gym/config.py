"""The Gymnasium problem's config: the ``gym:`` section and ``genome: gym``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from evonet.core.config import ProblemKind, Section, _f, register_problem
from evonet.problems.network import NETWORK


@dataclass
class GymConfig:
    """Gymnasium problems (genome: gym): the weights of a fixed policy network on an environment (docs/gym.md)."""

    env: str = _f("CartPole-v1", "a registered Gymnasium environment id, e.g. CartPole-v1, LunarLander-v3")
    env_kwargs: dict = _f(None, "keyword arguments for gymnasium.make", factory=dict)
    episodes: int = _f(4, "episodes per individual per evaluation (fitness = mean return)", min=1, max=100_000)
    max_steps: Optional[int] = _f(None, "cut every episode after N steps; null: the environment's own limit", min=1)
    eval_episodes: int = _f(
        100, "episodes on evaluation seeds (never used in training) played by the final best policy", min=0,
        max=1_000_000,
    )


register_problem(
    ProblemKind("gym", "weights of a policy network on a Gymnasium environment",
                "evonet.problems.gym.problem:GymProblem.from_config",
                report="evonet.problems.gym.report:report_section"),
    [NETWORK, Section("gym", GymConfig, "Gymnasium environment (genome: gym)")],
)
