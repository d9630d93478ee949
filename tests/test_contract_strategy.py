"""The Strategy contract over every built-in strategy."""

import pytest

from evonet import config, seeding
from evonet.strategies.ga import make_strategy

from tests.contracts.strategy import StrategyContract

GA = {
    "simple": {"algorithm": "simple", "population": 12},
    "mu_plus_lambda": {"algorithm": "mu_plus_lambda", "population": 12, "offspring": 16},
    "mu_plus_lambda_sbx": {"algorithm": "mu_plus_lambda", "population": 12, "crossover": {"name": "sbx"},
                           "mutation": {"name": "polynomial"}, "reevaluate": False},
    "cma_es": {"algorithm": "cma_es", "population": 10, "sigma": 1.0},
}


@pytest.fixture(params=sorted(GA))
def make(request):
    ga = config.from_dict({"ga": {**GA[request.param], "bound": StrategyContract.UP, "hall_of_fame": 3}}).ga

    def make(seed):
        genomes = seeding.generator(seed, seeding.PURPOSE_INIT).uniform(-1, 1, (ga.population, StrategyContract.N_GENES))
        return make_strategy(ga, genomes, StrategyContract.LOW, StrategyContract.UP,
                             seeding.generator(seed, seeding.PURPOSE_STRATEGY))

    return make


class TestStrategyContract(StrategyContract):
    pass
