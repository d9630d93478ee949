"""DEAP operators by name: bounds, determinism, randomness hygiene, validation."""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
from deap import base, creator, tools
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evonet.errors import ConfigError
from evonet.operators import (
    OPERATORS,
    Param,
    deap_random,
    describe_operators,
    individual_class,
    population_from_array,
    population_to_array,
    register_operators,
    validate_operator,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CROSSOVERS = list(OPERATORS["crossover"])
MUTATIONS = list(OPERATORS["mutation"])


def _param_strategy(p: Param) -> st.SearchStrategy:
    if p.type is str:
        return st.sampled_from(p.choices)
    if p.type is int:
        lo = int(p.low) if p.low is not None else -50
        return st.integers(lo, int(p.high) if p.high is not None else lo + 50)
    lo = p.low if p.low is not None else -50.0
    hi = p.high if p.high is not None else lo + 50.0
    return st.floats(lo, hi, exclude_min=p.low_open, exclude_max=p.high_open, allow_nan=False)


@st.composite
def variation_case(draw, kind: str):
    """(operator params, low, up, parents) with random params and parents inside [low, up]."""
    name = draw(st.sampled_from(list(OPERATORS[kind])))
    params = {"name": name, **{p.name: draw(_param_strategy(p)) for p in OPERATORS[kind][name].params}}
    low = draw(st.floats(-10, 10, allow_nan=False))
    up = low + draw(st.floats(1e-3, 20, allow_nan=False))
    size = draw(st.integers(1, 24))
    gene = st.floats(low, up, allow_nan=False)
    parents = [draw(st.lists(gene, min_size=size, max_size=size)) for _ in range(2)]
    seed = draw(st.integers(0, 2**32 - 1))
    return params, low, up, parents, seed


def _toolbox(crossover=None, mutation=None, low=-1.0, up=1.0, selection=None):
    return register_operators(
        base.Toolbox(),
        selection or {"name": "tournament"},
        crossover or {"name": "blend"},
        mutation or {"name": "gaussian"},
        low,
        up,
    )


def _assert_in_box(ind, size, low, up):
    assert len(ind) == size
    for g in ind:
        assert isinstance(g, float) and math.isfinite(g)
        assert low <= g <= up


@FAST
@given(variation_case("crossover"))
def test_crossover_keeps_genes_in_bounds_and_length(case):
    params, low, up, (a, b), seed = case
    tb = _toolbox(crossover=params, low=low, up=up)
    Ind = individual_class()
    p1, p2 = Ind(a), Ind(b)
    with deap_random(np.random.default_rng(seed)):
        c1, c2 = tb.mate(p1, p2)
    assert c1 is p1 and c2 is p2  # in place, as DEAP
    for child in (c1, c2):
        _assert_in_box(child, len(a), low, up)


@FAST
@given(variation_case("mutation"))
def test_mutation_keeps_genes_in_bounds_and_length(case):
    params, low, up, (a, _), seed = case
    tb = _toolbox(mutation=params, low=low, up=up)
    ind = individual_class()(a)
    with deap_random(np.random.default_rng(seed)):
        (mutant,) = tb.mutate(ind)
    assert mutant is ind
    _assert_in_box(mutant, len(a), low, up)


def test_variation_of_out_of_box_parents_is_clipped():
    tb = _toolbox(crossover={"name": "sbx"}, mutation={"name": "polynomial", "indpb": 1.0})
    Ind = individual_class()
    with deap_random(np.random.default_rng(0)):
        c1, c2 = tb.mate(Ind([5.0, -7.0, 0.5]), Ind([-3.0, 2.0, 0.1]))
        (m,) = tb.mutate(Ind([9.0, -9.0]))
    for ind in (c1, c2, m):
        _assert_in_box(ind, len(ind), -1.0, 1.0)


def test_blend_and_gaussian_are_clipped_to_the_box():
    # wide blends and huge noise would leave [-1, 1] without the clipping
    tb = _toolbox(crossover={"name": "blend", "alpha": 5.0}, mutation={"name": "gaussian", "sigma": 10.0, "indpb": 1.0})
    Ind = individual_class()
    with deap_random(np.random.default_rng(1)):
        c1, c2 = tb.mate(Ind([-1.0] * 50), Ind([1.0] * 50))
        (m,) = tb.mutate(Ind([0.0] * 50))
    genes = np.array([c1, c2, m])
    assert genes.min() == -1.0 and genes.max() == 1.0  # it really hit the bounds


def _offspring(op_kind, name, seed):
    Ind = individual_class()
    rng = np.random.default_rng(1234)  # same parents every time
    parents = population_from_array(Ind, rng.uniform(-1, 1, (2, 30)))
    params = {"name": name}
    if op_kind == "mutation":
        params["indpb"] = 0.5
    tb = _toolbox(**{op_kind: params})
    with deap_random(np.random.default_rng(seed)):
        if op_kind == "crossover":
            return [list(x) for x in tb.mate(*map(tb.clone, parents))]
        return [list(x) for x in tb.mutate(tb.clone(parents[0]))]


@pytest.mark.parametrize(
    "op_kind,name", [("crossover", n) for n in CROSSOVERS] + [("mutation", n) for n in MUTATIONS]
)
def test_same_generator_seed_gives_same_offspring(op_kind, name):
    first = _offspring(op_kind, name, 7)
    assert _offspring(op_kind, name, 7) == first
    others = [_offspring(op_kind, name, s) for s in (8, 9, 10)]
    assert any(o != first for o in others)  # the seed matters


def test_deap_random_restores_global_state():
    random.seed(99)
    before = random.getstate()
    rng = np.random.default_rng(5)
    with deap_random(rng) as seed:
        inside = random.getstate()
        first = random.random()
    assert random.getstate() == before
    assert inside != before and isinstance(seed, int)
    # the seed is one draw of rng: the same generator state gives the same stream
    with deap_random(np.random.default_rng(5)):
        assert random.random() == first
    # and the state is restored on errors too
    with pytest.raises(RuntimeError):
        with deap_random(rng):
            random.random()
            raise RuntimeError("boom")
    assert random.getstate() == before


def _ranked_population(n):
    Ind = individual_class()
    pop = population_from_array(Ind, np.zeros((n, 2)))
    for i, ind in enumerate(pop):
        ind.fitness.values = (float(i),)
        ind[0] = float(i)
    return pop


def test_tournament_picks_the_best_of_its_aspirants():
    """DEAP's selTournament draws aspirants *with replacement*: with tournsize equal to
    the population, each tournament is won by the best individual drawn, which is the
    population's best with probability 1 - (1 - 1/N)**N (not always)."""
    n = 8
    pop = _ranked_population(n)
    tb = _toolbox(selection={"name": "tournament", "tournsize": n})
    for seed in range(20):
        with deap_random(np.random.default_rng(seed)):
            (winner,) = tb.select(pop, 1)
        with deap_random(np.random.default_rng(seed)):
            aspirants = tools.selRandom(pop, n)
        assert winner is max(aspirants, key=lambda ind: ind.fitness)
    with deap_random(np.random.default_rng(0)):
        chosen = tb.select(pop, 4000)
    share_best = sum(ind is pop[-1] for ind in chosen) / len(chosen)
    assert abs(share_best - (1 - (1 - 1 / n) ** n)) < 0.03
    # a larger tournament is more selective than a smaller one
    with deap_random(np.random.default_rng(0)):
        weak = _toolbox(selection={"name": "tournament", "tournsize": 2}).select(pop, 4000)
    assert np.mean([i.fitness.values[0] for i in chosen]) > np.mean([i.fitness.values[0] for i in weak]) + 1


def test_best_and_random_selection():
    pop = _ranked_population(10)
    random.shuffle(pop)
    best = _toolbox(selection={"name": "best"}).select(pop, 3)
    assert [ind.fitness.values[0] for ind in best] == [9.0, 8.0, 7.0]
    with deap_random(np.random.default_rng(3)):
        picked = _toolbox(selection={"name": "random"}).select(pop, 500)
    assert {id(i) for i in picked} == {id(i) for i in pop}


def test_nsga2_is_registered_for_multi_objective():
    Ind = individual_class(2, (1.0, 1.0))
    pop = population_from_array(Ind, np.zeros((6, 3)))
    fits = [(0, 5), (5, 0), (3, 3), (1, 1), (0, 0), (2, 2)]  # first three form the front
    for ind, f in zip(pop, fits):
        ind.fitness.values = f
    tb = _toolbox(selection={"name": "nsga2", "nd": "log"})
    chosen = tb.select(pop, 3)
    assert sorted(i.fitness.values for i in chosen) == [(0.0, 5.0), (3.0, 3.0), (5.0, 0.0)]


def test_individual_class_is_created_once():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, b = individual_class(), individual_class()
        m1, m2 = individual_class(2, (1.0, -1.0)), individual_class(2, (1.0, -1.0))
    assert a is b is creator.WeightIndividual and m1 is m2 and m1 is not a
    ind = a([0.5, -0.5])
    assert isinstance(ind, list) and ind.fitness.weights == (1.0,) and not ind.fitness.valid
    assert m1().fitness.weights == (1.0, -1.0)
    with pytest.raises(ValueError, match="expected 2 fitness weights"):
        individual_class(2, (1.0,))


def test_population_array_round_trip():
    genes = np.random.default_rng(0).uniform(-1, 1, (5, 7)).astype(np.float32)
    pop = population_from_array(individual_class(), genes)
    assert all(type(g) is float for g in pop[0])
    assert np.array_equal(population_to_array(pop), genes)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kind,spec,message",
    [
        ("crossover", {"name": "sbx", "eta": -1}, "ga.crossover.eta: must be > 0, got -1"),
        ("crossover", {"name": "sbx", "eta": 0}, "ga.crossover.eta: must be > 0, got 0"),
        (
            "mutation",
            {"name": "gausian"},
            "ga.mutation.name: unknown mutation 'gausian' (did you mean 'gaussian'?); choose from gaussian, polynomial",
        ),
        (
            "mutation",
            {"name": "gaussian", "sigam": 1},
            "ga.mutation.sigam: unknown parameter of mutation 'gaussian' (did you mean 'sigma'?); valid parameters: mu, sigma, indpb",
        ),
        ("crossover", {"name": "one_point", "indpb": 0.5}, "ga.crossover.indpb: unknown parameter of crossover 'one_point'; one_point takes no parameters"),
        ("crossover", {"name": "uniform", "indpb": 1.5}, "ga.crossover.indpb: must be in [0, 1], got 1.5"),
        ("crossover", {"name": "blend", "alpha": "wide"}, "ga.crossover.alpha: expected a number, got 'wide'"),
        ("crossover", {"name": "blend", "alpha": True}, "ga.crossover.alpha: expected a number, got True"),
        ("mutation", {"name": "gaussian", "mu": float("inf")}, "ga.mutation.mu: must be a finite number, got inf"),
        ("selection", {"name": "tournament", "tournsize": 0}, "ga.selection.tournsize: must be >= 1, got 0"),
        ("selection", {"name": "tournament", "tournsize": 2.5}, "ga.selection.tournsize: expected an integer, got 2.5"),
        ("selection", {"name": "nsga2", "nd": "fast"}, "ga.selection.nd: unknown value 'fast'; choose from standard, log"),
        ("selection", {"tournsize": 3}, "ga.selection.name: missing; choose from tournament, best, random, nsga2"),
        ("selection", {"name": 3}, "ga.selection.name: expected a string, got 3; choose from tournament, best, random, nsga2"),
        ("selection", ["tournament"], "ga.selection: expected a mapping like {name: tournament}, got list ['tournament']"),
    ],
)
def test_validation_messages(kind, spec, message):
    with pytest.raises(ConfigError) as info:
        validate_operator(kind, spec, f"ga.{kind}")
    assert str(info.value) == message


def test_validation_fills_defaults_and_converts():
    assert validate_operator("crossover", {"name": "sbx", "eta": 15}, "x") == {"name": "sbx", "eta": 15.0}
    assert validate_operator("mutation", {"name": "gaussian", "sigma": 1}, "x") == {
        "name": "gaussian", "mu": 0.0, "sigma": 1.0, "indpb": 0.1
    }
    assert validate_operator("selection", "best", "x") == {"name": "best"}
    assert validate_operator("selection", {"name": "tournament", "tournsize": 4.0}, "x") == {"name": "tournament", "tournsize": 4}
    # validated output validates to itself (configs are checked, then registered)
    for kind, ops in OPERATORS.items():
        for name, op in ops.items():
            full = validate_operator(kind, {"name": name}, "x")
            assert full == {"name": name, **op.defaults()}
            assert validate_operator(kind, full, "x") == full
            assert op.function.__module__.startswith("deap.tools")
    with pytest.raises(ValueError, match="unknown operator kind"):
        validate_operator("mating", {"name": "blend"}, "x")


def test_register_operators_checks_the_box_and_configs():
    with pytest.raises(ValueError, match="finite low < up"):
        _toolbox(low=1.0, up=1.0)
    with pytest.raises(ConfigError, match="^crossover.eta: must be > 0"):
        _toolbox(crossover={"name": "sbx", "eta": -2})
    tb = _toolbox(crossover={"name": "sbx", "eta": 3})
    assert {"select", "mate", "mutate"} <= set(dir(tb))


def test_describe_operators_lists_everything():
    text = describe_operators()
    for ops in OPERATORS.values():
        for name, op in ops.items():
            assert f"  {name}: " in text
            for p in op.params:
                assert f"    {p.name} (" in text
