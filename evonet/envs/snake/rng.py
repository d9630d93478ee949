"""The snake game's own pseudo-random number generator: SplitMix64.

Every apple of a game comes from one SplitMix64 stream seeded with the game seed, a
``uint64``. The plain-Python reference (:mod:`.reference`) and the compiled batched engine
(:mod:`.engine`) implement the same arithmetic, so a seed gives the same apples in both,
bit for bit, on every platform. All arithmetic is modulo ``2**64``::

    state = seed
    next():
        state += 0x9E3779B97F4A7C15
        z = state
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB
        return z ^ (z >> 31)

    randbelow(n) = ((next() >> 32) * n) >> 32        # 1 <= n < 2**32

``randbelow`` scales the top 32 bits of one output into ``0 .. n-1`` (Lemire's
multiply-shift without the rejection step): one draw per call, whatever ``n``; its bias,
at most ``n / 2**32``, is far below anything a snake game can show.
"""

from __future__ import annotations

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


class SplitMix64:
    """SplitMix64 in plain Python integers (used by the reference game)."""

    __slots__ = ("state",)

    def __init__(self, seed: int):
        seed = int(seed)
        if not 0 <= seed <= MASK64:
            raise ValueError(f"a game seed is a uint64 (0 .. 2**64-1), got {seed}")
        self.state = seed

    def next(self) -> int:
        """The next 64-bit output."""
        self.state = (self.state + GOLDEN_GAMMA) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * MIX1) & MASK64
        z = ((z ^ (z >> 27)) * MIX2) & MASK64
        return z ^ (z >> 31)

    def randbelow(self, n: int) -> int:
        """An integer in ``0 .. n-1`` from one draw (``1 <= n < 2**32``)."""
        if not 1 <= n < (1 << 32):
            raise ValueError(f"randbelow needs 1 <= n < 2**32, got {n}")
        return ((self.next() >> 32) * n) >> 32


def as_seeds(seeds) -> np.ndarray:
    """Game seeds as a 1-D ``uint64`` array (Python ints, numpy ints or arrays).

    Negative numbers and floats are refused rather than wrapped or rounded.
    """
    arr = np.asarray(seeds)
    if arr.dtype == np.uint64:
        return arr.reshape(-1)
    if arr.dtype.kind == "O":
        values = [int(s) for s in arr.reshape(-1)]
        if any(not 0 <= v <= MASK64 for v in values):
            raise ValueError("game seeds must lie in 0 .. 2**64-1")
        return np.array(values, dtype=np.uint64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"game seeds must be integers, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError("game seeds must lie in 0 .. 2**64-1")
    return arr.astype(np.uint64).reshape(-1)
