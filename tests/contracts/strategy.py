"""The Strategy contract: every strategy the loop can run passes these (see evonet/core/strategy.py)."""

import json

import numpy as np
import pytest

from evonet.core.strategy import Strategy
from evonet.core.types import EvalResult


def sphere_results(individuals):
    return [EvalResult(fitness=-float(np.sum(np.square(ind))), weight=1) for ind in individuals]


def json_round_trip(state):
    """What a checkpoint does to a state: JSON values and arrays (as lists here)."""
    return json.loads(json.dumps(state, default=lambda o: o.tolist() if hasattr(o, "tolist") else o))


class StrategyContract:
    """Subclass with a ``make(seed)`` fixture returning a fresh strategy of 6 genes in [-5, 5]."""

    N_GENES, LOW, UP = 6, -5.0, 5.0

    def run(self, strategy, generations):
        asked = []
        for _ in range(generations):
            individuals = strategy.ask()
            asked.append(np.array(individuals, dtype=np.float64))
            strategy.tell(individuals, sphere_results(individuals))
        return asked

    def test_is_a_strategy(self, make):
        assert isinstance(make(0), Strategy)

    def test_ask_tell_shapes_and_bounds(self, make):
        s = make(0)
        for gen in range(3):
            individuals = s.ask()
            assert s.generation == gen and len(individuals) > 0
            genes = np.array(individuals, dtype=np.float64)
            assert genes.shape == (len(individuals), self.N_GENES)
            assert genes.min() >= self.LOW and genes.max() <= self.UP
            s.tell(individuals, sphere_results(individuals))
            assert len(s.population) > 0 and len(s.hof) > 0
            assert s.fitnesses().shape == (len(s.population),)

    def test_ask_twice_and_foreign_tell_are_refused(self, make):
        s = make(0)
        individuals = s.ask()
        with pytest.raises(RuntimeError):
            s.ask()
        with pytest.raises(RuntimeError):
            s.tell(list(individuals)[::-1], sphere_results(individuals))

    def test_determinism_per_seed(self, make):
        a, b, c = self.run(make(3), 4), self.run(make(3), 4), self.run(make(4), 4)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        assert any(x.shape != y.shape or not np.array_equal(x, y) for x, y in zip(a, c))

    def test_state_round_trip_mid_run_continues_exactly(self, make):
        s = make(1)
        self.run(s, 3)
        state = json_round_trip(s.get_state())
        t = make(1)
        t.set_state(state)
        assert t.generation == s.generation
        for x, y in zip(self.run(s, 3), self.run(t, 3)):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(s.fitnesses(), t.fitnesses())

    def test_get_state_between_ask_and_tell_is_refused(self, make):
        s = make(0)
        s.ask()
        with pytest.raises(RuntimeError):
            s.get_state()

    def test_improves_on_a_smooth_problem(self, make):
        s = make(0)
        self.run(s, 1)
        first = s.fitnesses().max()
        self.run(s, 15)
        assert s.fitnesses().max() > first
