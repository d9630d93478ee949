"""Hyperparameter genome -> compiled Keras model, preprocessing inside the model.

A genome is the canonical mapping of a :class:`~evonet.space.SearchSpace` (active genes,
typed values). The builder reads the genes it knows by name, with the defaults of
:data:`DEFAULTS` for genes a space does not declare, so a space may fix anything by simply
leaving it out. Gene names a builder does not know are rejected when the space is loaded
(:func:`check_space`), so a typo never silently does nothing.

Every model takes the dataset's *raw* inputs: its first layers are ``Rescaling(1/scale)``
(e.g. 1/16 for digits' 0..16 pixels, 1/255 for MNIST) and a ``Flatten`` (mlp) or a
``Reshape`` to (H, W, 1) (cnn), so the exported ``.keras`` file needs no preprocessing.

Genes (``N`` = 1, 2, ...):

=================  =====  ==============================================================
gene               model  meaning
=================  =====  ==============================================================
n_layers           mlp    hidden Dense layers
units_N            mlp    units of hidden layer N (active when n_layers >= N)
conv_blocks        cnn    conv blocks: Conv2D [+ BatchNorm] + activation
filters_N          cnn    filters of block N
kernel_N           cnn    kernel side of block N (``kernel_size``: one for all blocks)
strides_N          cnn    stride of block N (1 or 2; "same" padding)
pooling            cnn    none | max: 2x2 max pooling after each block (while > 1 pixel)
dense_units        cnn    units of the Dense layer after the blocks (0: none)
activation         both   relu | elu | selu | leaky_relu | tanh | sigmoid | gelu | swish
initializer        both   he | glorot | lecun (he_normal, glorot_uniform, lecun_normal)
batch_norm         both   BatchNormalization after every hidden layer (before activation)
dropout            both   dropout rate after every hidden Dense layer (0: none)
l2                 both   L2 weight penalty on kernels (0: none)
optimizer          both   sgd | sgd_momentum | sgd_nesterov | rmsprop | adam | adamw
momentum           both   momentum of sgd_momentum / sgd_nesterov
learning_rate      both   initial learning rate
lr_schedule        both   constant | exponential | cosine (per epoch)
lr_decay           both   exponential: lr_e = lr * lr_decay**e + lr / 200
shift              cnn    augmentation: random translation up to this fraction of the side (0: none)
rotation           cnn    augmentation: random rotation up to this fraction of a full turn (0: none)
zoom               cnn    augmentation: random zoom in/out up to this fraction (0: none)
batch_size         both   training batch size
epochs             both   training epochs (capped by the experiment's search.epochs)
=================  =====  ==============================================================

The exponential schedule with its floor ``lr / 200`` contains the schedule of the Keras
codelab ("TensorFlow, Keras and deep learning, without a PhD"): ``0.0001 + 0.02 *
0.666**epoch`` is ``learning_rate: 0.02, lr_decay: 0.666``.

Batch normalization uses a moving-average momentum of :data:`BN_MOMENTUM` (0.9, not Keras's
0.99): a search trains small models for few steps (digits: 36 steps an epoch), and with 0.99
the inference statistics lag so far behind the training ones that a well-trained network can
score chance accuracy on validation data.

The augmentation genes (``shift``, ``rotation``, ``zoom``) add Keras's random image layers
after the reshape; they only act while training, so the exported model is unchanged at
inference (the images are padded with zeros, the background of digits and MNIST).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from evonet.core.errors import ConfigError

ACTIVATIONS = ("relu", "elu", "selu", "leaky_relu", "tanh", "sigmoid", "gelu", "swish", "linear")
INITIALIZERS = {"he": "he_normal", "glorot": "glorot_uniform", "lecun": "lecun_normal"}
OPTIMIZERS = ("sgd", "sgd_momentum", "sgd_nesterov", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "exponential", "cosine")

DEFAULTS: dict[str, Any] = {
    "n_layers": 1, "conv_blocks": 2, "kernel_size": 3, "pooling": "none", "dense_units": 64,
    "activation": "relu", "initializer": "glorot", "batch_norm": False, "dropout": 0.0, "l2": 0.0,
    "optimizer": "adam", "momentum": 0.9, "learning_rate": 1e-3, "lr_schedule": "constant", "lr_decay": 0.9,
    "batch_size": 32, "epochs": 10, "shift": 0.0, "rotation": 0.0, "zoom": 0.0,
}
#: moving-average momentum of the BatchNormalization layers (see the module doc)
BN_MOMENTUM = 0.9
_COMMON = {"activation", "initializer", "batch_norm", "dropout", "l2", "optimizer", "momentum", "learning_rate",
           "lr_schedule", "lr_decay", "batch_size", "epochs"}
KNOWN = {
    "mlp": (_COMMON | {"n_layers"}, re.compile(r"units_[1-9][0-9]*$")),
    "cnn": (_COMMON | {"conv_blocks", "kernel_size", "pooling", "dense_units", "shift", "rotation", "zoom"},
            re.compile(r"(filters|kernel|strides)_[1-9][0-9]*$")),
}
_ALLOWED_VALUES = {"activation": ACTIVATIONS, "initializer": tuple(INITIALIZERS), "optimizer": OPTIMIZERS,
                   "lr_schedule": SCHEDULES, "pooling": ("none", "max")}
_POSITIVE = {"n_layers", "conv_blocks", "kernel_size", "batch_size", "epochs", "learning_rate"}


@dataclass(frozen=True)
class InputSpec:
    """What the model eats and predicts: raw input shape, the raw value scale, classes."""

    shape: tuple[int, ...]
    scale: float
    n_classes: int


def check_space(space) -> None:
    """Reject genes the space's builder does not know and values it cannot build."""
    names, pattern = KNOWN[space.model]
    for g in space.genes:
        where = f"{space.source}: genes.{g.name}"
        if g.name not in names and not pattern.match(g.name):
            raise ConfigError(f"{where}: unknown gene for a {space.model} model; known: "
                              f"{', '.join(sorted(names))}, {pattern.pattern.rstrip('$')}")
        allowed = _ALLOWED_VALUES.get(g.name)
        if allowed is not None:
            if g.type != "choice":
                raise ConfigError(f"{where}.type: {g.name} must be a choice gene among {', '.join(allowed)}")
            for v in g.values:
                if v not in allowed:
                    raise ConfigError(f"{where}.values: unknown {g.name} {v!r}; choose from {', '.join(allowed)}")
        if (g.name in _POSITIVE or re.match(r"(units|filters|kernel|strides)_", g.name)) and g.type in ("int", "float") \
                and g.low <= 0:
            raise ConfigError(f"{where}.low: must be > 0, got {g.low}")
        if g.name in ("dropout", "shift", "rotation", "zoom") and g.type == "float" and not (0 <= g.low and g.high < 1):
            raise ConfigError(f"{where}: {g.name} must lie in [0, 1), got [{g.low}, {g.high}]")


def gene(genome: dict, name: str, default: Any = None) -> Any:
    if name in genome:
        return genome[name]
    return DEFAULTS.get(name, default)


def _hidden_units(genome: dict) -> list[int]:
    n = int(gene(genome, "n_layers"))
    return [int(gene(genome, f"units_{i}", genome.get("units", 64))) for i in range(1, n + 1)]


def epochs_of(genome: dict, cap: int) -> int:
    """Training epochs: the genome's ``epochs`` gene capped by ``cap``; ``cap`` without the gene."""
    return max(1, min(int(genome.get("epochs", cap)), int(cap)))


def learning_rate_at(genome: dict, epoch: int, epochs: int) -> float:
    """The learning rate of ``epoch`` (0-based) under the genome's schedule."""
    lr = float(gene(genome, "learning_rate"))
    kind = gene(genome, "lr_schedule")
    if kind == "exponential":
        return lr * float(gene(genome, "lr_decay")) ** epoch + lr / 200.0
    if kind == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, epochs)))
    return lr


def make_optimizer(keras, genome: dict):
    name = gene(genome, "optimizer")
    lr = float(gene(genome, "learning_rate"))
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr)
    if name in ("sgd_momentum", "sgd_nesterov"):
        return keras.optimizers.SGD(learning_rate=lr, momentum=float(gene(genome, "momentum")),
                                    nesterov=name == "sgd_nesterov")
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr)
    return keras.optimizers.Adam(learning_rate=lr)


def build_model(genome: dict, model: str, inputs: InputSpec, *, compile: bool = True):
    """The Keras model of a canonical genome (``model``: ``"mlp"`` or ``"cnn"``), compiled
    with sparse categorical cross-entropy and accuracy unless ``compile=False``."""
    from evonet.tf_utils import import_keras

    keras = import_keras()
    L = keras.layers
    act = gene(genome, "activation")
    init = INITIALIZERS[gene(genome, "initializer")]
    bn = bool(gene(genome, "batch_norm"))
    drop = float(gene(genome, "dropout"))
    l2 = float(gene(genome, "l2"))
    reg = keras.regularizers.L2(l2) if l2 > 0 else None

    def activation(x, name):
        if act == "leaky_relu":
            return L.LeakyReLU(name=name)(x)
        return L.Activation(act, name=name)(x)

    x_in = keras.Input(shape=tuple(inputs.shape), dtype="float32", name="raw")
    x = x_in
    if inputs.scale != 1.0:
        x = L.Rescaling(1.0 / float(inputs.scale), name="rescale")(x)
    if model == "mlp":
        if len(inputs.shape) != 1:
            x = L.Flatten(name="flatten")(x)
        for i, units in enumerate(_hidden_units(genome), start=1):
            x = L.Dense(units, use_bias=not bn, kernel_initializer=init, kernel_regularizer=reg, name=f"dense_{i}")(x)
            if bn:
                x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn_{i}")(x)
            x = activation(x, f"act_{i}")
            if drop > 0:
                x = L.Dropout(drop, name=f"dropout_{i}")(x)
    elif model == "cnn":
        shape = tuple(inputs.shape)
        if len(shape) == 1:
            side = int(round(math.sqrt(shape[0])))
            if side * side != shape[0]:
                raise ValueError(f"a cnn needs image inputs; got flat vectors of {shape[0]} features")
            x = L.Reshape((side, side, 1), name="reshape")(x)
            shape = (side, side, 1)
        elif len(shape) == 2:
            x = L.Reshape((*shape, 1), name="reshape")(x)
            shape = (*shape, 1)
        side = min(shape[0], shape[1])
        shift, rotation, zoom = (float(gene(genome, k)) for k in ("shift", "rotation", "zoom"))
        if shift > 0:
            x = L.RandomTranslation(shift, shift, fill_mode="constant", name="aug_shift")(x)
        if rotation > 0:
            x = L.RandomRotation(rotation, fill_mode="constant", name="aug_rotation")(x)
        if zoom > 0:
            x = L.RandomZoom(zoom, zoom, fill_mode="constant", name="aug_zoom")(x)
        for i in range(1, int(gene(genome, "conv_blocks")) + 1):
            kernel = int(gene(genome, f"kernel_{i}", gene(genome, "kernel_size")))
            strides = int(gene(genome, f"strides_{i}", 1))
            filters = int(gene(genome, f"filters_{i}", 32))
            x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=not bn,
                         kernel_initializer=init, kernel_regularizer=reg, name=f"conv_{i}")(x)
            side = -(-side // strides)
            if bn:
                x = L.BatchNormalization(momentum=BN_MOMENTUM, scale=act not in ("relu", "leaky_relu"), name=f"conv_bn_{i}")(x)
            x = activation(x, f"conv_act_{i}")
            if gene(genome, "pooling") == "max" and side >= 2:
                x = L.MaxPooling2D(2, name=f"pool_{i}")(x)
                side //= 2
        x = L.Flatten(name="flatten")(x)
        units = int(gene(genome, "dense_units"))
        if units > 0:
            x = L.Dense(units, use_bias=not bn, kernel_initializer=init, kernel_regularizer=reg, name="dense")(x)
            if bn:
                x = L.BatchNormalization(momentum=BN_MOMENTUM, scale=act not in ("relu", "leaky_relu"), name="dense_bn")(x)
            x = activation(x, "dense_act")
        if drop > 0:
            x = L.Dropout(drop, name="dropout")(x)
    else:
        raise ValueError(f"unknown model {model!r}")
    out = L.Dense(inputs.n_classes, activation="softmax", name="output")(x)
    m = keras.Model(x_in, out, name=f"{model}_genome")
    if compile:
        m.compile(optimizer=make_optimizer(keras, genome), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        augment = [layer for layer in m.layers if layer.name.startswith("aug_")]
        if augment and keras.backend.backend() == "jax":
            # Keras marks its random image transforms as not XLA-compilable (TensorFlow's kernel
            # is not); their JAX implementation is, and without jit JAX trains op by op, about
            # 100x slower. Set after compile: the saved compile config keeps jit_compile off, so
            # the exported model loads without a warning where the transforms are not compilable
            for layer in augment:
                layer.supports_jit = True
            m.jit_compile = True
    return m


def dense_layers(m) -> list[tuple[Any, Any, str]]:
    """(kernel, bias, activation) of every Dense layer of an mlp genome's model, in order;
    raises ``ValueError`` if the model has layers a plain dense network cannot express."""
    out = []
    act = "linear"
    for layer in m.layers:
        kind = type(layer).__name__
        if kind in ("InputLayer", "Flatten", "Dropout"):
            continue
        if kind == "Rescaling" and float(layer.scale) == 1.0 and float(layer.offset) == 0.0:
            continue
        if kind == "Dense":
            w = layer.get_weights()
            bias = w[1] if len(w) > 1 else None
            out.append([w[0], bias, layer.activation.__name__])
            continue
        if kind == "Activation" and out:
            out[-1][2] = layer.activation.__name__
            continue
        if kind == "LeakyReLU" and out:
            out[-1][2] = "leaky_relu"
            continue
        raise ValueError(f"layer {layer.name} ({kind}) is not part of a plain dense network")
    del act
    return [tuple(t) for t in out]
