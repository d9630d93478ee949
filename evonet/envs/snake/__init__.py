"""The snake game: rule sets, the reference game, the batched engine, observations, the
blog's heuristic policy. See docs/snake.md."""

from . import _numba_cache

_numba_cache.install()  # before any compiled function of the package is defined

from .engine import DEATH_CODES, DEATH_NAMES, DIRECTIONS, BatchSnake
from .heuristic import heuristic_action
from .observations import OBSERVATIONS, check_observation, n_features, observe
from .reference import ACTIONS, DEATHS, SnakeGame, SnakeState, turn
from .rng import SplitMix64, as_seeds
from .rules import RULE_SETS, Rules, make_rules

__all__ = [
    "ACTIONS",
    "DEATHS",
    "DEATH_CODES",
    "DEATH_NAMES",
    "DIRECTIONS",
    "OBSERVATIONS",
    "RULE_SETS",
    "BatchSnake",
    "Rules",
    "SnakeGame",
    "SnakeState",
    "SplitMix64",
    "as_seeds",
    "check_observation",
    "heuristic_action",
    "make_rules",
    "n_features",
    "observe",
    "turn",
]


def __getattr__(name: str):
    # the Gymnasium environment imports gymnasium: loaded on first use only
    if name == "SnakeEnv":
        from .env import SnakeEnv

        return SnakeEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
