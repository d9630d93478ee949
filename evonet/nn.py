"""Fixed-topology multilayer perceptrons as flat weight vectors.

The phenotype of a weight-vector genome is a Keras ``Sequential`` model of ``Dense``
layers. The genome is the concatenation of ``model.get_weights()`` flattened in C order:
for each layer its kernel (n_in x n_out) and then its bias (n_out). :func:`forward`
evaluates a whole population of such networks at once with batched matrix products in
numpy, and matches the Keras model to float32 precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "elu", "selu", "leaky_relu", "softmax")

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805
_LEAKY_SLOPE = 0.2  # Keras 3's default negative_slope for leaky_relu


def _activate(name: str, x: np.ndarray) -> np.ndarray:
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0, out=x)
    if name == "tanh":
        return np.tanh(x, out=x)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    if name == "selu":
        return _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0)))
    if name == "leaky_relu":
        return np.where(x > 0, x, _LEAKY_SLOPE * x)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")


@dataclass(frozen=True)
class MLPSpec:
    """A dense network: ``n_inputs -> hidden... -> n_outputs``."""

    n_inputs: int
    hidden: tuple[int, ...]
    n_outputs: int
    activation: str = "tanh"
    output_activation: str = "linear"

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        for size in (self.n_inputs, *self.hidden, self.n_outputs):
            if size < 1:
                raise ValueError(f"layer sizes must be >= 1, got {self.sizes}")
        for act in (self.activation, self.output_activation):
            if act not in ACTIVATIONS:
                raise ValueError(f"unknown activation {act!r}; choose from {', '.join(ACTIVATIONS)}")

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.n_inputs, *self.hidden, self.n_outputs)

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        s = self.sizes
        return [(s[i], s[i + 1]) for i in range(len(s) - 1)]

    @property
    def n_params(self) -> int:
        return sum(i * o + o for i, o in self.layer_shapes)

    def activations(self) -> list[str]:
        return [self.activation] * len(self.hidden) + [self.output_activation]

    def to_dict(self) -> dict:
        return {
            "n_inputs": self.n_inputs,
            "hidden": list(self.hidden),
            "n_outputs": self.n_outputs,
            "activation": self.activation,
            "output_activation": self.output_activation,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "MLPSpec":
        return cls(
            n_inputs=int(d["n_inputs"]),
            hidden=tuple(d["hidden"]),
            n_outputs=int(d["n_outputs"]),
            activation=d.get("activation", "tanh"),
            output_activation=d.get("output_activation", "linear"),
        )


def unflatten(spec: MLPSpec, flat: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split weight vectors into per-layer ``(kernel, bias)``.

    ``flat`` has shape (n_params,) or (P, n_params); the result's arrays have shapes
    (n_in, n_out) / (n_out,) or (P, n_in, n_out) / (P, n_out) accordingly (views, no copy).
    """
    flat = np.asarray(flat, dtype=np.float32)
    if flat.shape[-1] != spec.n_params:
        raise ValueError(f"expected {spec.n_params} weights for {spec.sizes}, got {flat.shape[-1]}")
    lead = flat.shape[:-1]
    layers, pos = [], 0
    for n_in, n_out in spec.layer_shapes:
        kernel = flat[..., pos : pos + n_in * n_out].reshape(*lead, n_in, n_out)
        pos += n_in * n_out
        bias = flat[..., pos : pos + n_out]
        pos += n_out
        layers.append((kernel, bias))
    return layers


def flatten(layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Inverse of :func:`unflatten` for a single network."""
    return np.concatenate([np.concatenate([k.ravel(), b.ravel()]) for k, b in layers]).astype(np.float32)


def forward(spec: MLPSpec, layers, x: np.ndarray) -> np.ndarray:
    """Outputs of P networks on their own inputs, in one batched product per layer.

    ``layers`` comes from :func:`unflatten` of a (P, n_params) array; ``x`` has shape
    (P, N, n_inputs) (N inputs per network). Returns (P, N, n_outputs) float32.
    For a single network pass (n_in, n_out) layers and x of shape (N, n_inputs).
    """
    h = np.asarray(x, dtype=np.float32)
    for (kernel, bias), act in zip(layers, spec.activations()):
        h = np.matmul(h, kernel)
        h += bias[..., None, :] if bias.ndim == 2 else bias
        h = _activate(act, h)
    return h


def act_greedy(spec: MLPSpec, layers, x: np.ndarray) -> np.ndarray:
    """Index of the largest output per input (ties go to the lowest index, as argmax)."""
    return np.argmax(forward(spec, layers, x), axis=-1)
