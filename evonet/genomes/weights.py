"""Weight-vector genomes: a fixed :class:`~evonet.nn.MLPSpec` and its flat weights.

The genome of a network is the concatenation of ``model.get_weights()`` flattened in C
order (kernel then bias per ``Dense`` layer, see :mod:`evonet.nn`). This module converts
genomes to Keras models and back, draws initial populations, and reads the weights of a
saved ``.keras`` file without importing TensorFlow when the file is a plain dense stack.

Keras is imported lazily inside the functions that need it, so importing this module
stays cheap.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evonet.nn import ACTIVATIONS, MLPSpec, flatten, unflatten

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = [
    "INIT_SCHEMES",
    "MODEL_NAME",
    "layer_names",
    "to_keras",
    "from_keras",
    "init_weights",
    "save_keras",
    "keras_config",
    "load_keras_weights",
]

#: Name of the Keras model built by :func:`to_keras`.
MODEL_NAME = "mlp"
#: Schemes accepted by :func:`init_weights`.
INIT_SCHEMES = ("glorot", "uniform")


def layer_names(spec: MLPSpec) -> list[str]:
    """Stable names of the Dense layers of :func:`to_keras`: ``hidden_1 .. hidden_k, output``."""
    return [f"hidden_{i + 1}" for i in range(len(spec.hidden))] + ["output"]


def _as_single(spec: MLPSpec, flat: np.ndarray) -> np.ndarray:
    flat = np.asarray(flat, dtype=np.float32)
    if flat.shape != (spec.n_params,):
        raise ValueError(f"expected a weight vector of shape ({spec.n_params},) for {spec.sizes}, got {flat.shape}")
    return flat


def to_keras(spec: MLPSpec, flat: np.ndarray) -> "keras.Model":
    """The Keras ``Sequential`` model of ``spec`` carrying the weights ``flat``.

    The model is ``keras.Input((n_inputs,))`` followed by one ``Dense`` layer per entry of
    ``spec.layer_shapes`` with the spec's activations; its name is ``"mlp"`` and the
    layers are named by :func:`layer_names`, independent of how many models the process
    has already built.
    """
    flat = _as_single(spec, flat)
    from evonet.tf_utils import import_keras

    keras = import_keras()
    layers: list[Any] = [keras.Input(shape=(spec.n_inputs,), name="input")]
    for (n_in, n_out), act, name in zip(spec.layer_shapes, spec.activations(), layer_names(spec)):
        layers.append(keras.layers.Dense(n_out, activation=act, name=name))
    model = keras.Sequential(layers, name=MODEL_NAME)
    model.set_weights([w for pair in unflatten(spec, flat) for w in pair])
    return model


def _activation_name(keras: Any, layer: Any) -> str | None:
    try:
        name = keras.activations.serialize(layer.activation)
    except Exception:  # custom callables that Keras cannot serialise
        return None
    return name if isinstance(name, str) else None


def from_keras(model: "keras.Model") -> tuple[MLPSpec, np.ndarray]:
    """The spec and flat weights of a Keras model built like :func:`to_keras`'s.

    Accepts a built ``keras.Sequential`` whose layers are all plain ``Dense`` layers with
    biases, float32 computation and activations from :data:`evonet.nn.ACTIVATIONS`, the
    hidden ones all equal. Raises ``ValueError`` (one line) for anything else, since
    :func:`evonet.nn.forward` could not reproduce its outputs.

    A model without hidden layers has no hidden activation; its spec then carries
    :class:`~evonet.nn.MLPSpec`'s default ``activation`` (compare specs through
    ``sizes`` and ``activations()``).
    """
    from evonet.tf_utils import import_keras

    keras = import_keras()
    if not isinstance(model, keras.Sequential):
        raise ValueError(f"expected a keras.Sequential of Dense layers, got {type(model).__name__}")
    dense = model.layers
    if not dense:
        raise ValueError("the model has no layers")
    for i, layer in enumerate(dense):
        where = f"layer {i} ({layer.name!r})"
        if type(layer) is not keras.layers.Dense:
            raise ValueError(f"{where}: only Dense layers are supported, got {type(layer).__name__}")
        if not layer.built:
            raise ValueError(f"{where}: the model is not built (give it a keras.Input)")
        if not layer.use_bias:
            raise ValueError(f"{where}: Dense layers without bias are not supported")
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            raise ValueError(f"{where}: LoRA or quantized Dense layers are not supported")
        if layer.compute_dtype != "float32" or layer.variable_dtype != "float32":
            raise ValueError(f"{where}: only float32 layers are supported, got {layer.dtype_policy.name}")
        act = _activation_name(keras, layer)
        if act not in ACTIVATIONS:
            raise ValueError(
                f"{where}: unsupported activation {act or layer.activation!r}; choose from {', '.join(ACTIVATIONS)}"
            )
    acts = [_activation_name(keras, layer) for layer in dense]
    if len(set(acts[:-1])) > 1:
        raise ValueError(f"hidden layers must share one activation, got {', '.join(acts[:-1])}")
    kernels = [np.asarray(layer.kernel) for layer in dense]
    sizes = [kernels[0].shape[0]] + [k.shape[1] for k in kernels]
    spec = MLPSpec(
        n_inputs=int(sizes[0]),
        hidden=tuple(int(s) for s in sizes[1:-1]),
        n_outputs=int(sizes[-1]),
        activation=acts[0] if len(acts) > 1 else "tanh",
        output_activation=acts[-1],
    )
    flat = flatten([(np.asarray(layer.kernel), np.asarray(layer.bias)) for layer in dense])
    return spec, flat


def init_weights(
    spec: MLPSpec,
    rng: np.random.Generator,
    n: int,
    scheme: str = "glorot",
    *,
    bound: float | None = None,
) -> np.ndarray:
    """``n`` initial weight vectors, shape ``(n, spec.n_params)`` float32.

    Schemes:
        ``"glorot"``: each kernel ~ U(-l, l) with ``l = sqrt(6 / (n_in + n_out))`` (Keras'
            GlorotUniform), biases zero; with ``bound`` given, ``l`` is capped at it so
            the genes start inside the search space.
        ``"uniform"``: every weight and bias ~ U(-bound, bound), ``bound`` defaulting to 1.

    All draws come from ``rng``, layer by layer (kernels of all ``n`` networks at once).
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose from {', '.join(INIT_SCHEMES)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if bound is not None and not bound > 0:
        raise ValueError(f"bound must be > 0, got {bound}")
    if scheme == "uniform":
        b = 1.0 if bound is None else float(bound)
        return rng.uniform(-b, b, size=(n, spec.n_params)).astype(np.float32)
    out = np.zeros((n, spec.n_params), dtype=np.float32)
    for kernel, _bias in unflatten(spec, out):  # views into ``out``
        n_in, n_out = kernel.shape[-2:]
        limit = float(np.sqrt(6.0 / (n_in + n_out)))
        if bound is not None:
            limit = min(limit, float(bound))
        kernel[...] = rng.uniform(-limit, limit, size=kernel.shape)
    return out


# ----------------------------------------------------------------------------- files


def _dense_config(name: str, units: int, activation: str, n_in: int) -> dict:
    dtype = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {
            "name": name, "trainable": True, "dtype": dtype, "units": units, "activation": activation,
            "use_bias": True,
            "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                   "config": {"seed": None, "input_axes": None, "output_axes": None},
                                   "registered_name": None},
            "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                 "registered_name": None},
            "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None, "quantization_config": None,
        },
        "registered_name": None,
        "build_config": {"input_shape": [None, n_in]},
    }


def keras_config(spec: MLPSpec) -> dict:
    """The ``config.json`` Keras 3 writes for the model of :func:`to_keras` (what
    ``model.save`` stores, less its per-process ``shared_object_id`` s)."""
    layers = [{
        "module": "keras.layers", "class_name": "InputLayer",
        "config": {"batch_shape": [None, spec.n_inputs], "dtype": "float32", "sparse": False, "ragged": False,
                   "name": "input", "optional": False},
        "registered_name": None,
    }]
    for (n_in, n_out), act, name in zip(spec.layer_shapes, spec.activations(), layer_names(spec)):
        layers.append(_dense_config(name, n_out, act, n_in))
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": MODEL_NAME, "trainable": True,
            "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                      "registered_name": None},
            "layers": layers,
            "build_input_shape": [None, spec.n_inputs],
        },
        "registered_name": None,
        "build_config": {"input_shape": [None, spec.n_inputs]},
        "compile_config": {},
    }


def _keras_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("keras")
    except metadata.PackageNotFoundError:  # pragma: no cover - keras is a dependency
        return "3"


def _plain_archive(spec: MLPSpec, flat: np.ndarray) -> dict[str, bytes]:
    """The three members of the ``.keras`` archive of :func:`to_keras` ``(spec, flat)``,
    in the layout of Keras 3's saving library (``metadata.json``, ``config.json``,
    ``model.weights.h5`` with ``layers/dense[_i]/vars/{0,1}``)."""
    import h5py
    import time

    blob = io.BytesIO()
    with h5py.File(blob, "w") as h5:
        layers = h5.create_group("layers")
        for i, ((kernel, bias), name) in enumerate(zip(unflatten(spec, flat), layer_names(spec))):
            group = layers.create_group("dense" if i == 0 else f"dense_{i}").create_group("vars")
            group.attrs["name"] = name
            group.create_dataset("0", data=np.asarray(kernel, np.float32))
            group.create_dataset("1", data=np.asarray(bias, np.float32))
        h5.create_group("vars").attrs["name"] = MODEL_NAME
    metadata = {"keras_version": _keras_version(), "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S")}
    return {"metadata.json": json.dumps(metadata).encode(), "config.json": json.dumps(keras_config(spec)).encode(),
            "model.weights.h5": blob.getvalue()}


def save_keras(path: str | os.PathLike, spec: MLPSpec, flat: np.ndarray) -> Path:
    """Write the Keras model of ``(spec, flat)`` to ``path`` (a ``.keras`` file), atomically.

    The file is what ``to_keras(spec, flat).save(path)`` writes (``keras.saving.load_model``
    loads it on any backend), but it is written with ``zipfile`` and ``h5py``, without
    importing Keras or TensorFlow: a snake or weight-vector run never pays their import
    (about 5-10 s and 600 MB) to export its best network. The model goes to a temporary
    file in the same directory, then replaces ``path``, so readers never see a
    half-written file.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: a Keras model file must end in .keras")
    members = _plain_archive(spec, _as_single(spec, flat))
    from evonet.core.store import mkstemp_for

    fd, tmp = mkstemp_for(path, prefix=f".{path.stem}-", suffix=".keras")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            for name, data in members.items():
                z.writestr(name, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


class _NotPlain(Exception):
    """The file is not in the layout the fast reader understands."""


def _spec_from_config(config: dict) -> tuple[MLPSpec, list[int]]:
    """Spec of a saved Sequential config, if it is exactly a plain dense stack."""
    if config.get("class_name") != "Sequential":
        raise _NotPlain
    layers = config.get("config", {}).get("layers", [])
    n_inputs = None
    if layers and layers[0].get("class_name") == "InputLayer":
        shape = layers[0]["config"].get("batch_shape")
        if not (isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int)):
            raise _NotPlain
        n_inputs = shape[1]
        layers = layers[1:]
    if n_inputs is None or not layers:
        raise _NotPlain
    units, acts = [], []
    for layer in layers:
        c = layer.get("config", {})
        dtype = c.get("dtype")
        dtype_name = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
        if (
            layer.get("class_name") != "Dense"
            or layer.get("module") != "keras.layers"
            or layer.get("registered_name") not in (None, "Dense")
            or c.get("use_bias") is not True
            or c.get("lora_rank") not in (None, 0)
            or c.get("quantization_config") is not None
            or dtype_name != "float32"
            or c.get("activation") not in ACTIVATIONS
            or not isinstance(c.get("units"), int)
        ):
            raise _NotPlain
        units.append(c["units"])
        acts.append(c["activation"])
    if len(set(acts[:-1])) > 1:
        raise _NotPlain
    spec = MLPSpec(
        n_inputs=n_inputs,
        hidden=tuple(units[:-1]),
        n_outputs=units[-1],
        activation=acts[0] if len(acts) > 1 else "tanh",
        output_activation=acts[-1],
    )
    return spec, units


def _read_plain(path: Path) -> tuple[MLPSpec, np.ndarray]:
    """Read a plain dense ``.keras`` file with zipfile + h5py, no TensorFlow."""
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        if "config.json" not in names or "model.weights.h5" not in names:
            raise _NotPlain
        try:
            config = json.loads(z.read("config.json"))
        except ValueError as e:
            raise _NotPlain from e
        spec, _ = _spec_from_config(config)
        weights_blob = z.read("model.weights.h5")
    import h5py

    layers = []
    with h5py.File(io.BytesIO(weights_blob), "r") as h5:
        # Keras' saving library names the i-th Dense of a Sequential dense, dense_1, ...
        for i, (n_in, n_out) in enumerate(spec.layer_shapes):
            group = h5.get(f"layers/{'dense' if i == 0 else f'dense_{i}'}/vars")
            if group is None or set(group.keys()) != {"0", "1"}:
                raise _NotPlain
            kernel, bias = np.asarray(group["0"]), np.asarray(group["1"])
            if kernel.shape != (n_in, n_out) or bias.shape != (n_out,) or kernel.dtype != np.float32:
                raise _NotPlain
            layers.append((kernel, bias))
        if len(h5.get("layers", {})) != len(layers):
            raise _NotPlain
    return spec, flatten(layers)


def load_keras_weights(path: str | os.PathLike, *, fast: bool = True) -> tuple[MLPSpec, np.ndarray]:
    """The spec and flat weights stored in a ``.keras`` file.

    With ``fast`` (default), a file holding exactly a plain dense ``Sequential`` (what
    :func:`to_keras` builds) is read with ``zipfile`` and ``h5py`` without importing
    TensorFlow; any other file, or ``fast=False``, goes through
    ``keras.saving.load_model`` and :func:`from_keras` (which refuses non-dense models
    with a ``ValueError``). A missing file raises ``FileNotFoundError`` and a file that is
    no zip archive ``ValueError``, both before TensorFlow is imported; other read
    failures raise whatever Keras raises.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a .keras archive (not a zip file)")
    if fast:
        try:
            return _read_plain(path)
        except (_NotPlain, KeyError, zipfile.BadZipFile):
            pass
    from evonet.tf_utils import import_keras

    keras = import_keras()
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    return from_keras(model)
