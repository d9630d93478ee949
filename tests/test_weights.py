"""Weight-vector genomes: Keras round trips, numpy/Keras agreement, files, init."""

from __future__ import annotations

import os
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest

from evonet import nn
from evonet.genomes.weights import (
    from_keras,
    init_weights,
    layer_names,
    load_keras_weights,
    save_keras,
    to_keras,
)
from evonet.nn import ACTIVATIONS, MLPSpec
from evonet.tf_utils import configure_tensorflow, import_keras

ROOT = Path(__file__).resolve().parents[1]

# Keras 3's model.save under numpy 2 warns once per variable; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SPECS = [
    MLPSpec(7, (9, 15), 3, "tanh", "linear"),
    MLPSpec(24, (16, 16), 3, "relu", "linear"),
    MLPSpec(4, (), 2, "tanh", "sigmoid"),  # no hidden layer
    *[MLPSpec(5, (6, 4), 3, act, act) for act in ACTIVATIONS],
]
IDS = [f"{'-'.join(map(str, s.sizes))}-{s.activation}-{s.output_activation}" for s in SPECS]


@pytest.fixture(scope="module")
def keras():
    configure_tensorflow(1)
    return import_keras()


def _random_weights(spec: MLPSpec, seed: int, n: int = 1) -> np.ndarray:
    # non-zero biases too, so a bias misplaced in the layout would show
    return init_weights(spec, np.random.default_rng(seed), n, "uniform", bound=0.8)


def test_configure_tensorflow_is_idempotent(keras):
    import tensorflow as tf

    in_force = configure_tensorflow(1)
    assert configure_tensorflow(4) == in_force  # the first configuration stays
    assert in_force == (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


def test_configure_tensorflow_in_a_fresh_process_is_quiet_and_single_threaded():
    code = (
        "from evonet.tf_utils import configure_tensorflow, import_keras\n"
        "import numpy as np\n"
        "assert configure_tensorflow(1) == (1, 1)\n"
        "keras = import_keras()\n"
        "keras.layers.Dense(2)(np.zeros((1, 3), 'float32'))\n"  # starts the runtime
        "import tensorflow as tf\n"
        "assert tf.config.threading.get_intra_op_parallelism_threads() == 1\n"
        "assert tf.config.threading.get_inter_op_parallelism_threads() == 1\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr == ""


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_round_trip_is_exact_and_forward_matches_keras(keras, spec):
    flat = _random_weights(spec, 1)[0]
    model = to_keras(spec, flat)
    assert model.name == "mlp"
    assert [layer.name for layer in model.layers] == layer_names(spec)
    assert model.input_shape == (None, spec.n_inputs)

    spec2, flat2 = from_keras(model)
    assert spec2.sizes == spec.sizes and spec2.activations() == spec.activations()
    if spec.hidden:
        assert spec2 == spec
    assert flat2.dtype == np.float32 and np.array_equal(flat2, flat)
    # the genome layout is get_weights() flattened in C order
    assert np.array_equal(np.concatenate([w.ravel() for w in model.get_weights()]), flat)

    x = np.random.default_rng(2).normal(size=(11, spec.n_inputs)).astype(np.float32)
    expected = np.asarray(model(x))
    got = nn.forward(spec, nn.unflatten(spec, flat), x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", SPECS[:2], ids=IDS[:2])
def test_batched_forward_matches_each_keras_model(keras, spec):
    P, N = 4, 6
    flats = _random_weights(spec, 3, P)
    x = np.random.default_rng(4).normal(size=(P, N, spec.n_inputs)).astype(np.float32)
    batched = nn.forward(spec, nn.unflatten(spec, flats), x)
    assert batched.shape == (P, N, spec.n_outputs)
    for p in range(P):
        expected = np.asarray(to_keras(spec, flats[p])(x[p]))
        np.testing.assert_allclose(batched[p], expected, rtol=1e-5, atol=1e-5)


def test_save_and_load_keras_preserves_weights(keras, tmp_path):
    spec = SPECS[0]
    flat = _random_weights(spec, 5)[0]
    path = save_keras(tmp_path / "net.keras", spec, flat)
    assert [p.name for p in tmp_path.iterdir()] == ["net.keras"]  # no temp file left

    loaded = keras.saving.load_model(path, compile=False)
    assert [layer.name for layer in loaded.layers] == layer_names(spec)
    assert from_keras(loaded)[0] == spec
    assert np.array_equal(from_keras(loaded)[1], flat)

    fast = load_keras_weights(path)
    slow = load_keras_weights(path, fast=False)
    for s, w in (fast, slow):
        assert s == spec and np.array_equal(w, flat)

    # model.save of a model built elsewhere reads back the same way
    to_keras(spec, flat).save(tmp_path / "plain.keras")
    assert np.array_equal(load_keras_weights(tmp_path / "plain.keras")[1], flat)


def _without_shared_ids(obj):
    if isinstance(obj, dict):
        return {k: _without_shared_ids(v) for k, v in obj.items() if k != "shared_object_id"}
    if isinstance(obj, list):
        return [_without_shared_ids(v) for v in obj]
    return obj


def _h5_tree(blob: bytes) -> dict:
    import io

    import h5py

    tree = {}
    with h5py.File(io.BytesIO(blob), "r") as h5:
        tree["/"] = dict(h5.attrs)
        h5.visititems(lambda name, obj: tree.__setitem__(
            name, (dict(obj.attrs), np.asarray(obj).tolist() if isinstance(obj, h5py.Dataset) else None)))
    return tree


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_save_keras_writes_what_keras_writes(keras, tmp_path, spec):
    """save_keras writes the archive without Keras: its config and weights file equal what
    ``model.save`` writes for the same model, and Keras loads it to the same outputs."""
    import json
    import zipfile

    flat = _random_weights(spec, 7)[0]
    ours = save_keras(tmp_path / "ours.keras", spec, flat)
    theirs = tmp_path / "theirs.keras"
    to_keras(spec, flat).save(theirs)
    with zipfile.ZipFile(ours) as a, zipfile.ZipFile(theirs) as b:
        assert sorted(a.namelist()) == sorted(b.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        assert json.loads(a.read("config.json")) == _without_shared_ids(json.loads(b.read("config.json")))
        assert _h5_tree(a.read("model.weights.h5")) == _h5_tree(b.read("model.weights.h5"))
        ours_meta, theirs_meta = json.loads(a.read("metadata.json")), json.loads(b.read("metadata.json"))
        assert ours_meta.keys() == theirs_meta.keys() and ours_meta["keras_version"] == keras.__version__
    loaded = keras.saving.load_model(ours, compile=False)
    x = np.random.default_rng(1).normal(size=(6, spec.n_inputs)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), nn.forward(spec, nn.unflatten(spec, flat), x), rtol=1e-5, atol=1e-6)


def test_save_keras_imports_neither_keras_nor_tensorflow(tmp_path):
    spec = MLPSpec(35, (16,), 3, "tanh", "softmax")
    code = (
        "import sys, numpy as np\n"
        "from evonet.nn import MLPSpec\n"
        "from evonet.genomes.weights import save_keras, load_keras_weights\n"
        f"spec = MLPSpec(35, (16,), 3, 'tanh', 'softmax')\n"
        "flat = np.linspace(-1, 1, spec.n_params, dtype=np.float32)\n"
        f"save_keras({str(tmp_path / 'a.keras')!r}, spec, flat)\n"
        f"assert np.array_equal(load_keras_weights({str(tmp_path / 'a.keras')!r})[1], flat)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.keras"]
    assert spec.n_params == 35 * 16 + 16 + 16 * 3 + 3


def test_fast_load_does_not_import_tensorflow(keras, tmp_path):
    spec = MLPSpec(3, tuple([2] * 11), 2, "elu", "softmax")  # 12 layers: dense .. dense_11
    flat = _random_weights(spec, 6)[0]
    path = save_keras(tmp_path / "deep.keras", spec, flat)
    np.save(tmp_path / "flat.npy", flat)
    code = (
        "import sys, numpy as np\n"
        "from evonet.genomes.weights import load_keras_weights\n"
        f"spec, w = load_keras_weights({str(path)!r})\n"
        f"assert np.array_equal(w, np.load({str(tmp_path / 'flat.npy')!r})), 'weights differ'\n"
        f"assert spec.sizes == {spec.sizes!r}, spec\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_load_keras_weights_errors(keras, tmp_path):
    with pytest.raises(FileNotFoundError):
        load_keras_weights(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_text("not a zip")
    with pytest.raises(ValueError, match="not a .keras archive"):
        load_keras_weights(tmp_path / "junk.keras")
    # a non-dense model falls back to Keras and is refused by from_keras
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dropout(0.5), keras.layers.Dense(2)])
    model.save(tmp_path / "dropout.keras")
    with pytest.raises(ValueError, match="only Dense layers"):
        load_keras_weights(tmp_path / "dropout.keras")


def _double(t):
    return t * 2


def _refusals(keras):
    K, L = keras, keras.layers
    inp = K.Input((3,))
    functional = K.Model(inp, L.Dense(2)(inp))
    return [
        (functional, "expected a keras.Sequential"),
        (K.Sequential([K.Input((3,)), L.Dense(4), L.Dropout(0.1), L.Dense(2)]), "only Dense layers"),
        (K.Sequential([K.Input((3,)), L.Dense(4, use_bias=False), L.Dense(2)]), "without bias"),
        (K.Sequential([K.Input((3,)), L.Dense(4, activation="gelu"), L.Dense(2)]), "unsupported activation 'gelu'"),
        (K.Sequential([K.Input((3,)), L.Dense(4, activation=_double), L.Dense(2)]), "unsupported activation"),
        (K.Sequential([K.Input((3,)), L.Dense(4, activation="relu"), L.Dense(4, activation="tanh"), L.Dense(2)]), "share one activation"),
        (K.Sequential([L.Dense(4), L.Dense(2)]), "not built"),
        (K.Sequential([K.Input((3,)), L.Dense(4, dtype="float64"), L.Dense(2)]), "only float32"),
        (K.Sequential([]), "no layers"),
    ]


def test_from_keras_refuses_other_models(keras):
    for model, message in _refusals(keras):
        with pytest.raises(ValueError, match=message) as info:
            from_keras(model)
        assert "\n" not in str(info.value)


def test_to_keras_checks_length():
    spec = SPECS[0]
    with pytest.raises(ValueError, match=f"shape \\({spec.n_params},\\)"):
        to_keras(spec, np.zeros(spec.n_params + 1, np.float32))


def test_init_weights_glorot():
    spec = SPECS[1]
    w = init_weights(spec, np.random.default_rng(0), 50)
    assert w.shape == (50, spec.n_params) and w.dtype == np.float32
    for (kernel, bias), (n_in, n_out) in zip(nn.unflatten(spec, w), spec.layer_shapes):
        limit = np.sqrt(6 / (n_in + n_out))
        assert np.all(bias == 0)
        assert np.abs(kernel).max() <= limit
        assert np.abs(kernel).max() > 0.9 * limit  # spread over the whole interval
        assert abs(kernel.std() - limit / np.sqrt(3)) < 0.05 * limit
    # independent networks, reproducible from the generator
    assert not np.array_equal(w[0], w[1])
    assert np.array_equal(w, init_weights(spec, np.random.default_rng(0), 50))
    capped = init_weights(MLPSpec(1, (), 1), np.random.default_rng(0), 100, bound=0.5)
    assert np.abs(capped).max() <= 0.5


def test_init_weights_uniform():
    spec = SPECS[0]
    w = init_weights(spec, np.random.default_rng(1), 20, "uniform", bound=2.0)
    assert w.shape == (20, spec.n_params) and w.dtype == np.float32
    assert np.abs(w).max() <= 2.0 and np.abs(w).max() > 1.9
    biases = np.concatenate([b.ravel() for _, b in nn.unflatten(spec, w)])
    assert np.any(biases != 0)
    assert np.abs(init_weights(spec, np.random.default_rng(1), 5, "uniform")).max() <= 1.0
    with pytest.raises(ValueError, match="unknown init scheme 'xavier'"):
        init_weights(spec, np.random.default_rng(1), 5, "xavier")
    with pytest.raises(ValueError, match="bound must be > 0"):
        init_weights(spec, np.random.default_rng(1), 5, "uniform", bound=0)
