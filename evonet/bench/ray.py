"""How well Ray spreads Keras-training evaluations over the cores of this machine.

:func:`bench_ray` runs one batch of training evaluations (the dense digits classifier of
:mod:`evonet.problems.nas.keras_train`, about 2 s each with one TensorFlow thread) three
times: in this process (:class:`~evonet.executors.LocalExecutor`), then with Ray on 1
and on 2 warm workers (:class:`~evonet.executors.RayExecutor`, Ray started here with
:class:`~evonet.executors.LocalRay`). Each executor first runs one untimed evaluation
per worker, so TensorFlow's import and start-up are not counted (warm workers are what
a run sees after its first generation).

Figures:

* ``serial_evals_per_s``, ``ray1_evals_per_s``, ``ray2_evals_per_s``: evaluations per
  second of wall-clock time for the batch;
* ``speedup_2_vs_1``: ``ray2 / ray1`` (2 cores: ideally 2);
* ``overhead_fraction``: the dispatch overhead of Ray per evaluation relative to the
  evaluation itself, ``(wall_ray1 / evals - eval_s) / eval_s`` where ``eval_s`` is the
  mean duration of an evaluation measured inside the worker (submitting, scheduling,
  shipping the task and the result, the driver's loop);
* ``worker_slowdown_fraction``: ``serial / ray1 - 1``, how much slower one Ray worker
  is than the same evaluations in this process (overhead plus any difference between the
  processes);
* ``identical_results``: the three runs gave the same fitness for every evaluation.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Callable

import numpy as np

from evonet.problems.nas.keras_train import DEFAULT_PARAMS, TrainTask, digits_data, evaluate_train_task


def _timed_map(executor, tasks) -> tuple[float, list]:
    start = time.perf_counter()
    parts = executor.map(evaluate_train_task, tasks)
    return time.perf_counter() - start, [r for part in parts for r in part]


def bench_ray(evals: int = 8, epochs: int | None = None, seed: int = 0, workers: tuple[int, ...] = (1, 2),
              log: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark; returns the figures as a JSON-ready dict (see the module doc)."""
    from evonet.executors import LocalExecutor, LocalRay, RayExecutor, import_ray
    from evonet.tf_utils import configure_tensorflow

    say = log or (lambda text: None)
    configure_tensorflow(1)  # the in-process runs get one thread too, like a worker
    params = dict(DEFAULT_PARAMS)
    if epochs is not None:
        params["epochs"] = int(epochs)
    data = digits_data()
    seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(evals + max(workers), dtype=np.uint32)]
    batch_seeds, warm_seeds = seeds[:evals], seeds[evals:]
    out: dict = {"evals": evals, "params": params, "cpus": os.cpu_count()}

    say(f"in-process: {evals} evaluations")
    local = LocalExecutor()
    handle = local.share(data)
    local.map(evaluate_train_task, [TrainTask(params, warm_seeds[0], handle)])
    wall, serial = _timed_map(local, [TrainTask(params, s, handle) for s in batch_seeds])
    failed = [r.error for r in serial if r.error]
    if failed:
        raise RuntimeError(f"the benchmark's evaluation failed: {failed[0]}")
    out["serial_seconds"] = round(wall, 3)
    out["serial_evals_per_s"] = round(evals / wall, 4)
    out["eval_seconds"] = round(float(np.mean([r.seconds for r in serial])), 4)
    runs = {"serial": [r.fitness for r in serial]}

    ray = import_ray()
    with LocalRay():
        for n in workers:
            say(f"ray, {n} worker{'s' if n > 1 else ''}: {evals} evaluations")
            with RayExecutor(workers=n) as executor:
                handle = executor.share(data)  # the dataset goes into the object store once
                executor.map(evaluate_train_task, [TrainTask(params, s, handle) for s in warm_seeds[:n]])
                wall, results = _timed_map(executor, [TrainTask(params, s, handle) for s in batch_seeds])
            runs[f"ray{n}"] = [r.fitness for r in results]
            out[f"ray{n}_seconds"] = round(wall, 3)
            out[f"ray{n}_evals_per_s"] = round(evals / wall, 4)
            out[f"ray{n}_eval_seconds"] = round(float(np.mean([r.seconds for r in results])), 4)
    if "ray1_evals_per_s" in out and "ray2_evals_per_s" in out:
        out["speedup_2_vs_1"] = round(out["ray2_evals_per_s"] / out["ray1_evals_per_s"], 3)
    if "ray1_seconds" in out:
        eval_s = out["ray1_eval_seconds"]
        out["overhead_fraction"] = round(max(0.0, (out["ray1_seconds"] / evals - eval_s) / eval_s), 5)
        out["worker_slowdown_fraction"] = round(out["serial_evals_per_s"] / out["ray1_evals_per_s"] - 1.0, 4)
    out["identical_results"] = all(v == runs["serial"] for v in runs.values())
    out["versions"] = {"python": platform.python_version(), "ray": ray.__version__}
    try:
        import tensorflow as tf

        out["versions"]["tensorflow"] = tf.__version__
    except ImportError:  # pragma: no cover - Keras on another backend
        pass
    return out
