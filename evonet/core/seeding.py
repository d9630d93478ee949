"""Seeds derived from (run seed, purpose, generation, index).

Every random draw in evonet goes through a seed made here, so a result depends only on
the run seed and on *which* individual is evaluated, never on the order in which
workers happen to run the evaluations.

Snake game seeds live in two disjoint ranges:

* evaluation seeds (``evonet eval``, benchmark tables) are small integers ``0 .. 2**32-1``;
* training seeds (used for selection during evolution) have the top bit set, so they are
  always ``>= 2**63`` and can never coincide with an evaluation seed.
"""

from __future__ import annotations

import numpy as np

#: Purposes keep the streams of different consumers independent.
PURPOSE_GAMES = 1
PURPOSE_STRATEGY = 2
PURPOSE_INIT = 3
PURPOSE_FINAL = 4  # picking the final best of the hall of fame

TRAINING_SEED_BIT = np.uint64(1 << 63)
MAX_EVAL_SEED = 2**32 - 1


def seed_sequence(run_seed: int, purpose: int, *keys: int) -> np.random.SeedSequence:
    """The SeedSequence for ``(run_seed, purpose, *keys)``."""
    if run_seed < 0:
        raise ValueError(f"run seed must be >= 0, got {run_seed}")
    return np.random.SeedSequence([int(run_seed), int(purpose), *(int(k) for k in keys)])


def generator(run_seed: int, purpose: int, *keys: int) -> np.random.Generator:
    """A ``numpy.random.Generator`` for ``(run_seed, purpose, *keys)``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(run_seed, purpose, *keys)))


def training_game_seeds(
    run_seed: int, generation: int, indices, games: int, purpose: int = PURPOSE_GAMES
) -> np.ndarray:
    """Game seeds for individuals ``indices`` of ``generation``: shape (len(indices), games).

    Row i depends only on (run_seed, purpose, generation, indices[i]); every seed is >= 2**63.
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    out = np.empty((indices.size, games), dtype=np.uint64)
    for row, index in enumerate(indices):
        ss = seed_sequence(run_seed, purpose, generation, int(index))
        out[row] = ss.generate_state(games, dtype=np.uint64) | TRAINING_SEED_BIT
    return out


def evaluation_game_seeds(games: int, start: int = 0) -> np.ndarray:
    """The benchmark's evaluation seeds ``start .. start+games-1`` as uint64."""
    if start < 0 or start + games - 1 > MAX_EVAL_SEED:
        raise ValueError(f"evaluation seeds must lie in 0..{MAX_EVAL_SEED}")
    return np.arange(start, start + games, dtype=np.uint64)
