"""The Problem contract over every built-in problem."""

import numpy as np
import pytest

from evonet import config
from evonet.problems.function import FunctionProblem
from evonet.problems.snake_weights import SnakeWeightsProblem

from tests.contracts.problem import ProblemContract


def sphere(genomes, seeds):
    return -(genomes.astype(np.float64) ** 2).sum(axis=1)


def noisy_sphere(genomes, seeds):
    return sphere(genomes, seeds) + np.array([np.random.default_rng(int(s)).normal() for s in seeds])


class TestSnakeWeights(ProblemContract):
    @pytest.fixture
    def make(self):
        cfg = config.from_dict({"snake": {"games": 2, "board": 8}, "network": {"hidden": [4]}, "seed": 5})
        return lambda: SnakeWeightsProblem.from_config(cfg)


class TestFunction(ProblemContract):
    STOCHASTIC = False

    @pytest.fixture
    def make(self):
        return lambda: FunctionProblem(sphere, 7, run_seed=1)


class TestNoisyFunction(ProblemContract):
    @pytest.fixture
    def make(self):
        return lambda: FunctionProblem(noisy_sphere, 3, run_seed=1, noisy=True, batched=True)


class TestGym(ProblemContract):
    @pytest.fixture
    def make(self):
        from evonet.problems.gym import GymProblem

        spec = GymProblem.spec_for_env("Pendulum-v1", hidden=(4,))
        return lambda: GymProblem("Pendulum-v1", spec, episodes=2, run_seed=3, max_steps=20)


class TestHyperparameters(ProblemContract):
    """A user's build function on a slice of digits (one epoch: the contract, not accuracy).
    A genome's training seed derives from its hash, not from the generation."""

    N = 2
    STOCHASTIC = False

    @pytest.fixture(scope="class")
    @classmethod
    def make(cls):
        keras = pytest.importorskip("keras")
        from evonet.data import load_digits
        from evonet.data.datasets import from_arrays
        from evonet.hp import discover
        from evonet.problems.user_model import UserModelProblem, budget_of

        x, y = load_digits()
        x = (x[:300] / 16.0).astype("float32")

        def build(hp):
            model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(),
                                      keras.layers.Dense(hp.Int("units", 4, 16), activation="relu"),
                                      keras.layers.Dense(10, activation="softmax")])
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
            return model

        space = discover(build, seed=0)
        data = from_arrays(x[:200], y[:200], (x[200:], y[200:300]))
        return lambda: UserModelProblem(space, data, budget_of(1, 0, 100_000), run_seed=1)
