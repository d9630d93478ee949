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
