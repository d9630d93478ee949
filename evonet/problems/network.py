"""The ``network:`` section: the fixed network whose flat weight vector is the genome
(snake weights, Gymnasium policies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evonet.core.config import Section, _f


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
