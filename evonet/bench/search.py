"""``evonet bench search``: evonet's GA against KerasTuner's RandomSearch, in one run.

Both search the same space (an evonet search space translated to KerasTuner
hyperparameters: ``Int``/``Float`` with ``sampling="log"`` where the gene is log-scaled,
``Choice``, ``Boolean``, conditions as ``conditional_scope``), build their models with the
same builder (:func:`evonet.models.build_model`), train on the same digits split with the
same epochs cap and early stopping on validation accuracy, and get the same number of
evaluations, for each of ``seeds`` seeds. Reported per method and seed: best validation
accuracy, the test accuracy of that best model (the test split used once), the wall time
of the search, and the number of models actually trained (evonet's cache answers
duplicate genomes without training; they count against its budget all the same).

Both run in this process with TensorFlow on one thread (:func:`evonet.tf_utils.import_keras`).
KerasTuner is an optional dependency: ``pip install -e ".[bench]"`` (it also needs the
``tensorboard`` package on TensorFlow 2.21's CPU build).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from evonet.core.errors import DependencyNotInstalled


def kt_hyperparameters(space, hp) -> dict:
    """Register ``space``'s genes on KerasTuner's ``hp``; returns the active genes' values
    (the canonical genome; inactive genes are not registered as active values)."""
    values: dict = {}
    active: dict[str, bool] = {}
    for g in space.genes:
        c = g.when
        if c is not None:
            parent = space.genes[space.index[c.gene]]
            if c.values is not None:
                parent_values = list(c.values)
            else:
                lo = c.min if c.min is not None else parent.low
                hi = c.max if c.max is not None else parent.high
                if parent.type != "int":
                    raise ValueError(f"gene {g.name}: KerasTuner conditions need an int or choice parent")
                parent_values = list(range(int(np.ceil(lo)), int(np.floor(hi)) + 1))
            with hp.conditional_scope(c.gene, parent_values):
                value = _kt_gene(g, hp)
            ok = active.get(c.gene, False) and c.holds(values.get(c.gene))
        else:
            value = _kt_gene(g, hp)
            ok = True
        active[g.name] = ok
        if ok:
            values[g.name] = value
    return space.canonical(values)


def _kt_gene(g, hp):
    if g.type == "int":
        return hp.Int(g.name, int(g.low), int(g.high), sampling="log" if g.log else "linear", default=g.default)
    if g.type == "float":
        return hp.Float(g.name, float(g.low), float(g.high), sampling="log" if g.log else "linear", default=g.default)
    if g.type == "choice":
        return hp.Choice(g.name, list(g.values), default=g.default)
    return hp.Boolean(g.name, default=bool(g.default))


def run_keras_tuner(space, data, budget, trials: int, seed: int, directory: str | Path) -> dict:
    """KerasTuner RandomSearch over ``space`` for ``trials`` trials; returns the figures."""
    try:
        import keras_tuner as kt
    except ImportError as exc:
        raise DependencyNotInstalled(
            f"evonet bench search needs keras-tuner (and tensorboard): pip install -e '.[bench]' ({exc})"
        ) from None
    from evonet.problems.nas.accuracy import _stop_on_nan, accuracy
    from evonet.problems.nas.models import build_model, epochs_of, gene, learning_rate_at
    from evonet.tf_utils import import_keras

    keras = import_keras()
    inputs = data.input_spec()

    class Model(kt.HyperModel):
        def build(self, hp):
            return build_model(kt_hyperparameters(space, hp), space.model, inputs)

        def fit(self, hp, model, *args, **kwargs):
            genome = kt_hyperparameters(space, hp)
            epochs = epochs_of(genome, budget.epochs)
            callbacks = list(kwargs.pop("callbacks", [])) + [_stop_on_nan(keras)]
            if budget.patience > 0:
                callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=budget.patience,
                                                               restore_best_weights=True))
            if gene(genome, "lr_schedule") != "constant":
                callbacks.append(keras.callbacks.LearningRateScheduler(
                    lambda e, lr: learning_rate_at(genome, e, epochs)))
            kwargs.pop("epochs", None)
            return model.fit(*args, epochs=epochs, batch_size=int(gene(genome, "batch_size")), callbacks=callbacks,
                             **kwargs)

    keras.utils.set_random_seed(seed)
    tuner = kt.RandomSearch(Model(), objective="val_accuracy", max_trials=trials, seed=seed, overwrite=True,
                            directory=str(directory), project_name=f"seed{seed}", max_consecutive_failed_trials=trials)
    t0 = time.perf_counter()
    tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), verbose=0)
    seconds = time.perf_counter() - t0
    best_trial = tuner.oracle.get_best_trials(1)[0]
    best_model = tuner.get_best_models(1)[0]
    done = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    return {"best_val_accuracy": float(best_trial.score), "test_accuracy": accuracy(best_model, data.x_test, data.y_test),
            "seconds": round(seconds, 2), "trainings": len(tuner.oracle.trials), "completed": len(done),
            "best_genome": kt_hyperparameters(space, best_trial.hyperparameters)}


def run_evonet(space_path: str, evaluations: int, population: int, seed: int, epochs: int, patience: int) -> dict:
    """evonet's GA (the digits_search settings, scaled to ``evaluations``) over the same space."""
    from evonet import config
    from evonet.core import seeding
    from evonet.problems.nas.accuracy import accuracy, train_genome
    from evonet.executors import LocalExecutor
    from evonet.core.loop import run_evolution
    from evonet.problems.nas.problem import HyperparamProblem
    from evonet.strategies.ga import GeneticAlgorithm

    generations = max(0, -(-(evaluations - population) // population))
    cfg = config.load("digits_search", [
        f"search.space={space_path}", f"ga.population={population}", f"ga.offspring={population}",
        f"ga.generations={generations}", f"seed={seed}", f"search.epochs={epochs}", f"search.patience={patience}",
        "search.max_params=1000000", "ga.hall_of_fame=1",
        # the same trainings as KerasTuner's: random starting genomes, no cross-validation at the end
        "search.include_defaults=false", "search.final_folds=0"])
    problem = HyperparamProblem.from_config(cfg)
    genomes = problem.init_genomes(seeding.generator(seed, seeding.PURPOSE_INIT), population)
    strategy = GeneticAlgorithm(cfg.ga, genomes, 0.0, 1.0, seeding.generator(seed, seeding.PURPOSE_STRATEGY))
    t0 = time.perf_counter()
    result = run_evolution(strategy, problem, LocalExecutor(), generations, 1, 1)
    seconds = time.perf_counter() - t0
    canon = problem.space.canonical(np.asarray(result.best_genome, dtype=np.float64))
    h = problem.space.genome_hash(canon)
    res, model = train_genome(canon, problem.space.model, problem.dataset, problem.budget, problem.seed_of(h),
                              keep_model=True)
    test = accuracy(model, problem.dataset.x_test, problem.dataset.y_test) if model is not None else float("nan")
    return {"best_val_accuracy": float(problem.cache[h].fitness), "test_accuracy": test, "seconds": round(seconds, 2),
            "trainings": problem.trainings, "evaluations": int(sum(r["evals"] for r in result.logbook)),
            "cache_hits": int(sum(r.get("cache_hits", 0) for r in result.logbook)), "best_genome": canon}


def bench_search(space: str = "dense_classifier", evaluations: int = 40, population: int = 8, seeds: int = 3,
                 epochs: int = 20, patience: int = 3, log: Callable[[str], None] | None = None) -> dict:
    """Run both methods for ``seeds`` seeds; per-seed figures and medians."""
    from evonet.data.datasets import DataRef, load_dataset
    from evonet.problems.nas.accuracy import TrainBudget
    from evonet.problems.nas.space import SearchSpace, resolve_space_path

    path = resolve_space_path(space)
    sp = SearchSpace.load(path)
    data = load_dataset(DataRef("digits"))
    budget = TrainBudget(epochs=epochs, patience=patience, max_params=1_000_000)
    runs: dict[str, list[dict]] = {"evonet": [], "keras_tuner": []}
    with tempfile.TemporaryDirectory(prefix="evonet-kt-") as tmp:
        for seed in range(seeds):
            ev = run_evonet(str(path), evaluations, population, seed, epochs, patience)
            runs["evonet"].append({"seed": seed, **ev})
            if log:
                log(f"seed {seed} evonet: {ev['best_val_accuracy']:.4f} val, {ev['test_accuracy']:.4f} test, "
                    f"{ev['seconds']:.1f} s, {ev['trainings']} trainings")
            kt_res = run_keras_tuner(sp, data, budget, evaluations, seed, tmp)
            runs["keras_tuner"].append({"seed": seed, **kt_res})
            if log:
                log(f"seed {seed} keras_tuner: {kt_res['best_val_accuracy']:.4f} val, {kt_res['test_accuracy']:.4f} "
                    f"test, {kt_res['seconds']:.1f} s, {kt_res['trainings']} trainings")

    def med(name, key):
        return float(statistics.median(r[key] for r in runs[name]))

    summary = {m: {"median_best_val_accuracy": med(m, "best_val_accuracy"),
                   "median_test_accuracy": med(m, "test_accuracy"), "median_seconds": med(m, "seconds"),
                   "median_trainings": med(m, "trainings")} for m in runs}
    ratio = summary["evonet"]["median_seconds"] / max(1e-9, summary["keras_tuner"]["median_seconds"])
    return {
        "benchmark": "search", "space": sp.name, "dataset": data.describe(), "evaluations": evaluations,
        "seeds": seeds, "epochs": epochs, "patience": patience, "evonet_population": population,
        "runs": runs, "summary": summary, "time_ratio": round(ratio, 3),
        "targets": {"median_val_accuracy_at_least_keras_tuner":
                    summary["evonet"]["median_best_val_accuracy"] >= summary["keras_tuner"]["median_best_val_accuracy"],
                    "time_ratio_at_most_0.6": ratio <= 0.6},
    }
