"""``evonet bench search --budget-s S``: search methods at equal wall-clock compute.

Every method searches the same space, written once as a KerasTuner-style ``build_model(hp)``
(:func:`build_function`: a dense network for ``digits``, a small CNN for ``mnist5k``), on the
same train / validation / test splits (evonet's loaders), with the same epochs cap, batch size
and one-thread training, for the same wall-clock budget of search on one core; then the same
final protocol: the best configuration by validation accuracy is refit on train +
validation for its best epoch count and scored once on the test split (the refit is outside
the budget). Each (method, seed) runs in a fresh subprocess (``--parallel 2``: two at once,
one per core).

Methods (:data:`METHODS`; adding one is one entry: a function ``(build_model, data, budget_s,
epochs, seed, workdir, recorder) -> {"values", "val_accuracy", "best_epoch", "trainings",
"epochs_trained", "busy_s"}`` that stops its search at ``budget_s`` and reports every finished
training epoch to ``recorder``):

* ``evonet``: aging evolution with successive halving over epochs (``ga.algorithm: aging``,
  ``ga.fidelity``: rungs 3, 9, ... up to the cap, :data:`EVONET`), reproducible mode; its
  final configuration is the best of its hall of fame by 3-fold cross-validation, inside the
  budget (``stop.include_final``);
* ``evonet_ga``: evonet's generational (mu + lambda) GA, every genome trained in full;
* ``kt_random``, ``kt_hyperband``, ``kt_bayesian``: KerasTuner's RandomSearch, Hyperband and
  BayesianOptimization, run on ``build_model`` directly; stopped at the budget by a callback
  that ends the current training and closes the oracle;
* ``optuna_tpe_hyperband``: Optuna's TPE sampler with its Hyperband pruner (validation
  accuracy reported every epoch), ``build_model`` through :class:`OptunaHP`;
* ``ray_tune_asha``: Ray Tune's ASHA scheduler (grace period 1 epoch, reduction factor 3)
  over random configurations (``build_model`` answered by evonet's seeded random draw of each
  declaration), one trial at a time on one CPU, actors reused; it starts a one-CPU Ray
  instance (on machines where Ray must not bind to outside interfaces, run the benchmark in
  a loopback-only network namespace).

The work under way when the budget ends is finished, not cut: the epoch of KerasTuner and
Optuna, the job (a rung's epochs) or generation of evonet; its result may be the one chosen,
but the traces (and the plot) count only what finished within the budget. Ray Tune stops its
trials at the budget (``time_budget_s``).

DEHB is not in the harness: its release (0.1.2) requires numpy < 2, which TensorFlow 2.21
and evonet do not run with.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from evonet.core.errors import ConfigError, DependencyNotInstalled, RunFailed

DATASETS = ("digits", "mnist5k")
BATCH_SIZE = 32


# ----------------------------------------------------------------------------- the space


def build_function(dataset: str, input_shape: tuple, n_classes: int) -> Callable:
    """The search space of ``dataset`` as one KerasTuner-style build function."""

    def build_model(hp):
        from evonet.tf_utils import import_keras

        keras = import_keras()
        layers = [keras.Input(input_shape)]
        if dataset == "digits":
            layers.append(keras.layers.Flatten())
            for i in range(hp.Int("layers", 1, 3)):
                layers.append(keras.layers.Dense(hp.Int(f"units_{i}", 16, 256, sampling="log"),
                                                 activation=hp.Choice("activation", ["relu", "elu", "tanh"])))
                if hp.Boolean("dropout"):
                    layers.append(keras.layers.Dropout(hp.Float("rate", 0.05, 0.5)))
        else:
            layers.append(keras.layers.Reshape(input_shape + (1,) if len(input_shape) == 2 else input_shape))
            for i in range(hp.Int("conv_blocks", 1, 3)):
                layers.append(keras.layers.Conv2D(hp.Int(f"filters_{i}", 8, 64, sampling="log"),
                                                  hp.Choice(f"kernel_{i}", [3, 5]), padding="same",
                                                  activation="relu"))
                layers.append(keras.layers.MaxPooling2D(2))
            layers.append(keras.layers.Flatten())
            layers.append(keras.layers.Dense(hp.Int("dense_units", 16, 256, sampling="log"), activation="relu"))
            layers.append(keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5)))
        layers.append(keras.layers.Dense(n_classes, activation="softmax"))
        model = keras.Sequential(layers)
        model.compile(optimizer=keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-2, sampling="log")),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    return build_model


def load_data(dataset: str):
    from evonet.data.datasets import DataRef, load_dataset

    d = load_dataset(DataRef(dataset))
    scale = float(d.x_train.max()) or 1.0
    x = lambda a: (np.asarray(a, dtype=np.float32) / scale)  # noqa: E731
    return {"x_train": x(d.x_train), "y_train": np.asarray(d.y_train), "x_val": x(d.x_val),
            "y_val": np.asarray(d.y_val), "x_test": x(d.x_test), "y_test": np.asarray(d.y_test)}


class OptunaHP:
    """KerasTuner's ``hp`` declarations answered by an Optuna trial's ``suggest_*``."""

    def __init__(self, trial):
        self.trial = trial
        self.values: dict = {}

    def _keep(self, name, value):
        self.values[name] = value
        return value

    def Int(self, name, min_value, max_value, step=1, sampling="linear", default=None):
        return self._keep(name, self.trial.suggest_int(name, int(min_value), int(max_value),
                                                       log=sampling == "log", step=1 if sampling == "log" else step))

    def Float(self, name, min_value, max_value, step=None, sampling="linear", default=None):
        return self._keep(name, self.trial.suggest_float(name, float(min_value), float(max_value),
                                                         log=sampling == "log", step=step))

    def Choice(self, name, values, ordered=None, default=None):
        return self._keep(name, self.trial.suggest_categorical(name, list(values)))

    def Boolean(self, name, default=False):
        return self._keep(name, self.trial.suggest_categorical(name, [False, True]))


class FixedHP:
    """``hp`` answering every declaration with the value a method trained (as it reported
    it: KerasTuner's Bayesian optimization may return an integer one past its log-scale
    range, and the refit builds the model it trained); an undeclared name: its default,
    else the range's minimum, the first choice, False."""

    def __init__(self, values: dict):
        self.values = dict(values)

    def Int(self, name, min_value, max_value, step=1, sampling="linear", default=None):
        return int(self.values.get(name, min_value if default is None else default))

    def Float(self, name, min_value, max_value, step=None, sampling="linear", default=None):
        return float(self.values.get(name, min_value if default is None else default))

    def Choice(self, name, values, ordered=None, default=None):
        return self.values.get(name, values[0] if default is None else default)

    def Boolean(self, name, default=False):
        return bool(self.values.get(name, default))


class Recorder:
    """Every finished training epoch: (seconds since the start, validation accuracy)."""

    def __init__(self, budget_s: float):
        self.t0 = time.perf_counter()
        self.budget_s = float(budget_s)
        self.trace: list[tuple[float, float]] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def over(self) -> bool:
        return self.elapsed() >= self.budget_s

    def epoch(self, val_accuracy: float) -> None:
        if not self.over():  # what finishes after the budget does not count
            self.trace.append((round(self.elapsed(), 3), float(val_accuracy)))


def _batches(keras, x, y, seed=None):
    from evonet.problems.nas.accuracy import one_thread_batches

    ds = one_thread_batches(keras, x, y, BATCH_SIZE, seed=seed)
    return (x, y) if ds is None else (ds,)


# ----------------------------------------------------------------------------- methods


#: evonet's setting in the benchmark (``evonet.search`` keywords besides the common ones)
EVONET = {"algorithm": "aging", "population": 8, "lag": 2, "min_budget": 3, "reduction_factor": 3, "brackets": 1,
          "final_folds": 3, "hall_of_fame": 3, "cv_epochs": "best"}


def _evonet(build_model, data, budget_s, epochs, seed, workdir, recorder, aging: bool, setting=None) -> dict:
    import evonet

    kw = {}
    if aging:
        st = dict(EVONET, **(setting or {}))
        kw = dict(algorithm=st["algorithm"], population=st["population"], lag=st["lag"],
                  fidelity={"min_budget": min(st["min_budget"], epochs), "max_budget": epochs,
                            "reduction_factor": st["reduction_factor"], "brackets": st["brackets"]})
        if st["final_folds"]:  # the final choice by cross-validation, inside the budget
            kw.update(final_folds=st["final_folds"], hall_of_fame=st["hall_of_fame"], stop={"include_final": True},
                      cv_epochs=st["cv_epochs"])
    s = evonet.search(build_model, data["x_train"], data["y_train"], validation_data=(data["x_val"], data["y_val"]),
                      epochs=epochs, batch_size=BATCH_SIZE, patience=0 if aging else 3, generations=100_000,
                      seed=seed, out=Path(workdir) / "run", progress="none", tensorboard=False,
                      max_seconds=budget_s, stream=open(os.devnull, "w"), **kw)
    run = Path(s.run_dir)
    best = s.summary.get("best", {})
    rows = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]
    import yaml

    # the loop's clock starts after evonet.search's set-up, which its max_seconds counts
    offset = budget_s - float(yaml.safe_load((run / "config.yaml").read_text())["stop"]["max_seconds"])
    if aging:
        jobs = [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()]
        for j in jobs:
            if j.get("fitness") is not None and j.get("t") is not None and j["t"] + offset <= budget_s:
                recorder.trace.append((float(j["t"]) + offset, float(j["fitness"])))
        epochs_trained = sum(j["metrics"].get("epochs_trained", 0) for j in jobs)
    else:
        for rec in (json.loads(line) for line in (run / "logbook.jsonl").read_text().splitlines()):
            if rec["elapsed"] + offset <= budget_s:
                recorder.trace.append((float(rec["elapsed"]) + offset, float(rec["best"])))
        epochs_trained = sum(r.get("epochs") or 0 for r in rows)
    # with its cross-validation, evonet's choice is refit for the epochs the folds trained (as its best_model)
    epochs_of_choice = best["refit"]["epochs"] if best.get("cross_validation") else best.get("best_epoch")
    return {"values": s.best_hyperparameters, "val_accuracy": best.get("search_fitness"),
            "best_epoch": epochs_of_choice, "trainings": int(best.get("trainings", len(rows))),
            "epochs_trained": int(epochs_trained), "busy_s": float(s.summary.get("utilization") or 0) * budget_s}


def run_evonet(*a) -> dict:
    return _evonet(*a, aging=True)


def run_evonet_ga(*a) -> dict:
    return _evonet(*a, aging=False)


def _keras_tuner(kind, build_model, data, budget_s, epochs, seed, workdir, recorder) -> dict:
    try:
        import keras_tuner as kt
    except ImportError as exc:
        raise DependencyNotInstalled(f"--methods kt_*: needs keras-tuner: pip install -e '.[bench]' ({exc})") from None
    from evonet.tf_utils import import_keras

    keras = import_keras()
    common = dict(objective="val_accuracy", seed=seed, directory=str(workdir), project_name=kind, overwrite=True)
    if kind == "kt_random":
        tuner = kt.RandomSearch(build_model, max_trials=1_000_000, **common)
    elif kind == "kt_bayesian":
        tuner = kt.BayesianOptimization(build_model, max_trials=1_000_000, **common)
    else:
        tuner = kt.Hyperband(build_model, max_epochs=epochs, factor=3, hyperband_iterations=1000, **common)
    busy = {"s": 0.0, "epochs": 0, "trainings": 0}

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            busy["trainings"] += 1
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            busy["epochs"] += 1
            recorder.epoch((logs or {}).get("val_accuracy", float("nan")))
            if recorder.over():
                self.model.stop_training = True
                tuner.oracle.max_trials = len(tuner.oracle.trials)  # no new trial

        def on_train_end(self, logs=None):
            busy["s"] += time.perf_counter() - self.t

    train = _batches(keras, data["x_train"], data["y_train"], seed=seed)
    val = _batches(keras, data["x_val"], data["y_val"])
    tuner.search(*train, validation_data=val[0] if len(val) == 1 else val, epochs=epochs,
                 callbacks=[Budget()], verbose=0)
    best = tuner.oracle.get_best_trials(1)[0]
    values = dict(best.hyperparameters.values)
    metric = best.metrics.get_history("val_accuracy")
    best_epoch = int(max(metric, key=lambda o: o.value[0]).step) + 1 if metric else epochs
    return {"values": values, "val_accuracy": float(best.score), "best_epoch": best_epoch,
            "trainings": busy["trainings"], "epochs_trained": busy["epochs"], "busy_s": busy["s"]}


def run_kt_random(*a):
    return _keras_tuner("kt_random", *a)


def run_kt_hyperband(*a):
    return _keras_tuner("kt_hyperband", *a)


def run_kt_bayesian(*a):
    return _keras_tuner("kt_bayesian", *a)


def run_optuna_tpe_hyperband(build_model, data, budget_s, epochs, seed, workdir, recorder) -> dict:
    try:
        import optuna
    except ImportError as exc:
        raise DependencyNotInstalled(f"--methods optuna_*: needs optuna: pip install -e '.[bench]' ({exc})") from None
    from evonet.tf_utils import import_keras

    keras = import_keras()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    busy = {"s": 0.0, "epochs": 0, "trainings": 0}
    best_epoch: dict[int, int] = {}
    val = _batches(keras, data["x_val"], data["y_val"])

    def objective(trial):
        hp = OptunaHP(trial)
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed * 100_003 + trial.number)
        model = build_model(hp)
        trial.set_user_attr("values", hp.values)
        busy["trainings"] += 1
        t0, best = time.perf_counter(), (-1.0, 0)
        train = _batches(keras, data["x_train"], data["y_train"], seed=seed + trial.number)
        try:
            for epoch in range(epochs):
                h = model.fit(*train, validation_data=val[0] if len(val) == 1 else val, epochs=epoch + 1,
                              initial_epoch=epoch, verbose=0)
                acc = float(h.history["val_accuracy"][-1])
                busy["epochs"] += 1
                recorder.epoch(acc)
                if acc > best[0]:
                    best = (acc, epoch + 1)
                best_epoch[trial.number] = best[1]
                trial.report(acc, epoch)
                if recorder.over() or trial.should_prune():
                    break
        finally:
            busy["s"] += time.perf_counter() - t0
        return best[0]

    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(objective, timeout=budget_s, catch=(Exception,))
    best = study.best_trial
    return {"values": best.user_attrs["values"], "val_accuracy": float(best.value),
            "best_epoch": best_epoch.get(best.number, epochs), "trainings": busy["trainings"],
            "epochs_trained": busy["epochs"], "busy_s": busy["s"]}


def _asha_trial(config: dict, build_model=None, data=None, epochs=10, seed=0, trace_path="", t0=0.0):
    """One Ray Tune trial: a random configuration (drawn from ``config["draw"]``), trained an
    epoch at a time, validation accuracy reported to Tune after every epoch (ASHA stops it)."""
    from ray import tune

    from evonet.problems.nas.hp import HyperParameters
    from evonet.tf_utils import import_keras

    keras = import_keras()
    start = time.time()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(config["draw"])]))
    hp = HyperParameters(_chooser=lambda g: g.decode(float(rng.random())))
    keras.backend.clear_session()
    keras.utils.set_random_seed((seed * 100_003 + int(config["draw"])) % (2**31))
    model = build_model(hp)
    val = _batches(keras, data["x_val"], data["y_val"])
    train = _batches(keras, data["x_train"], data["y_train"], seed=seed + int(config["draw"]) % 1000)
    with open(trace_path, "a") as log:
        log.write(json.dumps({"draw": int(config["draw"]), "values": hp.values}) + "\n")
        for epoch in range(epochs):
            h = model.fit(*train, validation_data=val[0] if len(val) == 1 else val, epochs=epoch + 1,
                          initial_epoch=epoch, verbose=0)
            acc = float(h.history["val_accuracy"][-1])
            now = time.time()
            log.write(json.dumps({"draw": int(config["draw"]), "epoch": epoch + 1, "t": now - t0, "acc": acc,
                                  "busy": now - start}) + "\n")
            log.flush()
            start = now
            tune.report({"val_accuracy": acc, "epoch": epoch + 1})


def run_ray_tune_asha(build_model, data, budget_s, epochs, seed, workdir, recorder) -> dict:
    """Ray Tune's ASHA scheduler (asynchronous successive halving, grace period 1 epoch,
    reduction factor 3) over random configurations of ``build_model``, one trial at a time on
    one CPU, actors reused (TensorFlow imported once), stopped by Tune's ``time_budget_s``.
    Starts a one-CPU Ray instance (run it inside a loopback-only network namespace where Ray
    must not bind to outside interfaces)."""
    try:
        import ray
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search import BasicVariantGenerator
    except ImportError as exc:
        raise DependencyNotInstalled(f"--methods ray_tune_asha: needs Ray Tune: pip install -e '.[bench]' ({exc})") \
            from None
    trace_path = Path(workdir) / "asha_trace.jsonl"
    trace_path.touch()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "3"}})
    try:
        trainable = tune.with_resources(
            tune.with_parameters(_asha_trial, build_model=build_model, data=data, epochs=epochs, seed=seed,
                                 trace_path=str(trace_path), t0=time.time() - recorder.elapsed()),
            {"cpu": 1})
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=epochs, grace_period=1, reduction_factor=3)
        tuner = tune.Tuner(
            trainable, param_space={"draw": tune.randint(0, 2**31 - 1)},
            tune_config=tune.TuneConfig(metric="val_accuracy", mode="max", scheduler=scheduler, num_samples=-1,
                                        time_budget_s=max(1.0, budget_s - recorder.elapsed()), reuse_actors=True,
                                        search_alg=BasicVariantGenerator(max_concurrent=1, random_state=seed)),
            run_config=tune.RunConfig(storage_path=str(Path(workdir) / "tune"), name="asha", verbose=0))
        tuner.fit()
    finally:
        ray.shutdown()
    values, best, busy, epochs_done = {}, (-1.0, 0, None), 0.0, 0
    for line in trace_path.read_text().splitlines():
        row = json.loads(line)
        if "values" in row:
            values[row["draw"]] = row["values"]
            continue
        epochs_done += 1
        busy += row["busy"]
        if row["t"] <= budget_s:
            recorder.trace.append((round(row["t"], 3), row["acc"]))
        if row["acc"] > best[0]:
            best = (row["acc"], row["epoch"], row["draw"])
    if best[2] is None:
        raise RuntimeError("ray_tune_asha: no trial finished an epoch within the budget")
    return {"values": values[best[2]], "val_accuracy": best[0], "best_epoch": best[1], "trainings": len(values),
            "epochs_trained": epochs_done, "busy_s": busy}


METHODS: dict[str, Callable] = {
    "evonet": run_evonet,
    "evonet_ga": run_evonet_ga,
    "kt_random": run_kt_random,
    "kt_hyperband": run_kt_hyperband,
    "kt_bayesian": run_kt_bayesian,
    "optuna_tpe_hyperband": run_optuna_tpe_hyperband,
    "ray_tune_asha": run_ray_tune_asha,
}
REQUIRES = {"kt_random": "keras_tuner", "kt_hyperband": "keras_tuner", "kt_bayesian": "keras_tuner",
            "optuna_tpe_hyperband": "optuna", "ray_tune_asha": "pyarrow"}  # pyarrow: one of ray[tune]'s


# ----------------------------------------------------------------------------- one (method, seed)


def refit_and_test(build_model, data, values: dict, epochs: int, seed: int) -> float:
    """The final protocol: ``values`` built, trained on train + validation for ``epochs``,
    scored once on the test split."""
    from evonet.tf_utils import import_keras

    keras = import_keras()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_model(FixedHP(values))
    x = np.concatenate([data["x_train"], data["x_val"]])
    y = np.concatenate([data["y_train"], data["y_val"]])
    model.fit(*_batches(keras, x, y, seed=seed), epochs=max(1, int(epochs)), verbose=0)
    pred = np.asarray(model.predict(data["x_test"], verbose=0, batch_size=512))
    return float(np.mean(np.argmax(pred, axis=-1) == data["y_test"]))


def run_one(method: str, dataset: str, budget_s: float, epochs: int, seed: int, out: str | Path) -> dict:
    data = load_data(dataset)
    build_model = build_function(dataset, tuple(data["x_train"].shape[1:]), int(data["y_train"].max()) + 1)
    workdir = Path(tempfile.mkdtemp(prefix=f"{method}-{seed}-"))
    recorder = Recorder(budget_s)
    t0 = time.perf_counter()
    r = METHODS[method](build_model, data, budget_s, epochs, seed, workdir, recorder)
    search_s = time.perf_counter() - t0
    test = refit_and_test(build_model, data, r["values"], r["best_epoch"] or epochs, seed)
    trace, best = [], -1.0
    for t, acc in sorted(recorder.trace):
        if acc > best:
            best = acc
            trace.append([t, acc])
    row = {"method": method, "seed": seed, "dataset": dataset, "budget_s": budget_s, "epochs": epochs,
           "test_accuracy": test, "val_accuracy": r["val_accuracy"],
           "values": r["values"], "best_epoch": r["best_epoch"], "trainings": r["trainings"],
           "epochs_trained": r["epochs_trained"], "utilization": round(min(1.0, r["busy_s"] / budget_s), 4),
           "search_s": round(search_s, 2), "trace": trace}
    Path(out).write_text(json.dumps(row, default=str))
    return row


# ----------------------------------------------------------------------------- the benchmark


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip() != ""]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: expected distinct integers >= 0, got {text!r}")
    return seeds


def check_methods(text: str | None) -> list[str]:
    import importlib.util

    names = list(METHODS) if not text else [m.strip() for m in text.split(",") if m.strip()]
    for m in names:
        if m not in METHODS:
            raise ConfigError(f"--methods: unknown method {m!r}; methods: {', '.join(METHODS)}")
        need = REQUIRES.get(m)
        if need and importlib.util.find_spec(need) is None:
            raise ConfigError(f"--methods: {m} needs the {need} package: pip install -e '.[bench]'")
    return names


def bench_budget(budget_s: float, seeds: list[int], dataset: str, methods: list[str], epochs: int = 10,
                 parallel: int = 1, out: str | Path | None = None, log=None) -> dict:
    """Every (method, seed) in its own subprocess, ``parallel`` at a time; the JSON summary,
    a table and the plot of best validation accuracy so far against wall time."""
    if budget_s <= 0:
        raise ConfigError(f"--budget-s: must be > 0, got {budget_s}")
    if dataset not in DATASETS:
        raise ConfigError(f"--dataset: unknown dataset {dataset!r}; datasets: {', '.join(DATASETS)}")
    out = Path(out or tempfile.mkdtemp(prefix="evonet-bench-search-"))
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(m, s) for m in methods for s in seeds]
    running: list = []
    rows: list[dict] = []
    failures: list[str] = []

    def done_before(m, s, path) -> dict | None:
        """A (method, seed) file of this very setting in ``out`` (an earlier, interrupted run): kept."""
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        same = (r.get("method"), r.get("seed"), r.get("dataset"), r.get("budget_s"), r.get("epochs")) == \
            (m, s, dataset, float(budget_s), int(epochs))
        return r if same else None

    def finish(proc, m, s, path):
        _, err = proc.communicate()
        if proc.returncode != 0 or not path.exists():
            failures.append(f"{m} seed {s}: {' '.join(err.strip().splitlines()[-1:])}")
            if log:
                log(f"{m} seed {s} failed: {failures[-1]}")
            return
        rows.append(json.loads(path.read_text()))
        if log:
            r = rows[-1]
            log(f"{m} seed {s}: test {r['test_accuracy']:.4f}, validation {r['val_accuracy']:.4f}, "
                f"{r['trainings']} trainings, {r['epochs_trained']} epochs")

    for m, s in jobs:
        path = out / f"{m}-seed{s}.json"
        kept = done_before(m, s, path)
        if kept is not None:
            rows.append(kept)
            if log:
                log(f"{m} seed {s}: kept from {path}")
            continue
        while len(running) >= max(1, parallel):
            finish(*running.pop(0))
        cmd = [sys.executable, "-m", "evonet.bench.budget", m, dataset, str(budget_s), str(epochs), str(s), str(path)]
        running.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), m, s,
                        path))
    while running:
        finish(*running.pop(0))
    if failures:  # the finished ones stay in out; a rerun of the same command keeps them
        raise RunFailed(f"bench search: {len(failures)} of {len(jobs)} runs failed ({'; '.join(failures)}); "
                        f"the others are kept in {out}: the same command runs only what is missing")
    from evonet.bench import machine

    result = {"budget_s": budget_s, "dataset": dataset, "epochs": epochs, "seeds": seeds, "machine": machine(),
              "methods": {}}
    for m in methods:
        mine = sorted((r for r in rows if r["method"] == m), key=lambda r: r["seed"])
        result["methods"][m] = {
            "test_accuracy": [r["test_accuracy"] for r in mine],
            "median_test_accuracy": statistics.median(r["test_accuracy"] for r in mine),
            "median_val_accuracy": statistics.median(r["val_accuracy"] for r in mine),
            "trainings": [r["trainings"] for r in mine],
            "epochs_trained": [r["epochs_trained"] for r in mine],
            "utilization": [r["utilization"] for r in mine],
            "traces": [r["trace"] for r in mine],
        }
    for m, t in seconds_to_reach(result).items():
        result["methods"][m]["seconds_to_hyperband_val"] = t
    (out / "bench_search.json").write_text(json.dumps(result))
    plot(result, out / "best_val_vs_time.png")
    (out / "table.md").write_text(table(result))
    result["out"] = str(out)
    return result


def table(result: dict) -> str:
    lines = [f"budget {result['budget_s']:g} s per search, {result['dataset']}, epochs cap {result['epochs']}, "
             f"seeds {','.join(map(str, result['seeds']))}", "",
             "| method | median test | test per seed | median validation | trainings | epochs trained | utilization "
             "| seconds to Hyperband's final median validation |",
             "|---|---|---|---|---|---|---|---|"]
    for m, r in sorted(result["methods"].items(), key=lambda kv: -kv[1]["median_test_accuracy"]):
        reach = r.get("seconds_to_hyperband_val", "n/a")
        reach = "never" if reach is None else (f"{reach:g}" if isinstance(reach, float) else reach)
        lines.append(f"| {m} | {r['median_test_accuracy']:.4f} | {', '.join(f'{a:.4f}' for a in r['test_accuracy'])} | "
                     f"{r['median_val_accuracy']:.4f} | {statistics.median(r['trainings']):g} | "
                     f"{statistics.median(r['epochs_trained']):g} | {statistics.median(r['utilization']):.2f} | {reach} |")
    return "\n".join(lines) + "\n"


def median_curve(traces: list, grid: np.ndarray, missing: float = np.nan) -> np.ndarray:
    """The median over seeds of the best validation accuracy so far at each time of ``grid``.
    Before a seed's first result its value is ``missing``: NaN leaves it out of the median
    (the plot), ``-inf`` counts it as not there yet."""
    curves = []
    for trace in traces:
        ys = np.full(grid.shape, missing)
        for t, acc in trace:
            ys[grid >= t] = acc
        curves.append(ys)
    if not curves:
        return grid * np.nan
    with warnings.catch_warnings():  # before a method's first result its curve is all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(np.array(curves), axis=0)


def seconds_to_reach(result: dict, reference: str = "kt_hyperband") -> dict:
    """For each method, the first second at which the median over seeds of its best
    validation accuracy so far (a seed without a result yet counts as not there) reaches
    ``reference``'s final median validation accuracy (None: never within the budget); {}
    when ``reference`` did not run."""
    if reference not in result["methods"]:
        return {}
    goal = result["methods"][reference]["median_val_accuracy"]
    grid = np.linspace(0, result["budget_s"], 3001)
    out = {}
    for m, r in result["methods"].items():
        med = median_curve(r["traces"], grid, missing=-np.inf)
        hit = np.flatnonzero(med >= goal - 1e-9)
        out[m] = round(float(grid[hit[0]]), 1) if hit.size else None
    return out


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    grid = np.linspace(0, result["budget_s"], 200)
    for i, (m, r) in enumerate(result["methods"].items()):
        med = median_curve(r["traces"], grid)
        ax.step(grid, med, where="post", label=f"{m} (test {r['median_test_accuracy']:.4f})", color=f"C{i}")
    ax.set_xlabel("wall time of the search (s)")
    ax.set_ylabel("best validation accuracy so far (median over seeds)")
    ax.set_title(f"{result['dataset']}: {result['budget_s']:g} s per search, one core each")
    ax.legend(fontsize=8, loc="lower right")
    lows = [a for r in result["methods"].values() for tr in r["traces"] for _, a in tr]
    if lows:
        ax.set_ylim(max(0.0, np.percentile(lows, 10) - 0.02), 1.0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":  # one (method, seed), in its own process
    method, dataset, budget, epochs, seed, out = sys.argv[1:7]
    run_one(method, dataset, float(budget), int(epochs), int(seed), out)
