"""``evonet.search``: architecture search over the user's own Keras model family, from Python.

::

    r = evonet.search(build_model, x_train, y_train, validation_data=(x_val, y_val),
                      epochs=10, population=8, generations=3, seed=0, out="runs/mine")
    r.best_hyperparameters, r.best_model, r.logbook, r.run_dir

``build_model(hp)`` declares its hyperparameters as KerasTuner's do (:mod:`evonet.problems.nas.hp`) and
returns a compiled ``keras.Model`` (with ``metrics=["accuracy"]``: the fitness is validation
accuracy). The build function is run a few times first to discover its hyperparameters
(:func:`evonet.hp.discover`); the search is then an ordinary evonet run
(:func:`evonet.runner.run_experiment` with a ready
:class:`~evonet.problems.user_model.UserModelProblem`): the same run directory as ``evonet
run`` (logbook, checkpoints, ``best/model.keras``, ``summary.json``), so ``evonet report``
and ``evonet resume`` work on it (the problem, build function and arrays included, is
pickled into ``RUN_DIR/problem.pkl``). Bad arguments raise
:class:`~evonet.errors.ConfigError` with a one-line message before anything is trained.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from evonet.core.errors import ConfigError

_STOP_KEYS = ("target_fitness", "stagnation", "max_seconds", "max_evaluations")


@dataclass
class SearchResult:
    """What :func:`search` returns; every figure also lies in ``run_dir``."""

    run_dir: Path
    best_hyperparameters: dict
    best_fitness: float
    logbook: list
    summary: dict
    _model: Any = field(default=None, repr=False)

    @property
    def best_model(self):
        """The best genome's model refit on training + validation data (compiled, trained);
        loaded from ``run_dir/best/model.keras`` when not in memory."""
        if self._model is None:
            from evonet.keras_backend import load_model

            path = self.run_dir / "best" / "model.keras"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no saved model (the best genome could not be refit: "
                                        f"{self.summary.get('best', {}).get('error')})")
            self._model = load_model(path)
        return self._model

    def __repr__(self) -> str:
        gens = int(self.logbook[-1]["gen"]) if self.logbook else 0
        return (f"SearchResult(best_fitness={self.best_fitness:.4f}, best_hyperparameters="
                f"{self.best_hyperparameters!r}, generations={gens}, run_dir='{self.run_dir}')")

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, model=None) -> "SearchResult":
        """A result read back from a finished run directory."""
        run_dir = Path(run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        logbook = [json.loads(line) for line in (run_dir / "logbook.jsonl").read_text().splitlines() if line.strip()]
        best = summary.get("best", {})
        return cls(run_dir, _plain(best.get("genome", {})), summary.get("final_fitness"), logbook, summary, model)


def _plain(values: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in values.items()}


def _check_inputs(build_model, x, y, validation_data) -> None:
    if not callable(build_model):
        raise ConfigError(f"build_model: expected a function hp -> compiled keras.Model, got "
                          f"{type(build_model).__name__}")
    for label, arr in (("x", x), ("y", y)):
        if not hasattr(arr, "__len__"):
            raise ConfigError(f"{label}: expected a numpy array, got {type(arr).__name__}")
    if len(x) != len(y):
        raise ConfigError(f"x/y: x has {len(x)} examples but y has {len(y)}")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ConfigError(f"validation_data: expected a pair (x_val, y_val), got {type(validation_data).__name__}")
        xv, yv = validation_data
        if not hasattr(xv, "__len__") or not hasattr(yv, "__len__") or len(xv) != len(yv):
            raise ConfigError("validation_data: x_val and y_val must be arrays of the same length")


def search(build_model: Callable, x, y, *, validation_data=None, validation_split: float = 0.2,
           epochs: int = 10, batch_size: int = 32, patience: int = 3, population: int = 8, generations: int = 3,
           seed: int = 0, out: str | Path | None = None, algorithm: str = "mu_plus_lambda",
           objectives: str = "accuracy", final_folds: int = 0, cv_epochs: str = "full", ensemble: int = 1,
           executor: str = "local", workers: int = 1,
           address: str | None = None, progress: str = "auto", tensorboard: bool = True,
           max_params: int = 1_000_000, stop: dict | None = None, target_fitness: float | None = None,
           max_seconds: float | None = None, name: str = "search", stream: TextIO | None = None,
           max_probes: int = 32, backend: str | None = None, **ga_overrides) -> SearchResult:
    """Evolve the hyperparameters ``build_model`` declares; see the module doc.

    Training: the user's compiled model, ``epochs`` (early stopping after ``patience``
    epochs without a gain in validation accuracy; 0: off), ``batch_size``, one thread per
    training; the training seed of a genome derives from (``seed``, its hash). ``backend``:
    the Keras backend (``"tensorflow"``, ``"jax"``, ``"torch"``; None: ``KERAS_BACKEND``, else
    the backend of a Keras imported already, else TensorFlow); it must be the one
    ``build_model``'s Keras runs, so with another than the default set ``KERAS_BACKEND``
    before importing keras.
    Validation: ``validation_data`` = ``(x_val, y_val)``, else a stratified
    ``validation_split`` of ``(x, y)``. ``objectives="accuracy+params"``: NSGA-II on
    (accuracy, parameter count). ``final_folds=K``: the hall of fame is K-fold
    cross-validated to pick the final best, refit for its full schedule, or with
    ``cv_epochs="best"`` for the epoch count of its best pooled fold accuracy (the folds are
    scored every epoch). ``ensemble=N``: ``best_model`` (and the exported model) averages the
    outputs of the best N distinct hall-of-fame genomes, each refit like the best (N <=
    ``hall_of_fame``). ``executor="processes"`` (worker processes of this machine) or
    ``"ray"`` with ``workers`` (and ``address``). ``stop``: the stop rules (``target_fitness``,
    ``stagnation``, ``max_seconds``, ``max_evaluations``, ``include_final``; ``max_seconds`` counts from the
    call, so probing ``build_model`` and preparing the data are inside it; with
    ``include_final`` the final cross-validation is too). Any other keyword is a ``ga`` setting
    (``cxpb=0.7``, ``mutation={...}``, ``hall_of_fame=4``). ``algorithm="aging"``:
    asynchronous aging evolution; with ``fidelity={"min_budget": 1, "max_budget": epochs}``
    successive halving over epochs (docs/async.md). ``out``: the run directory
    (default ``runs/NAME-seedS-TIMESTAMP``)."""
    from evonet import config as config_mod
    from evonet.data.datasets import from_arrays
    from evonet.problems.nas.hp import discover
    from evonet.problems.nas.user_model import UserModelProblem, budget_of
    from evonet.core.runner import run_experiment

    called = time.perf_counter()
    _check_inputs(build_model, x, y, validation_data)
    stop = dict(stop or {})
    for key, value in (("target_fitness", target_fitness), ("max_seconds", max_seconds)):
        if value is not None:
            stop[key] = value
    ga = {"algorithm": algorithm, "population": population, "generations": generations,
          "reevaluate": False, "selection": {"name": "best"}, "crossover": {"name": "uniform", "indpb": 0.5},
          "mutation": {"name": "gaussian", "mu": 0.0, "sigma": 0.15, "indpb": 0.2},
          "hall_of_fame": min(4, population) if isinstance(population, int) and population >= 1 else 4,
          "final_games": 1}
    if objectives == "accuracy+params":
        ga["selection"] = {"name": "nsga2"}
    if algorithm == "aging":  # asynchronous: a tournament of 4 from the population (docs/async.md)
        ga["selection"] = {"name": "tournament",
                           "tournsize": min(4, population) if isinstance(population, int) and population >= 1 else 4}
        ga["cxpb"] = 0.0
    ga.update(ga_overrides)
    data = {
        "name": name, "seed": seed, "genome": "hyperparameters",
        "search": {"epochs": epochs, "patience": patience, "max_params": max_params, "objectives": objectives,
                   "final_folds": final_folds, "cv_epochs": cv_epochs, "ensemble": ensemble, "backend": backend,
                   "validation": validation_split if validation_data is None else 0.2},
        "ga": ga,
        "executor": {"kind": executor, "workers": workers, "address": address, "chunk": 1},
        "stop": stop, "log": {"progress": progress, "tensorboard": tensorboard},
        "eval_games": 0,
    }
    cfg = config_mod.from_dict(data)  # bad arguments: one-line ConfigErrors naming the setting
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive integer, got {batch_size!r}")
    from evonet.keras_backend import use_backend

    use_backend(cfg.search.backend)  # before discover imports Keras (validated by from_dict)
    dataset = from_arrays(x, y, validation_data, validation_split)
    space = discover(build_model, seed=seed, max_probes=max_probes,
                     name=getattr(build_model, "__name__", "build_model"))
    problem = UserModelProblem(space, dataset, budget_of(epochs, patience, max_params), seed, objectives,
                               final_folds, batch_size, cv_epochs=cfg.search.cv_epochs, backend=cfg.search.backend,
                               ensemble=cfg.search.ensemble)
    if cfg.stop.max_seconds is not None:  # the budget counts from the call: probing and data included
        cfg.stop.max_seconds = max(0.001, cfg.stop.max_seconds - (time.perf_counter() - called))
    run_dir, _ = run_experiment(cfg, out, sys.stdout if stream is None else stream, problem=problem)
    return SearchResult.from_run_dir(run_dir, problem.final_model)
