"""Define-by-run hyperparameters (evonet/hp.py): discovery, replay, the canonical hash,
redeclarations, defaults and scales, bad build functions; the user-model problem's
evaluations; HyperparamProblem's checkpoint state (get_state / set_state)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evonet.errors import ConfigError
from evonet.hp import HyperParameters, UserSearchSpace, discover, make_gene


@pytest.fixture(scope="module")
def keras():
    from evonet.tf_utils import import_keras

    return import_keras()


def make_build(keras, fail_when=None, uncompiled_when=None):
    def build_model(hp):
        model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten()])
        layers = hp.Int("layers", 1, 3)
        for i in range(layers):
            model.add(keras.layers.Dense(hp.Int(f"units_{i}", 4, 32, log=True),
                                         activation=hp.Choice("activation", ["relu", "elu", "tanh"])))
        if hp.Boolean("dropout"):
            model.add(keras.layers.Dropout(hp.Float("rate", 0.1, 0.5)))
        model.add(keras.layers.Dense(10, activation="softmax"))
        if fail_when is not None and fail_when(hp):
            raise ValueError("this architecture is broken")
        if uncompiled_when is not None and uncompiled_when(hp):
            return model
        model.compile(keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-2, log=True)),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    return build_model


@pytest.fixture(scope="module")
def space(keras) -> UserSearchSpace:
    return discover(make_build(keras), seed=0)


# ----------------------------------------------------------------------------- discovery


def test_discovery_finds_conditional_names_in_order_of_first_appearance(space):
    names = [g.name for g in space.genes]
    # defaults probe: layers 1, dropout False; the highest probe reaches units_1, units_2, rate
    assert names == ["layers", "units_0", "activation", "dropout", "lr", "units_1", "units_2", "rate"]
    assert space.model == "user" and space.n_genes == 8
    assert 4 <= space.discovery["probes"] <= 32 and space.discovery["failed_probes"] == []
    g = {x.name: x for x in space.genes}
    assert (g["units_2"].type, g["units_2"].low, g["units_2"].high, g["units_2"].log) == ("int", 4, 32, True)
    assert g["activation"].values == ("relu", "elu", "tanh") and g["dropout"].type == "bool"


def test_discovery_reaches_a_branch_only_random_probes_find(keras):
    def build(hp):
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        if hp.Choice("kind", ["a", "b", "c"]) == "b":  # neither first (default, lowest) nor last (highest)
            hp.Int("b_only", 1, 5)
        m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    s = discover(build, seed=0)
    assert [g.name for g in s.genes] == ["kind", "b_only"]


def test_active_names_are_the_canonical_form_and_inactive_genes_do_not_change_the_hash(space):
    one = {"layers": 1, "units_0": 8, "units_1": 32, "units_2": 4, "dropout": False, "rate": 0.3}
    assert list(space.canonical(one)) == ["layers", "units_0", "activation", "dropout", "lr"]
    other = {**one, "units_1": 5, "units_2": 30, "rate": 0.45}  # only inactive genes differ
    assert space.genome_hash(one) == space.genome_hash(other)
    assert space.genome_hash(one) != space.genome_hash({**one, "units_0": 9})
    three = {**one, "layers": 3, "dropout": True}
    assert list(space.canonical(three)) == ["layers", "units_0", "activation", "dropout", "lr", "units_1",
                                            "units_2", "rate"]
    assert space.active(one)["units_1"] is False and space.active(three)["units_1"] is True
    # float vectors: decode, replay, hash; the encoding of a canonical form round-trips
    vec = space.encode(three)
    assert space.canonical(vec) == space.canonical(three)
    rng = np.random.default_rng(1)
    for v in space.sample(rng, 20):
        c = space.canonical(v)
        assert ("units_2" in c) == (c["layers"] == 3) and ("rate" in c) == c["dropout"]


def test_replay_records_accessed_names_and_unseen_names_take_their_default():
    hp = HyperParameters.replay({"a": 3}, known={"a": make_gene("int", "a", min_value=1, max_value=5)})
    assert hp.Int("a", 1, 5) == 3
    assert hp.Float("new", 0.5, 2.0) == 0.5  # never discovered: default, reported
    assert hp.accessed == ["a", "new"] and list(hp.unseen) == ["new"]
    assert hp.values == {"a": 3, "new": 0.5} and hp["a"] == 3 and hp.get("new") == 0.5


# ----------------------------------------------------------------------------- declarations


def test_defaults_follow_keras_tuner_and_log_scales_decode_geometrically():
    hp = HyperParameters()
    assert hp.Int("i", 2, 9) == 2  # KerasTuner: Int and Float default to min_value
    assert hp.Float("f", 0.25, 1.0) == 0.25
    assert hp.Choice("c", ["x", "y"]) == "x"
    assert hp.Boolean("b") is False
    assert hp.Int("d", 1, 9, default=4) == 4 and hp.Boolean("bt", default=True) is True
    assert hp.Choice("cd", [1, 2, 3], default=3) == 3 and hp.Fixed("k", 7) == 7
    assert HyperParameters({"i": 5}).Int("i", 2, 9) == 5
    g = make_gene("int", "u", min_value=16, max_value=256, log=True)
    assert (g.decode(0.0), g.decode(0.5), g.decode(1.0)) == (16, 64, 256)
    f = make_gene("float", "lr", min_value=1e-4, max_value=1e-2, sampling="log")
    assert f.log and f.decode(0.5) == pytest.approx(1e-3)
    # a step: an ordered choice of the stepped values (multiplied on a log scale)
    assert make_gene("int", "s", min_value=8, max_value=40, step=8).values == (8, 16, 24, 32, 40)
    assert make_gene("int", "s", min_value=2, max_value=32, step=2, sampling="log").values == (2, 4, 8, 16, 32)
    for bad, fragment in [(lambda: make_gene("int", "x", min_value=5, max_value=1), "min_value 5 > max_value 1"),
                          (lambda: make_gene("float", "x", min_value=0.0, max_value=1.0, log=True), "min_value > 0"),
                          (lambda: make_gene("choice", "x", values=[]), "non-empty"),
                          (lambda: make_gene("int", "x", min_value=1, max_value=3, default=9), "outside")]:
        with pytest.raises(ConfigError, match=fragment):
            bad()


def test_redeclaration_with_another_range_is_a_one_line_config_error(keras):
    hp = HyperParameters()
    hp.Int("units", 16, 256)
    assert hp.Int("units", 16, 256) == 16  # the same declaration again: the same value
    with pytest.raises(ConfigError) as err:
        hp.Int("units", 16, 512)
    msg = str(err.value)
    assert "\n" not in msg and "'units'" in msg and "Int('units', 16, 256" in msg and "Int('units', 16, 512" in msg
    with pytest.raises(ConfigError, match="Choice\\('units'"):
        hp.Choice("units", [16, 32])

    calls = [0]

    def drifting(hp):  # the range changes between calls of the build function
        calls[0] += 1
        hp.Float("rate", 0.1, 0.5 if calls[0] == 1 else 0.6)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    with pytest.raises(ConfigError) as err:
        discover(drifting)
    assert "'rate'" in str(err.value) and "0.5" in str(err.value) and "0.6" in str(err.value)


# ----------------------------------------------------------------------------- bad build functions


@pytest.mark.parametrize("kind, fragment", [
    ("raises", "build_model raised ValueError: this architecture is broken"),
    ("none", "build_model must return a compiled keras.Model, got None"),
    ("uncompiled", "build_model must return a compiled keras.Model, got an uncompiled Sequential"),
    ("no accuracy", "metrics=['accuracy']"),
    ("not callable", "build_model must be callable"),
])
def test_bad_build_function_at_discovery_is_a_config_error_before_any_training(keras, kind, fragment):
    if kind == "raises":
        fn = make_build(keras, fail_when=lambda hp: True)
    elif kind == "none":
        def fn(hp):
            hp.Int("a", 1, 2)
    elif kind == "uncompiled":
        fn = make_build(keras, uncompiled_when=lambda hp: True)
    elif kind == "no accuracy":
        def fn(hp):
            m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(hp.Int("u", 2, 3))])
            m.compile("adam", "mse")
            return m
    else:
        fn = 42
    with pytest.raises(ConfigError) as err:
        discover(fn)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def _digits_arrays():
    from evonet.data import load_digits
    from evonet.data.datasets import from_arrays

    images, target = load_digits()
    x = images.astype(np.float32) / 16.0
    return from_arrays(x[:600], target[:600], validation_split=0.25)


def test_bad_build_mid_run_is_a_failed_evaluation_with_its_error(keras):
    """Discovery succeeds (its defaults probe builds); genomes that break fail when trained,
    with the error recorded, and the others train."""
    from evonet.problems.hyperparams import evaluate_train_task
    from evonet.problems.user_model import UserModelProblem, budget_of

    build = make_build(keras, fail_when=lambda hp: hp.get("layers") == 3,
                       uncompiled_when=lambda hp: hp.get("layers") == 2)
    s = discover(build, seed=0)
    assert s.discovery["failed_probes"]  # the highest probe (3 layers) failed: tolerated
    assert "units_2" in s  # its names were recorded up to the failure
    problem = UserModelProblem(s, _digits_arrays(), budget_of(2, 0, 100_000), run_seed=0, batch_size=32)
    genomes = np.stack([s.encode({"layers": n, "units_0": 16, "units_1": 8, "units_2": 8, "lr": 0.01}) for n in (1, 2, 3)])
    plan = problem.plan_evaluations(genomes)
    tasks = problem.make_tasks(genomes[plan.todo], 0, plan.todo, 1)
    results = plan.merge([r for t in tasks for r in evaluate_train_task(t)])
    ok, uncompiled, raised = results
    assert ok.error is None and ok.fitness > 0.2 and ok.metrics["params"] > 0
    assert "build_model must return a compiled keras.Model, got an uncompiled Sequential" in uncompiled.error
    assert "build_model raised ValueError: this architecture is broken" in raised.error
    assert raised.fitness == float("-inf") and problem.trainings == 3


# ----------------------------------------------------------------------------- checkpoint state


def test_hyperparam_problem_state_round_trips_through_a_checkpoint(tmp_path, space):
    from evonet.checkpoint import join_arrays, split_arrays
    from evonet.problems.base import EvalResult
    from evonet.problems.user_model import UserModelProblem, budget_of

    p = UserModelProblem(space, _digits_arrays(), budget_of(1, 0, 1000))
    g = np.stack([space.encode({"layers": 1, "units_0": 8}), space.encode({"layers": 2, "units_0": 5})])
    plan = p.plan_evaluations(g)
    p.make_tasks(g, 3, [0, 1], 1)
    plan.merge([EvalResult(0.5, metrics={"params": 10.0, "best_epoch": 1.0}),
                EvalResult(float("-inf"), weight=0, error="boom", objectives=(1.0, 2.0))])
    p.cv["abc"] = EvalResult(0.7, weight=3, metrics={"cv_examples": 9.0})
    p.cv_trainings, p.cache_hits = 3, 4
    state = p.get_state()
    json_state, arrays = split_arrays(state)
    text = json.dumps(json_state)  # JSON values only (no pickles, '/' never a key)
    q = UserModelProblem(space, _digits_arrays(), budget_of(1, 0, 1000))
    q.set_state(join_arrays(json.loads(text), arrays))
    assert q.cache == p.cache and q.cv == p.cv and q.genomes_by_hash == p.genomes_by_hash
    assert list(q.genomes_by_hash.values())[0] == space.canonical(g[0])
    assert (q.trainings, q.cv_trainings, q.cache_hits, q._generation, q.first_seen) == \
        (2, 3, 4, 3, p.first_seen)
    assert q.archive() == p.archive() and q.pareto_front() == p.pareto_front()
