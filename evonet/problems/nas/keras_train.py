"""Fitness by training: build a small dense Keras classifier, train it, score it on held-out data.

:func:`train_and_score` is pure: ``(params, seed, data) -> EvalResult``, where ``data`` is
the dataset or a handle from ``executor.share`` (the dataset goes into Ray's object store
once and every worker caches it, see :func:`evonet.executors.resolve`). Every random
draw comes from ``seed``: the initial weights (seeded initializers) and the order of the
training samples (a numpy Generator), so an evaluation gives the same result in any
process. TensorFlow runs with one thread (:func:`evonet.tf_utils.import_keras`), and so does
the input pipeline (:func:`evonet.evaluators.accuracy.one_thread_batches`).

The digits data (:func:`digits_data`) makes one evaluation with the default parameters
take about 2 s on one core: the Ray benchmark (``evonet bench ray``) uses it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evonet.problems.base import EvalResult

#: A small dense classifier: about 2 s of training on the digits with one thread.
DEFAULT_PARAMS: dict = {
    "hidden": [64, 64],
    "activation": "relu",
    "epochs": 48,
    "batch_size": 32,
    "learning_rate": 1e-3,
}


def digits_data(val_fraction: float = 0.25, seed: int = 0) -> dict[str, np.ndarray]:
    """The shipped digits split into train / validation: float32 pixels in [0, 1], int32 labels."""
    from evonet.data import load_digits

    images, target = load_digits()
    x = images.reshape(len(images), -1).astype(np.float32) / 16.0
    y = target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    return {"x_train": x[train], "y_train": y[train], "x_val": x[val], "y_val": y[val]}


def _seed32(seed: int, k: int) -> int:
    return int(np.random.SeedSequence([int(seed), k]).generate_state(1)[0] & 0x7FFFFFFF)


def train_and_score(params: dict, seed: int, data: Any) -> EvalResult:
    """Train the classifier ``params`` describe on ``data`` and score it.

    ``params``: ``hidden`` (layer sizes), ``activation``, ``epochs``, ``batch_size``,
    ``learning_rate`` (missing keys: :data:`DEFAULT_PARAMS`). ``data``: a mapping with
    ``x_train, y_train, x_val, y_val`` or a shared handle of one. Fitness = validation
    accuracy; metrics: ``val_loss``, ``train_accuracy``, ``n_params``. An evaluation that
    raises gives a failed result (``error`` set, fitness -inf) instead.
    """
    from evonet.problems.nas.accuracy import one_thread_batches
    from evonet.executors import resolve

    start = time.perf_counter()
    p = {**DEFAULT_PARAMS, **dict(params)}
    try:
        d = resolve(data)
        from evonet.tf_utils import import_keras

        keras = import_keras()
        x, y = d["x_train"], d["y_train"]
        n_classes = int(max(y.max(), d["y_val"].max())) + 1
        layers = [keras.Input((x.shape[1],))]
        for k, units in enumerate(p["hidden"]):
            layers.append(keras.layers.Dense(
                int(units), activation=p["activation"],
                kernel_initializer=keras.initializers.GlorotUniform(seed=_seed32(seed, k)),
            ))
        layers.append(keras.layers.Dense(
            n_classes, kernel_initializer=keras.initializers.GlorotUniform(seed=_seed32(seed, len(p["hidden"]))),
        ))
        model = keras.Sequential(layers)
        model.compile(
            optimizer=keras.optimizers.Adam(float(p["learning_rate"])),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        # the epochs' sample orders from the seed, laid end to end: one fit call, no shuffling by Keras
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1_000_003]))
        order = np.concatenate([rng.permutation(len(x)) for _ in range(int(p["epochs"]))])
        batches = one_thread_batches(keras, x[order], y[order], int(p["batch_size"]))
        if batches is None:
            hist = model.fit(x[order], y[order], batch_size=int(p["batch_size"]), epochs=1, shuffle=False, verbose=0)
        else:
            hist = model.fit(batches, epochs=1, shuffle=False, verbose=0)
        val_loss, val_acc = model.evaluate(d["x_val"], d["y_val"], batch_size=1024, verbose=0)
        metrics = {
            "val_loss": float(val_loss),
            "train_accuracy": float(hist.history["accuracy"][-1]),
            "n_params": float(model.count_params()),
        }
        del model
        # a worker trains many models: drop Keras's global state (no gc.collect: 0.4 s with TensorFlow)
        keras.backend.clear_session(free_memory=False)
        return EvalResult(fitness=float(val_acc), metrics=metrics, seconds=time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - a broken evaluation must not kill the run
        return EvalResult(fitness=float("-inf"), weight=0, error=f"{type(exc).__name__}: {exc}",
                          seconds=time.perf_counter() - start)


@dataclass(frozen=True)
class TrainTask:
    """One training evaluation for ``executor.map`` (picklable; ``data`` is a shared handle)."""

    params: dict = field(hash=False)
    seed: int
    data: Any = field(hash=False, repr=False)


def evaluate_train_task(task: TrainTask) -> list[EvalResult]:
    """``executor.map`` function: one result per task."""
    return [train_and_score(task.params, task.seed, task.data)]


def failed_train_results(task: TrainTask, error: str) -> list[EvalResult]:
    """The result of a task that could not run (worker lost, timeout)."""
    return [EvalResult(fitness=float("-inf"), weight=0, error=error)]
