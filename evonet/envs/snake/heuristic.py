"""The seed blog's heuristic policy, exactly as the benchmark doc defines it.

At each step, with heading ``h = (hx, hy)``, left ``(hy, -hx)`` and right ``(-hy, hx)``:

1. ``lb, fb, rb``: is the cell one step to the left / front / right blocked (off the board,
   or a body cell other than the head; the tail counts).
2. ``a = apple - head`` and ``s = h``, both normalised (a zero vector stays zero);
   ``angle = atan2(a_y*s_x - a_x*s_y, a_y*s_y + a_x*s_x)``. Turn right if ``angle > 0``,
   left if ``angle < 0``, straight if it is 0. The float arithmetic is done literally, in
   this order, so signed zeros behave as in the blog: an apple straight behind gives
   ``atan2(±0.0, -1) = ±pi``, and which sign depends on the heading.
3. Avoid a blocked choice:

   - wanted left and lb: right if fb and not rb; straight if not fb and rb; right if
     neither fb nor rb.
   - wanted straight and fb: right if lb and not rb; left if not lb and rb; right if
     neither lb nor rb.
   - wanted right and rb: straight if lb and not fb; left if not lb and fb; left if
     neither lb nor fb.
   - if all three are blocked the wanted turn stands.

:func:`heuristic_action` works on the raw state; :func:`heuristic_decision` is the same
policy compiled with numba, for the batched engine (which computes the blocked bits from
its own grid).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from numba import njit

Cell = tuple[int, int]

LEFT, STRAIGHT, RIGHT = 0, 1, 2


def wanted_turn(head: Cell, apple: Cell | None, heading: Cell) -> int:
    """Step 2: the turn towards the apple (0 left, 1 straight, 2 right)."""
    if apple is None:
        return STRAIGHT
    return _wanted(float(apple[0] - head[0]), float(apple[1] - head[1]), float(heading[0]), float(heading[1]))


def heuristic_action(body: Sequence[Cell], apple: Cell | None, heading: Cell, width: int, height: int) -> int:
    """The blog's heuristic action for one raw game state."""
    (x, y), (hx, hy) = body[0], heading
    occupied = set(body[1:])

    def blocked(dx: int, dy: int) -> bool:
        cx, cy = x + dx, y + dy
        return not (0 <= cx < width and 0 <= cy < height) or (cx, cy) in occupied

    lb, fb, rb = blocked(hy, -hx), blocked(hx, hy), blocked(-hy, hx)
    return _avoid(wanted_turn(body[0], apple, heading), lb, fb, rb)


def _wanted(ax: float, ay: float, sx: float, sy: float) -> int:
    na = math.sqrt(ax * ax + ay * ay)
    if na != 0.0:
        ax = ax / na
        ay = ay / na
    ns = math.sqrt(sx * sx + sy * sy)
    if ns != 0.0:
        sx = sx / ns
        sy = sy / ns
    angle = math.atan2(ay * sx - ax * sy, ay * sy + ax * sx)
    if angle > 0:
        return RIGHT
    if angle < 0:
        return LEFT
    return STRAIGHT


def _avoid(wanted: int, lb: bool, fb: bool, rb: bool) -> int:
    if lb and fb and rb:
        return wanted
    if wanted == LEFT and lb:
        if fb and not rb:
            return RIGHT
        if not fb and rb:
            return STRAIGHT
        if not fb and not rb:
            return RIGHT
    elif wanted == STRAIGHT and fb:
        if lb and not rb:
            return RIGHT
        if not lb and rb:
            return LEFT
        if not lb and not rb:
            return RIGHT
    elif wanted == RIGHT and rb:
        if lb and not fb:
            return STRAIGHT
        if not lb and fb:
            return LEFT
        if not lb and not fb:
            return LEFT
    return wanted


# the same two functions, compiled for the batched engine (the Python ones stay plain)
_wanted_jit = njit(cache=True)(_wanted)
_avoid_jit = njit(cache=True)(_avoid)


@njit(cache=True)
def heuristic_decision(lb: bool, fb: bool, rb: bool, has_apple: bool,
                       ax: float, ay: float, sx: float, sy: float) -> int:
    """The heuristic from its inputs, compiled: blocked bits, ``a = apple - head`` (if any)
    and the heading ``s``, both not yet normalised. The batched engine calls this."""
    wanted = _wanted_jit(ax, ay, sx, sy) if has_apple else STRAIGHT
    return _avoid_jit(wanted, lb, fb, rb)
