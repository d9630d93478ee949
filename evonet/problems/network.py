"""The ``network:`` section: the fixed network whose flat weight vector is the genome
(snake weights, Gymnasium policies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from evonet.core.config import Section, _f
from evonet.core.problem import GameMetrics, Problem
from evonet.core.types import EvalResult


@dataclass
class NetworkConfig:
    """The fixed Keras network whose flat weight vector is the genome."""

    hidden: list[int] = _f(None, "hidden layer sizes", factory=lambda: [16], item_min=1)
    activation: Literal["linear", "relu", "tanh", "sigmoid", "elu", "selu", "leaky_relu"] = _f(
        "tanh", "activation of the hidden layers"
    )
    output_activation: Literal["linear", "tanh", "sigmoid", "softmax"] = _f(
        "linear", "activation of the output layer (the agent takes the largest output)"
    )


#: the section, registered by every problem that evolves a fixed network's weights
NETWORK = Section("network", NetworkConfig, "the network")


class WeightVectorProblem(GameMetrics, Problem):
    """Base of the problems whose genome is the flat weight vector of ``self.spec`` (an
    :class:`~evonet.nn.MLPSpec`) and whose tasks carry their genomes as ``task.weights``."""

    spec: object
    continuous = True

    @staticmethod
    def failed_results(task, error: str) -> list[EvalResult]:
        """The results of a task that could not run (worker lost, timeout): all failed."""
        return [EvalResult(fitness=float("-inf"), weight=0, error=error) for _ in range(len(task.weights))]

    def init_genomes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Glorot-uniform kernels and zero biases, clipped into the genes' box."""
        from evonet.genomes.weights import init_weights

        return np.clip(init_weights(self.spec, rng, n), self.low, self.up)
