"""What a snake agent sees: observation sets computed from the raw game state only.

:func:`observe` takes nothing but the raw state (``body`` head first, ``apple`` or ``None``,
``heading`` as a unit step, the board size), so an exported agent can be played by any
independent implementation of the rules. The batched engine computes the same vectors,
bit for bit, in compiled code (the tests compare them at every step).

Conventions: cells are ``(x, y)``, y grows south; for heading ``h = (hx, hy)`` the snake's
right is ``r = (-hy, hx)`` and its left ``-r``. Fractions and unit vectors are computed in
float64 and rounded once to float32.

``blog7`` (7 features): the seed blog's inputs, in the benchmark doc's order.
    0-2  left / front / right blocked: 1 if the cell one step that way is off the board or
         a body cell (any segment but the head; the tail counts, as in the blog), else 0.
    3-4  the apple's direction from the head as a unit vector (x, y); (0, 0) if the apple
         is on the head or there is none.
    5-6  the heading (x, y).
    (The blog's own code interleaves these as lb, fb, rb, ax, hx, ay, hy; this order is the
    benchmark doc's.)

``vision`` (35 features), all in the snake's own frame. "Body" here means the segments
other than the head and the tail: under the classic rules the tail leaves its cell during
the move, so moving onto it is safe.
    0-23  8 rays from the head, starting straight ahead and going clockwise: forward,
          forward-right, right, back-right, back, back-left, left, forward-left (diagonal
          rays step one cell along both axes). Three features per ray k at 3k, 3k+1, 3k+2:
          1/d for the first off-board cell at d steps (d >= 1); 1/d for the nearest body
          cell at d steps, 0 if none before the wall; 1 if the apple lies on the ray, else 0.
    24-26 left / front / right blocked: 1 if the move would be fatal under the classic
          rules, i.e. off the board or onto a body cell (the tail does not count).
    27-29 left / front / right safety: 0 if that move is blocked; 1 if the region of free
          cells the move enters holds the tail's cell (the snake can follow its tail out of
          there); otherwise the size of that region divided by the number of free cells.
          Free = on the board, not the head, not a body cell (the tail's cell is free when
          no other segment lies on it); regions are 4-connected. Below 1: a dead end, and
          how big.
    30-31 the apple's direction as a unit vector (forward, right); (0, 0) if none/on head.
    32-33 the tail's direction as a unit vector (forward, right); (0, 0) if on the head.
    34    length / (W*H): the fraction of the board the snake fills.

``cycle`` (7 features), in the snake's own frame, on a fixed Hamiltonian cycle of the board
(:func:`cycle_index`; boards with an even number of cells only). ``rel(c)`` is how far cell
``c`` lies ahead of the tail along the cycle, ``(i(c) - i(tail)) mod W*H``, the tail's own
cell counting as ``W*H``.
    0-2   left / front / right onward: 1 if the move is not fatal under the classic rules
          (as vision's 24-26) and enters a cell further ahead of the tail than the head,
          rel(cell) > rel(head); else 0. While the body lies in cycle order from the tail
          to the head (it does at the classic start on boards with an even number of rows),
          a snake that only makes onward moves keeps it so and can neither die nor starve.
    3-5   left / front / right apple distance: the apple's distance along the cycle from
          the cell the move enters, ((i(apple) - i(cell)) mod W*H) / (W*H); 1 for a move
          off the board; 0 for all three if there is no apple.
    6     length / (W*H).

``lookahead`` (5 features), in the snake's own frame, under the game's own rule set (the
only set that depends on it: ``observe(..., rules=)``).
    0-2   left / front / right reach: how many moves in a row, at most
          :data:`LOOKAHEAD_DEPTH`, the snake can survive starting with that move, divided
          by :data:`LOOKAHEAD_DEPTH`; 0 if the move itself is fatal. The search plays the
          rules exactly (under ``theailearner`` a move is fatal when it leaves the board or
          a body cell lies straight ahead after it; under ``classic`` when it leaves the
          board or enters a body cell, the tail's cell free unless the snake eats), with the
          body moving and growing as in the game: a move onto the apple eats it (no new
          apple appears in the search). Step limits and starvation are not part of it.
    3-4   the apple's direction as a unit vector (forward, right); (0, 0) if none/on head
          (as vision's 30-31).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

from .rules import RULE_SETS

Cell = tuple[int, int]

#: Observation sets and their number of features.
OBSERVATIONS: dict[str, int] = {"blog7": 7, "vision": 35, "cycle": 7, "lookahead": 5}

#: Stable integer ids of the sets (the engine's compiled code dispatches on these).
OBSERVATION_IDS: dict[str, int] = {"blog7": 0, "vision": 1, "cycle": 2, "lookahead": 3}

#: How many moves deep ``lookahead`` searches (hand-written policies on theailearner 50x50
#: that keep to moves with a search of 2, 4, 6, 8 and 10 moves: 56.4, 58.8, 60.5, 61.3 and
#: 61.4 apples on 60 games; docs/snake.md).
LOOKAHEAD_DEPTH = 8

#: The 8 ray directions in the snake's frame as (forward, right) multiples, clockwise.
RAYS_FR: tuple[tuple[int, int], ...] = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))


def n_features(name: str) -> int:
    """The number of features of observation set ``name``."""
    check_observation(name)
    return OBSERVATIONS[name]


def check_observation(name: str, width: int | None = None, height: int | None = None) -> None:
    """Raise ``ValueError`` (one line) for an unknown set, or, given the board, for a set
    that cannot be computed on it (``cycle`` needs an even number of cells)."""
    if name not in OBSERVATIONS:
        raise ValueError(f"unknown snake observation {name!r}; choose from {', '.join(OBSERVATIONS)}")
    if name == "cycle" and width is not None and height is not None and (width * height) % 2:
        raise ValueError(f"the cycle observation needs a board with an even number of cells (a Hamiltonian "
                         f"cycle), got {width} x {height}; use an even side, or another observation")


@njit(cache=True)
def _serpentine(x: int, y: int, width: int, height: int) -> int:
    """Position of (x, y) on the cycle of a board with an even ``height``: row 0 eastwards,
    then rows 1..H-1 back and forth over columns 1..W-1 (row 1 westwards), then column 0
    northwards back to (0, 0)."""
    if y == 0:
        return x
    if x == 0:
        return width + (height - 1) * (width - 1) + (height - 1 - y)
    if y % 2 == 1:
        return width + (y - 1) * (width - 1) + (width - 1 - x)
    return width + (y - 1) * (width - 1) + (x - 1)


@njit(cache=True)
def _cycle_raw(x: int, y: int, width: int, height: int) -> int:
    if height % 2 == 0:
        return _serpentine(x, y, width, height)
    return _serpentine(y, x, height, width)  # an odd height: the transposed board's cycle


@njit(cache=True)
def cycle_index(x: int, y: int, width: int, height: int) -> int:
    """Position 0..W*H-1 of cell (x, y) on the board's Hamiltonian cycle (W*H even): cells
    i and i+1 (mod W*H) are neighbours. The cycle runs in the direction in which the step
    east from the board's centre (W//2 - 1, H//2) -> (W//2, H//2), the classic start's head,
    is the shorter way forward (on boards with an even number of rows: one step forward, so
    the classic start body lies in cycle order). Compiled, so that the engines (CPU and
    CUDA) and this reference share the one definition; integers only."""
    n = width * height
    i = _cycle_raw(x, y, width, height)
    ahead = _cycle_raw(width // 2, height // 2, width, height) - _cycle_raw(width // 2 - 1, height // 2, width, height)
    if ahead % n > n // 2:
        return n - 1 - i
    return i


def _unit(dx: int, dy: int) -> tuple[float, float]:
    norm = math.sqrt(dx * dx + dy * dy)
    if norm == 0:
        return 0.0, 0.0
    return dx / norm, dy / norm


def observe(name: str, body: Sequence[Cell], apple: Cell | None, heading: Cell,
            width: int, height: int, rules: str = "classic") -> np.ndarray:
    """The observation vector (float32) of set ``name`` for one raw game state.

    ``rules`` names the game's rule set (``classic`` or ``theailearner``); only
    ``lookahead`` depends on it."""
    check_observation(name)
    if rules not in RULE_SETS:
        raise ValueError(f"unknown snake rules {rules!r}; choose from {', '.join(RULE_SETS)}")
    body = [(int(x), int(y)) for x, y in body]
    heading = (int(heading[0]), int(heading[1]))
    apple = None if apple is None else (int(apple[0]), int(apple[1]))
    if name == "blog7":
        feats = _blog7(body, apple, heading, width, height)
    elif name == "vision":
        feats = _vision(body, apple, heading, width, height)
    elif name == "lookahead":
        feats = _lookahead(body, apple, heading, width, height, rules == "classic")
    else:
        check_observation(name, width, height)
        feats = _cycle(body, apple, heading, width, height)
    return np.array(feats, dtype=np.float32)


def _blog7(body: list[Cell], apple: Cell | None, heading: Cell, width: int, height: int) -> list[float]:
    (x, y), (hx, hy) = body[0], heading
    occupied = set(body[1:])

    def blocked(dx: int, dy: int) -> float:
        cell = (x + dx, y + dy)
        off = not (0 <= cell[0] < width and 0 <= cell[1] < height)
        return 1.0 if off or cell in occupied else 0.0

    ax, ay = (0.0, 0.0) if apple is None else _unit(apple[0] - x, apple[1] - y)
    return [blocked(hy, -hx), blocked(hx, hy), blocked(-hy, hx), ax, ay, float(hx), float(hy)]


def _vision(body: list[Cell], apple: Cell | None, heading: Cell, width: int, height: int) -> list[float]:
    (x, y), (hx, hy) = body[0], heading
    rx, ry = -hy, hx  # the snake's right
    solid = set(body[1:-1])  # body cells but the head and the tail

    def on_board(cx: int, cy: int) -> bool:
        return 0 <= cx < width and 0 <= cy < height

    feats: list[float] = []
    for f, r in RAYS_FR:
        sx, sy = f * hx + r * rx, f * hy + r * ry
        d, body_inv, apple_seen = 1, 0.0, 0.0
        while on_board(x + d * sx, y + d * sy):
            cell = (x + d * sx, y + d * sy)
            if body_inv == 0.0 and cell in solid:
                body_inv = 1.0 / d
            if cell == apple:
                apple_seen = 1.0
            d += 1
        feats += [1.0 / d, body_inv, apple_seen]

    moves = [(-rx, -ry), (hx, hy), (rx, ry)]  # left, front, right
    blocked = [not on_board(x + dx, y + dy) or (x + dx, y + dy) in solid for dx, dy in moves]
    feats += [1.0 if b else 0.0 for b in blocked]

    # free cells: on the board, not the head, not a body cell (the tail's cell is free)
    occupied = solid | {(x, y)}
    n_free = width * height - len(occupied)
    region_of: dict[Cell, frozenset[Cell]] = {}
    for (dx, dy), b in zip(moves, blocked, strict=True):
        if b:
            feats.append(0.0)
            continue
        start = (x + dx, y + dy)
        if start not in region_of:
            region = frozenset(_region(start, occupied, width, height))
            region_of.update(dict.fromkeys(region, region))
        region = region_of[start]
        feats.append(1.0 if body[-1] in region else len(region) / n_free)

    if apple is None:
        feats += [0.0, 0.0]
    else:
        ux, uy = _unit(apple[0] - x, apple[1] - y)
        feats += [ux * hx + uy * hy, ux * rx + uy * ry]
    tx, ty = _unit(body[-1][0] - x, body[-1][1] - y)
    feats += [tx * hx + ty * hy, tx * rx + ty * ry]
    feats.append(len(body) / (width * height))
    return feats


def _cycle(body: list[Cell], apple: Cell | None, heading: Cell, width: int, height: int) -> list[float]:
    (x, y), (hx, hy) = body[0], heading
    rx, ry = -hy, hx
    n = width * height
    solid = set(body[1:-1])  # as vision: the tail's cell is free
    tail = cycle_index(*body[-1], width, height)

    def rel(cx: int, cy: int) -> int:
        return (cycle_index(cx, cy, width, height) - tail) % n or n

    head = rel(x, y)
    onward: list[float] = []
    distance: list[float] = []
    for dx, dy in ((-rx, -ry), (hx, hy), (rx, ry)):  # left, front, right
        cx, cy = x + dx, y + dy
        if not (0 <= cx < width and 0 <= cy < height):
            onward.append(0.0)
            distance.append(1.0)
            continue
        onward.append(1.0 if (cx, cy) not in solid and rel(cx, cy) > head else 0.0)
        if apple is None:
            distance.append(0.0)
        else:
            distance.append(((cycle_index(*apple, width, height) - cycle_index(cx, cy, width, height)) % n) / n)
    if apple is None:
        distance = [0.0, 0.0, 0.0]
    return onward + distance + [len(body) / n]


def _move(body: tuple[Cell, ...], apple: Cell | None, heading: Cell, action: int, width: int, height: int,
          classic: bool) -> tuple[tuple[Cell, ...], Cell | None, Cell] | None:
    """One move of ``lookahead``'s search: the next (body, apple, heading), or None if fatal."""
    hx, hy = heading
    h = (hy, -hx) if action == 0 else ((hx, hy) if action == 1 else (-hy, hx))
    x, y = body[0]
    new = (x + h[0], y + h[1])
    if not (0 <= new[0] < width and 0 <= new[1] < height):
        return None
    eats = new == apple
    if classic and new in (body if eats else body[:-1]):
        return None
    moved = (new, *body) if eats else (new, *body[:-1])
    if not classic and (new[0] + h[0], new[1] + h[1]) in moved:
        return None
    return moved, (None if eats else apple), h


def _reach(body: tuple[Cell, ...], apple: Cell | None, heading: Cell, width: int, height: int, classic: bool,
           depth: int) -> int:
    """The most moves in a row, at most ``depth``, survivable from this state."""
    best = 0
    for action in (1, 0, 2):
        if best == depth:
            break
        child = _move(body, apple, heading, action, width, height, classic)
        if child is not None:
            best = max(best, 1 + (_reach(*child, width, height, classic, depth - 1) if depth > 1 else 0))
    return best


def _lookahead(body: list[Cell], apple: Cell | None, heading: Cell, width: int, height: int,
               classic: bool) -> list[float]:
    (x, y), (hx, hy) = body[0], heading
    rx, ry = -hy, hx
    feats: list[float] = []
    for action in (0, 1, 2):  # left, front, right
        child = _move(tuple(body), apple, heading, action, width, height, classic)
        reach = 0 if child is None else 1 + _reach(*child, width, height, classic, LOOKAHEAD_DEPTH - 1)
        feats.append(reach / LOOKAHEAD_DEPTH)
    if apple is None:
        feats += [0.0, 0.0]
    else:
        ux, uy = _unit(apple[0] - x, apple[1] - y)
        feats += [ux * hx + uy * hy, ux * rx + uy * ry]
    return feats


def _region(start: Cell, occupied: set[Cell], width: int, height: int) -> set[Cell]:
    """The 4-connected region of free cells (on the board, not ``occupied``) holding ``start``."""
    seen = {start}
    stack = [start]
    while stack:
        cx, cy = stack.pop()
        for nx, ny in ((cx + 1, cy), (cx - 1, cy), (cx, cy + 1), (cx, cy - 1)):
            if 0 <= nx < width and 0 <= ny < height and (nx, ny) not in occupied and (nx, ny) not in seen:
                seen.add((nx, ny))
                stack.append((nx, ny))
    return seen
