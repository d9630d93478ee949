"""The batched snake engine: B games stepped at once in numba-compiled code.

It plays exactly the games of :mod:`.reference` (same seeds and actions give the same
moves, apples, deaths, scores and step counts, for both rule sets and any board) and
computes the observation sets of :mod:`.observations` bit for bit.

Layout (chosen so one game's step touches few cache lines and no division):

* Cells are indices into the board padded with a one-cell wall border:
  ``cell(x, y) = (y + 1) * S + (x + 1)`` with stride ``S = W + 2``; a move adds
  ``(1, S, -1, -S)[direction]``. A head can only ever leave the board by one cell, onto
  the border, so every cell a game can reach is a valid index.
* ``grid`` (B, (W+2)*(H+2)) uint16: border cells hold :data:`WALL`; board cells hold how
  many body segments lie on them (counts, not flags: under ``theailearner`` a turn into
  the body is legal and segments may overlap). "Wall or body" is ``grid[c] != 0``.
* ``body`` (B, cap) uint16: each body is a ring buffer of cells; ``state[g, HEAD]`` and
  ``state[g, TAIL]`` are the slots of the head and the tail. A move writes the new head one
  slot further and, unless the snake eats, advances the tail: O(1) per step.
* ``state`` (B, 16) int32, one 64-byte row per game: the ring slots, length, direction
  (0 east, 1 south, 2 west, 3 north: clockwise with y south, so action a turns to
  ``(direction + a + 3) % 4``), head cell and (x, y), apple cell and (x, y) (-1: none),
  apples, score, steps, steps since the last apple, done, death code.
* ``rng`` (B,) uint64: each game's SplitMix64 state (:mod:`.rng`).

The compiled kernels take an array of game indices, so a caller can step and observe any
subset of the games (the evaluator drops finished individuals that way, without copying
game state). :meth:`BatchSnake.step_observe` fuses a step and the next observation into
one compiled call.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .arith import rn_add, rn_mul
from .heuristic import heuristic_decision
from .observations import LOOKAHEAD_DEPTH, OBSERVATION_IDS, OBSERVATIONS, check_observation, cycle_index
from .reference import DEATHS, SnakeState
from .rng import GOLDEN_GAMMA, MIX1, MIX2, as_seeds
from .rules import Rules

#: death codes: index into this tuple (0 = still playing)
DEATH_NAMES: tuple[str | None, ...] = (None, *DEATHS)
DEATH_CODES: dict[str | None, int] = {name: code for code, name in enumerate(DEATH_NAMES)}

#: heading index -> unit step (east, south, west, north)
DIRECTIONS: tuple[tuple[int, int], ...] = ((1, 0), (0, 1), (-1, 0), (0, -1))

#: grid value of the border cells
WALL = 0x8000
_COUNT = 0x7FFF

# columns of `state`
HEAD, TAIL, LEN, DIR, HCELL, HX, HY, ACELL, AX, AY, APPLES, SCORE, STEPS, SINCE, DONE, DEATH = range(16)
N_COLUMNS = 16

_DX = np.array([1, 0, -1, 0], dtype=np.int64)
_DY = np.array([0, 1, 0, -1], dtype=np.int64)

_GAMMA = np.uint64(GOLDEN_GAMMA)
_MIX1 = np.uint64(MIX1)
_MIX2 = np.uint64(MIX2)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S32 = np.uint64(32)

_WALL_DEATH, _BODY_DEATH, _STARVED, _WON, _STEP_LIMIT = 1, 2, 3, 4, 5


# --------------------------------------------------------------------------------------
# RNG and apples


@njit(cache=True)
def _rand_below(rng, g, n):
    """SplitMix64 draw of game g scaled to 0..n-1 (see .rng)."""
    s = rng[g] + _GAMMA
    rng[g] = s
    z = (s ^ (s >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return np.int64(((z >> _S32) * np.uint64(n)) >> _S32)


@njit(cache=True)
def _place_apple(g, classic, width, height, state, grid, rng):
    stride = width + 2
    if classic:
        # the k-th free cell in row-major order
        k = _rand_below(rng, g, width * height - state[g, LEN])
        for y in range(height):
            row = (y + 1) * stride + 1
            for x in range(width):
                if grid[g, row + x] == 0:
                    if k == 0:
                        state[g, ACELL] = row + x
                        state[g, AX] = x
                        state[g, AY] = y
                        return
                    k -= 1
    else:
        x = 1 + _rand_below(rng, g, width - 1)
        y = 1 + _rand_below(rng, g, height - 1)
        state[g, ACELL] = (y + 1) * stride + x + 1
        state[g, AX] = x
        state[g, AY] = y


@njit(cache=True)
def _check_ahead(g, width, state, grid):
    """theailearner: end the game if the head is off the board or the body is straight ahead."""
    h = state[g, HCELL]
    if grid[g, h] & WALL:
        state[g, DONE] = 1
        state[g, DEATH] = _WALL_DEATH
        return
    d = state[g, DIR]
    stride = width + 2
    ahead = h + (1 if d == 0 else stride if d == 1 else -1 if d == 2 else -stride)
    v = grid[g, ahead]
    if v != 0 and not (v & WALL):
        state[g, DONE] = 1
        state[g, DEATH] = _BODY_DEATH


@njit(cache=True)
def _reset(classic, width, height, start_cells, start_xy, start_dir, score_offset, state, body, grid, rng):
    for g in range(state.shape[0]):
        _reset_game(g, classic, width, height, start_cells, start_xy, start_dir, score_offset, state, body, grid, rng)


@njit(cache=True)
def _reset_game(g, classic, width, height, start_cells, start_xy, start_dir, score_offset, state, body, grid, rng):
    """Start game g (its grid row all zero, its RNG seeded): walls, body, first apple."""
    stride = width + 2
    n0 = start_cells.shape[0]
    for c in range(stride):
        grid[g, c] = WALL
        grid[g, (height + 1) * stride + c] = WALL
    for y in range(1, height + 1):
        grid[g, y * stride] = WALL
        grid[g, y * stride + width + 1] = WALL
    # ring order: tail in slot 0, head in slot n0-1
    for i in range(n0):
        c = start_cells[n0 - 1 - i]
        body[g, i] = c
        grid[g, c] += 1
    state[g, :] = 0
    state[g, HEAD] = n0 - 1
    state[g, TAIL] = 0
    state[g, LEN] = n0
    state[g, DIR] = start_dir
    state[g, HCELL] = start_cells[0]
    state[g, HX] = start_xy[0]
    state[g, HY] = start_xy[1]
    state[g, SCORE] = score_offset
    _place_apple(g, classic, width, height, state, grid, rng)
    if not classic:
        _check_ahead(g, width, state, grid)


# --------------------------------------------------------------------------------------
# stepping
#
# Numba increments and decrements the reference count of every array passed to a compiled
# function at each call (atomic operations, ~30 ns a call with four arrays), so the hot
# per-game work lives in loops over a range of games, not in a function called per game.


@njit(cache=True)
def _step_range(games, actions, lo, hi, classic, width, height, max_steps, starve, cap, state, body, grid, rng):
    """Play actions[j] in game games[j] for j in lo..hi-1 (finished games are skipped)."""
    stride = width + 2
    for j in range(lo, hi):
        g = games[j]
        if state[g, DONE]:
            continue
        d = (state[g, DIR] + actions[j] + 3) & 3
        state[g, DIR] = d
        state[g, STEPS] += 1
        if d == 0:
            delta, dx, dy = 1, 1, 0
        elif d == 1:
            delta, dx, dy = stride, 0, 1
        elif d == 2:
            delta, dx, dy = -1, -1, 0
        else:
            delta, dx, dy = -stride, 0, -1
        new = state[g, HCELL] + delta
        v = grid[g, new]
        eats = new == state[g, ACELL]
        tail_slot = state[g, TAIL]
        tail_cell = np.int64(body[g, tail_slot])
        if classic:
            if v & WALL:
                state[g, DONE] = 1
                state[g, DEATH] = _WALL_DEATH
                continue
            # the tail's cell is free unless the snake eats (an apple is never on the body)
            if v != 0 and (eats or new != tail_cell):
                state[g, DONE] = 1
                state[g, DEATH] = _BODY_DEATH
                continue
        # the new head (under theailearner possibly onto the border: checked below)
        head_slot = state[g, HEAD] + 1
        if head_slot == cap:
            head_slot = 0
        state[g, HEAD] = head_slot
        body[g, head_slot] = new
        if not (v & WALL):
            grid[g, new] += 1
        state[g, HCELL] = new
        state[g, HX] += dx
        state[g, HY] += dy
        if eats:
            state[g, LEN] += 1
            state[g, APPLES] += 1
            state[g, SCORE] += 1
            state[g, SINCE] = 0
            if classic and state[g, LEN] == width * height:
                state[g, ACELL] = -1
                state[g, AX] = -1
                state[g, AY] = -1
                state[g, DONE] = 1
                state[g, DEATH] = _WON
                continue
            _place_apple(g, classic, width, height, state, grid, rng)
        else:
            grid[g, tail_cell] -= 1
            tail_slot += 1
            if tail_slot == cap:
                tail_slot = 0
            state[g, TAIL] = tail_slot
            state[g, SINCE] += 1
            if starve > 0 and state[g, SINCE] >= starve:
                state[g, DONE] = 1
                state[g, DEATH] = _STARVED
                continue
        if max_steps > 0 and state[g, STEPS] >= max_steps:
            state[g, DONE] = 1
            state[g, DEATH] = _STEP_LIMIT
            continue
        if not classic:
            # theailearner's check before the next move: head off the board, body ahead
            if v & WALL:
                state[g, DONE] = 1
                state[g, DEATH] = _WALL_DEATH
                continue
            ahead = grid[g, new + delta]
            if ahead != 0 and not (ahead & WALL):
                state[g, DONE] = 1
                state[g, DEATH] = _BODY_DEATH


# --------------------------------------------------------------------------------------
# observations (see .observations for the definitions)


# The float64 products and sums of the observations are exact (small integers, headings
# of -1, 0 and 1), so no rounding can differ; they still go through rn_mul / rn_add (.arith),
# so that the CUDA engine's kernel holds no fused multiply-add at all.


@njit(cache=True)
def _unit(dx, dy):
    norm = math.sqrt(rn_add(rn_mul(dx, dx), rn_mul(dy, dy)))
    if norm == 0.0:
        return 0.0, 0.0
    return dx / norm, dy / norm


#: the rays of `vision`, k = 0..7 clockwise from straight ahead: (forward, right) multiples
_RAY_F = np.array([1, 1, 0, -1, -1, -1, 0, 1], dtype=np.int64)
_RAY_R = np.array([0, 1, 1, 1, 0, -1, -1, -1], dtype=np.int64)
#: 1.0 / n for n = 0..1023 (_INV[0] unused), the same correctly rounded quotients as a division
_INV = np.concatenate([[0.0], 1.0 / np.arange(1, 1024, dtype=np.float64)])


@njit(cache=True, inline="always")
def _inverse(n):
    """1.0 / n (n >= 1) in float64: a table up to 1023, a division beyond."""
    return _INV[n] if n < 1024 else 1.0 / n


@njit(cache=True)
def _solid(v, c, tail_cell):
    """A body cell other than the tail (``vision``); ``v = grid[g, c]``, not a wall."""
    n = np.int64(v & _COUNT)
    if c == tail_cell:
        n -= 1
    return n > 0


@njit(cache=True, inline="always")
def _head(g, state, body):
    """Game g's head (x, y), heading index and tail cell."""
    return np.int64(state[g, HX]), np.int64(state[g, HY]), state[g, DIR], np.int64(body[g, state[g, TAIL]])


@njit(cache=True, inline="always")
def _ray(k, hx, hy, x, y, width, height):
    """Ray k of `vision` (clockwise from straight ahead) from the head at (x, y) heading
    (hx, hy): its unit step (sx, sy) on the board and ``dist``, the steps to the first cell
    off the board. The border's distance comes from coordinates."""
    f = _RAY_F[k]
    r = _RAY_R[k]
    sx = f * hx - r * hy  # forward (hx, hy), right (-hy, hx)
    sy = f * hy + r * hx
    # comparisons, not min(): numba 0.68's built-in CUDA target fails to compile the builtin
    # min of two numbers
    dist = (width - x) if sx > 0 else ((x + 1) if sx < 0 else width + height)
    if sy > 0:
        if height - y < dist:
            dist = height - y
    elif sy < 0:
        if y + 1 < dist:
            dist = y + 1
    return sx, sy, dist


@njit(cache=True, inline="always")
def _ray_features(out, row, k, sx, sy, dist, t, has_apple, adx, ady):
    """Ray k's three `vision` features: 1/dist, 1/t for the first body cell t steps away (0:
    none before the border), whether the apple, (adx, ady) from the head, lies on the ray."""
    apple_seen = 0.0
    if has_apple:
        ta = adx * sx if sx != 0 else ady * sy
        if 1 <= ta < dist and adx == ta * sx and ady == ta * sy:
            apple_seen = 1.0
    out[row, 3 * k] = _inverse(dist)
    out[row, 3 * k + 1] = _inverse(t) if t > 0 else 0.0
    out[row, 3 * k + 2] = apple_seen


@njit(cache=True, inline="always")
def _observe_vision(g, classic, width, height, state, body, grid, out, row, mark, stack, base):
    """Write game g's `vision` features to out[row]. `mark` and `stack` are scratch arrays
    of the padded grid's size; cells with mark < base count as unseen, base..base+3 are
    used here (so the next call must pass base + 4 or more).

    The rays walk the board from the head to the first body cell; the fused engine reads
    them from bit masks of the body instead (:func:`.fused._observe_vision_lines`), and both
    share the rest (:func:`_vision_rest`)."""
    stride = width + 2
    h = state[g, HCELL]
    x, y, d, tail_cell = _head(g, state, body)
    has_apple = state[g, ACELL] >= 0
    adx = np.int64(state[g, AX]) - x
    ady = np.int64(state[g, AY]) - y
    for k in range(8):
        sx, sy, dist = _ray(k, _DX[d], _DY[d], x, y, width, height)
        step = sx + sy * stride
        t = 0
        c = h + step
        for i in range(1, dist):
            if _solid(grid[g, c], c, tail_cell):
                t = i
                break
            c += step
        _ray_features(out, row, k, sx, sy, dist, t, has_apple, adx, ady)
    _vision_rest(g, classic, width, height, state, body, grid, out, row, mark, stack, base)


@njit(cache=True, inline="always")
def _vision_rest(g, classic, width, height, state, body, grid, out, row, mark, stack, base):
    """`vision` features 24..34 of game g (blocked moves, regions, apple and tail directions,
    length) into out[row]: :func:`_observe_vision` without the rays."""
    stride = width + 2
    h = state[g, HCELL]
    x, y, d, tail_cell = _head(g, state, body)
    hx = _DX[d]
    hy = _DY[d]
    rx = -hy
    ry = hx
    apple = state[g, ACELL]
    # left, front, right: blocked bits
    m0 = -rx - ry * stride
    m1 = hx + hy * stride
    m2 = rx + ry * stride
    v0 = grid[g, h + m0]
    v1 = grid[g, h + m1]
    v2 = grid[g, h + m2]
    b0 = (v0 & WALL) != 0 or _solid(v0, h + m0, tail_cell)
    b1 = (v1 & WALL) != 0 or _solid(v1, h + m1, tail_cell)
    b2 = (v2 & WALL) != 0 or _solid(v2, h + m2, tail_cell)
    out[row, 24] = 1.0 if b0 else 0.0
    out[row, 25] = 1.0 if b1 else 0.0
    out[row, 26] = 1.0 if b2 else 0.0
    # free cells: on the board, not the head, not a body cell (the tail's cell is free)
    mark[h] = base
    if classic:
        n_occupied = state[g, LEN] - 1  # no overlap: the head and the middle segments
    else:
        # segments may overlap: count the distinct cells of the body's segments, marking each
        # occupied one with `base` (the fills below never enter a body cell anyway)
        n_occupied = 1
        cap = body.shape[1]
        slot = state[g, TAIL]
        for _ in range(state[g, LEN]):
            c = np.int64(body[g, slot])
            if mark[c] != base and _solid(grid[g, c], c, tail_cell):
                mark[c] = base
                n_occupied += 1
            slot += 1
            if slot == cap:
                slot = 0
    n_free = width * height - n_occupied
    # regions: mark[c] = base + region id (1..3) once seen; the head, marked base, is not free.
    # A region's fill stops as soon as it reaches the tail (the feature is then 1, its size
    # unused); a later fill that runs into such a partly filled region is that region.
    # the tail relative to the head (the tail is at most W*H cells from it: one division)
    tail_row = tail_cell // stride
    tx = tail_cell - tail_row * stride - 1
    ty = tail_row - 1
    tdx = tx - x
    tdy = ty - y
    size1 = 0
    size2 = 0
    size3 = 0
    reach1 = False
    reach2 = False
    reach3 = False
    n_regions = 0
    for i in range(3):
        blocked = b0 if i == 0 else (b1 if i == 1 else b2)
        if blocked:
            out[row, 27 + i] = 0.0
            continue
        start = h + (m0 if i == 0 else (m1 if i == 1 else m2))
        if mark[start] < base:
            n_regions += 1
            label = base + n_regions
            mark[start] = label
            reach = start == tail_cell
            size = 0
            top = 0
            if not reach:
                top = 1
                stack[0] = start
            # The depth-first fill pops the neighbour pushed last: push the moves towards the
            # tail last, the one along the axis of the larger distance very last, so that the
            # walk heads for the tail and usually stops long before the region is filled. The
            # features do not depend on the order (a fill that does not reach the tail fills
            # its whole region), only the number of cells visited does.
            if i == 0:  # left: (hy, -hx)
                ddx = tdx - hy
                ddy = tdy + hx
            elif i == 1:  # front: (hx, hy)
                ddx = tdx - hx
                ddy = tdy - hy
            else:  # right: (-hy, hx)
                ddx = tdx + hy
                ddy = tdy - hx
            sx_ = 1 if ddx >= 0 else -1
            sy_ = stride if ddy >= 0 else -stride
            if abs(ddx) >= abs(ddy):
                o0, o1, o2, o3 = -sx_, -sy_, sy_, sx_
            else:
                o0, o1, o2, o3 = -sy_, -sx_, sx_, sy_
            while top > 0:
                top -= 1
                c = stack[top]
                size += 1
                for nb in (c + o0, c + o1, c + o2, c + o3):
                    mk = mark[nb]
                    if mk < base:
                        v = grid[g, nb]
                        if not (v & WALL) and not _solid(v, nb, tail_cell):
                            mark[nb] = label
                            if nb == tail_cell:
                                reach = True
                                break
                            stack[top] = nb
                            top += 1
                    elif mk > base and mk != label:  # an earlier region of this observation: it found the tail
                        reach = True
                        break
                if reach:
                    break
            if n_regions == 1:
                size1 = size
                reach1 = reach
            elif n_regions == 2:
                size2 = size
                reach2 = reach
            else:
                size3 = size
                reach3 = reach
        region = mark[start] - base
        if (reach1 if region == 1 else (reach2 if region == 2 else reach3)):
            out[row, 27 + i] = 1.0  # the tail is reachable from there
        else:
            size = size1 if region == 1 else (size2 if region == 2 else size3)
            out[row, 27 + i] = size / n_free
    if apple < 0:
        out[row, 30] = 0.0
        out[row, 31] = 0.0
    else:
        ux, uy = _unit(float(state[g, AX] - x), float(state[g, AY] - y))
        out[row, 30] = rn_add(rn_mul(ux, hx), rn_mul(uy, hy))
        out[row, 31] = rn_add(rn_mul(ux, rx), rn_mul(uy, ry))
    ux, uy = _unit(float(tx - x), float(ty - y))
    out[row, 32] = rn_add(rn_mul(ux, hx), rn_mul(uy, hy))
    out[row, 33] = rn_add(rn_mul(ux, rx), rn_mul(uy, ry))
    out[row, 34] = state[g, LEN] / (width * height)


@njit(cache=True, inline="always")
def _observe_cycle(g, width, height, state, body, grid, out, row):
    """Write game g's `cycle` features to out[row] (:mod:`.observations`)."""
    stride = width + 2
    n = np.int64(width * height)
    h = state[g, HCELL]
    x = np.int64(state[g, HX])
    y = np.int64(state[g, HY])
    tail_cell = np.int64(body[g, state[g, TAIL]])
    tail = cycle_index(tail_cell % stride - 1, tail_cell // stride - 1, width, height)
    head = (cycle_index(x, y, width, height) - tail) % n
    if head == 0:
        head = n
    d = state[g, DIR]
    hx = _DX[d]
    hy = _DY[d]
    has_apple = state[g, ACELL] >= 0
    apple = cycle_index(np.int64(state[g, AX]), np.int64(state[g, AY]), width, height) if has_apple else 0
    for k in range(3):  # left (-r), front (h), right (r), with r = (-hy, hx)
        if k == 0:
            mx, my = hy, -hx
        elif k == 1:
            mx, my = hx, hy
        else:
            mx, my = -hy, hx
        cx = x + mx
        cy = y + my
        if cx < 0 or cx >= width or cy < 0 or cy >= height:
            out[row, k] = 0.0
            out[row, 3 + k] = 1.0
            continue
        c = h + mx + my * stride
        i = cycle_index(cx, cy, width, height)
        ahead = (i - tail) % n
        if ahead == 0:
            ahead = n
        out[row, k] = 1.0 if ahead > head and not _solid(grid[g, c], c, tail_cell) else 0.0
        out[row, 3 + k] = ((apple - i) % n) / n
    if not has_apple:
        out[row, 3] = 0.0
        out[row, 4] = 0.0
        out[row, 5] = 0.0
    out[row, 6] = state[g, LEN] / (width * height)


@njit(cache=True, inline="always")
def _segment(g, r, state, body, stack):
    """The cell of segment r, counted from the tail, of `lookahead`'s simulated body: the
    game's segments (tail first) and then the heads of the moves on `stack`."""
    length = np.int64(state[g, LEN])
    if r < length:
        slot = np.int64(state[g, TAIL]) + r
        cap = body.shape[1]
        if slot >= cap:
            slot -= cap
        return np.int64(body[g, slot])
    return np.int64(stack[4 * (r - length) + 1])


@njit(cache=True, inline="always")
def _take_back(g, level, removed, state, body, grid, stack):
    """Take back `lookahead`'s search move at `level` (the last one applied); returns the
    tail segments left after it and whether that move had eaten the apple."""
    top = 4 * level
    grid[g, np.int64(stack[top + 1])] -= 1
    if stack[top + 2]:
        return removed, True
    removed -= 1
    grid[g, _segment(g, removed, state, body, stack)] += 1
    return removed, False


@njit(cache=True)
def _reach(g, classic, width, first, state, body, grid, stack):
    """`lookahead`'s search for game g: 1 + the most further moves (LOOKAHEAD_DEPTH in all)
    the snake survives after the move `first` (0 left, 1 front, 2 right), 0 if that move is
    fatal. A depth-first search without recursion: the moves applied so far live on `stack`
    (4 entries a level: direction, head cell, ate, the next action to try) and in `grid`,
    which is restored before returning."""
    stride = width + 2
    depth = 0  # moves applied
    best = 0
    removed = 0  # tail segments left in the simulation
    eaten = False
    apple = np.int64(state[g, ACELL])
    d = (state[g, DIR] + first + 3) & 3  # the move to try next; -1: none
    while True:
        if d >= 0:
            delta = 1 if d == 0 else (stride if d == 1 else (-1 if d == 2 else -stride))
            prev = np.int64(state[g, HCELL]) if depth == 0 else np.int64(stack[4 * (depth - 1) + 1])
            new = prev + delta
            v = grid[g, new]
            ok = (v & WALL) == 0
            eats = False
            t = np.int64(0)
            if ok:
                eats = not eaten and new == apple
                t = _segment(g, removed, state, body, stack)
                if classic and v != 0 and (eats or new != t):
                    ok = False
            if ok:
                grid[g, new] += 1
                if not eats:
                    grid[g, t] -= 1
                if not classic:
                    a = grid[g, new + delta]
                    if a != 0 and (a & WALL) == 0:
                        ok = False
                        grid[g, new] -= 1
                        if not eats:
                            grid[g, t] += 1
            if ok:
                if eats:
                    eaten = True
                else:
                    removed += 1
                base = 4 * depth
                stack[base] = d
                stack[base + 1] = new
                stack[base + 2] = 1 if eats else 0
                stack[base + 3] = 0
                depth += 1
                if depth > best:
                    best = depth
                if best == LOOKAHEAD_DEPTH:
                    break
            d = -1
            if depth == 0:
                break  # the first move is fatal
        top = 4 * (depth - 1)
        tried = stack[top + 3]
        if tried < 3:  # front, left, right from the head at this depth
            stack[top + 3] = tried + 1
            d = (np.int64(stack[top]) + (1 if tried == 0 else (0 if tried == 1 else 2)) + 3) & 3
            continue
        # every move from here tried: take the last one back
        depth -= 1
        removed, ate = _take_back(g, depth, removed, state, body, grid, stack)
        if ate:
            eaten = False
        if depth == 0:
            break
    while depth > 0:  # take back the moves still applied
        depth -= 1
        removed, _ = _take_back(g, depth, removed, state, body, grid, stack)
    return best


@njit(cache=True, inline="always")
def _observe_lookahead(g, classic, width, state, body, grid, out, row, stack):
    """Write game g's `lookahead` features to out[row] (:mod:`.observations`)."""
    for k in range(3):
        out[row, k] = _reach(g, classic, width, k, state, body, grid, stack) / LOOKAHEAD_DEPTH
    if state[g, ACELL] < 0:
        out[row, 3] = 0.0
        out[row, 4] = 0.0
    else:
        d = state[g, DIR]
        hx = _DX[d]
        hy = _DY[d]
        ux, uy = _unit(float(state[g, AX] - state[g, HX]), float(state[g, AY] - state[g, HY]))
        out[row, 3] = rn_add(rn_mul(ux, hx), rn_mul(uy, hy))
        out[row, 4] = rn_add(rn_mul(ux, -hy), rn_mul(uy, hx))


@njit(cache=True)
def _observe_range(kind, games, lo, hi, classic, width, height, state, body, grid, out, mark, stack, base):
    """Observe the live games among games[lo:hi] into out[lo:hi]; returns (any live, base)."""
    stride = width + 2
    any_alive = False
    for j in range(lo, hi):
        g = games[j]
        if state[g, DONE]:
            continue
        any_alive = True
        if kind == 0:  # blog7
            h = state[g, HCELL]
            d = state[g, DIR]
            hx = _DX[d]
            hy = _DY[d]
            # left (hy, -hx), front (hx, hy), right (-hy, hx): wall or any body cell
            out[j, 0] = 1.0 if grid[g, h + hy - hx * stride] != 0 else 0.0
            out[j, 1] = 1.0 if grid[g, h + hx + hy * stride] != 0 else 0.0
            out[j, 2] = 1.0 if grid[g, h - hy + hx * stride] != 0 else 0.0
            if state[g, ACELL] < 0:
                ux, uy = 0.0, 0.0
            else:
                ux, uy = _unit(float(state[g, AX] - state[g, HX]), float(state[g, AY] - state[g, HY]))
            out[j, 3] = ux
            out[j, 4] = uy
            out[j, 5] = hx
            out[j, 6] = hy
        elif kind == 1:
            base += 4
            _observe_vision(g, classic, width, height, state, body, grid, out, j, mark, stack, base)
        elif kind == 2:
            _observe_cycle(g, width, height, state, body, grid, out, j)
        else:
            _observe_lookahead(g, classic, width, state, body, grid, out, j, stack)
    return any_alive, base


@njit(cache=True)
def _scratch(kind, n_padded):
    n = n_padded if kind == 1 else (4 * LOOKAHEAD_DEPTH if kind == 3 else 1)  # vision's fill, lookahead's moves
    return np.zeros(n, dtype=np.int64), np.empty(n, dtype=np.int64)


@njit(cache=True)
def _observe_batch(kind, games, classic, width, height, state, body, grid, out):
    mark, stack = _scratch(kind, grid.shape[1])
    _observe_range(kind, games, 0, games.shape[0], classic, width, height, state, body, grid, out, mark, stack, 0)


@njit(cache=True)
def _step_observe_batch(games, actions, group, kind, out, alive,
                        classic, width, height, max_steps, starve, cap, state, body, grid, rng):
    """Step games[j] with actions[j] and observe each live one into out[j]; games come in
    consecutive groups of `group` and alive[i] says whether group i has a live game."""
    mark, stack = _scratch(kind, grid.shape[1])
    base = 0
    for i in range(games.shape[0] // group):
        lo = i * group
        hi = lo + group
        _step_range(games, actions, lo, hi, classic, width, height, max_steps, starve, cap, state, body, grid, rng)
        alive[i], base = _observe_range(kind, games, lo, hi, classic, width, height, state, body, grid,
                                        out, mark, stack, base)


@njit(cache=True)
def _heuristic_range(games, lo, hi, width, state, grid, out):
    """The blog heuristic's action for games[lo:hi] into out[lo:hi]."""
    stride = width + 2
    for j in range(lo, hi):
        g = games[j]
        h = state[g, HCELL]
        d = state[g, DIR]
        dx = _DX[d]
        dy = _DY[d]
        # off the board or a body cell other than the head (the tail counts)
        lb = grid[g, h + dy - dx * stride] != 0
        fb = grid[g, h + dx + dy * stride] != 0
        rb = grid[g, h - dy + dx * stride] != 0
        out[j] = heuristic_decision(lb, fb, rb, state[g, ACELL] >= 0,
                                    float(state[g, AX] - state[g, HX]), float(state[g, AY] - state[g, HY]),
                                    float(dx), float(dy))


@njit(cache=True)
def _play_heuristic(classic, width, height, max_steps, starve, cap, state, body, grid, rng):
    """Play every game to its end with the heuristic policy."""
    one = np.zeros(1, dtype=np.int64)
    action = np.zeros(1, dtype=np.int64)
    for g in range(state.shape[0]):
        one[0] = g
        while not state[g, DONE]:
            _heuristic_range(one, 0, 1, width, state, grid, action)
            _step_range(one, action, 0, 1, classic, width, height, max_steps, starve, cap, state, body, grid, rng)


# --------------------------------------------------------------------------------------


class BatchSnake:
    """``len(seeds)`` snake games under ``rules``, stepped together.

    Game i is the reference ``SnakeGame(rules, seeds[i])``: give both the same actions and
    they stay identical. Per-game arrays: ``done``, ``won`` (bool copies), ``score``,
    ``steps``, ``apples``, ``length``, ``death`` (int32 views into the state; death codes
    index :data:`DEATH_NAMES`).
    """

    def __init__(self, rules: Rules, seeds):
        self.rules = rules
        seeds = as_seeds(seeds)
        b = seeds.shape[0]
        self.n_games = b
        w, h = rules.width, rules.height
        self.stride = w + 2
        self.cap = rules.n_cells + 1 if rules.classic else rules.start_length + rules.max_steps + 1
        self.state = np.zeros((b, N_COLUMNS), dtype=np.int32)
        self.body = np.zeros((b, self.cap), dtype=np.uint16)
        self.grid = np.zeros((b, (w + 2) * (h + 2)), dtype=np.uint16)
        self.rng = seeds.copy()
        start = np.array([self.cell(x, y) for x, y in rules.start_body], dtype=np.int64)
        _reset(rules.classic, w, h, start, np.array(rules.start_body[0], dtype=np.int64),
               DIRECTIONS.index(rules.start_heading), rules.score_offset,
               self.state, self.body, self.grid, self.rng)

    def cell(self, x: int, y: int) -> int:
        """The padded-grid index of board cell (x, y)."""
        return (y + 1) * self.stride + x + 1

    # -- per-game arrays ---------------------------------------------------------------

    @property
    def done(self) -> np.ndarray:
        return self.state[:, DONE] != 0

    @property
    def won(self) -> np.ndarray:
        return self.state[:, DEATH] == _WON

    @property
    def score(self) -> np.ndarray:
        return self.state[:, SCORE]

    @property
    def steps(self) -> np.ndarray:
        return self.state[:, STEPS]

    @property
    def apples(self) -> np.ndarray:
        return self.state[:, APPLES]

    @property
    def length(self) -> np.ndarray:
        return self.state[:, LEN]

    @property
    def death(self) -> np.ndarray:
        return self.state[:, DEATH]

    @property
    def head_x(self) -> np.ndarray:
        return self.state[:, HX]

    @property
    def head_y(self) -> np.ndarray:
        return self.state[:, HY]

    @property
    def heading_x(self) -> np.ndarray:
        return _DX[self.state[:, DIR]]

    @property
    def heading_y(self) -> np.ndarray:
        return _DY[self.state[:, DIR]]

    @property
    def all_done(self) -> bool:
        return bool(self.state[:, DONE].all())

    # -- stepping ----------------------------------------------------------------------

    def _rule_args(self) -> tuple:
        r = self.rules
        return (r.classic, r.width, r.height, r.max_steps or 0, r.starvation_steps or 0, self.cap)

    def _games(self, games) -> np.ndarray:
        if games is None:
            return np.arange(self.n_games, dtype=np.int64)
        games = np.asarray(games, dtype=np.int64).reshape(-1)
        if games.size and (games.min() < 0 or games.max() >= self.n_games):
            raise IndexError(f"game index out of range 0..{self.n_games - 1}")
        return games

    @staticmethod
    def check_actions(actions, n: int) -> np.ndarray:
        """``actions`` as an (n,) int64 array of 0/1/2, or ``ValueError``."""
        actions = np.asarray(actions).reshape(-1)
        if actions.shape[0] != n:
            raise ValueError(f"expected {n} actions, got {actions.shape[0]}")
        if actions.dtype.kind not in "iu":
            raise ValueError(f"actions must be integers 0, 1, 2, got dtype {actions.dtype}")
        if n and (actions.min() < 0 or actions.max() > 2):
            raise ValueError("a snake action is 0 (left), 1 (straight) or 2 (right)")
        return actions.astype(np.int64, copy=False)

    def step(self, actions, games=None) -> None:
        """Play ``actions[j]`` in game ``games[j]`` (default: all games, in order).

        Finished games ignore their action.
        """
        games = self._games(games)
        actions = self.check_actions(actions, games.shape[0])
        _step_range(games, actions, 0, games.shape[0], *self._rule_args(), self.state, self.body, self.grid, self.rng)

    def step_observe(self, games: np.ndarray, actions: np.ndarray, observation: str,
                     out: np.ndarray, alive: np.ndarray, group: int = 1) -> None:
        """Fast path of the evaluators: step, then observe, in one compiled call.

        ``games`` (n,) int64 and ``actions`` (n,) int64 in 0..2 are trusted (no checks);
        each game still playing afterwards gets its next observation in ``out[j]`` (n,
        n_features) float32. The games come in ``n // group`` consecutive groups and
        ``alive[i]`` is set to whether group i has a game still playing.
        """
        _step_observe_batch(games, actions, group, OBSERVATION_IDS[observation], out, alive,
                            *self._rule_args(), self.state, self.body, self.grid, self.rng)

    def play_heuristic(self) -> None:
        """Play every unfinished game to its end with the blog's heuristic policy."""
        _play_heuristic(*self._rule_args(), self.state, self.body, self.grid, self.rng)

    # -- observing ---------------------------------------------------------------------

    def observe(self, observation: str, games=None, out: np.ndarray | None = None) -> np.ndarray:
        """Observation rows (len(games), n_features) float32 of ``games`` (default: all).

        Rows of finished games are left as they were (zeros in a fresh array).
        """
        check_observation(observation, self.rules.width, self.rules.height)
        games = self._games(games)
        if out is None:
            out = np.zeros((games.shape[0], OBSERVATIONS[observation]), dtype=np.float32)
        r = self.rules
        _observe_batch(OBSERVATION_IDS[observation], games, r.classic, r.width, r.height,
                       self.state, self.body, self.grid, out)
        return out

    def heuristic_actions(self, games=None) -> np.ndarray:
        """The blog heuristic's action (int64) for each game of ``games`` (default: all)."""
        games = self._games(games)
        out = np.empty(games.shape[0], dtype=np.int64)
        _heuristic_range(games, 0, games.shape[0], self.rules.width, self.state, self.grid, out)
        return out

    # -- one game's raw state ----------------------------------------------------------

    def set_game(self, i: int, body, apple, heading, *, apples: int = 0, steps: int = 0,
                 steps_since_apple: int = 0) -> None:
        """Overwrite game i with a live state (for tests and puzzles); its RNG is kept.

        ``body`` is a list of on-board cells, head first (overlaps allowed only under
        ``theailearner``); ``apple`` a cell or ``None``; ``heading`` a unit step. The score
        becomes ``apples`` (classic) or the body's length (theailearner), as the reference
        would count it.
        """
        r = self.rules
        body = [(int(x), int(y)) for x, y in body]
        if not 2 <= len(body) < self.cap:
            raise ValueError(f"a body has 2 .. {self.cap - 1} cells, got {len(body)}")
        if any(not (0 <= x < r.width and 0 <= y < r.height) for x, y in body):
            raise ValueError("every body cell must lie on the board")
        if r.classic and len(set(body)) != len(body):
            raise ValueError("a classic body cannot overlap itself")
        heading = (int(heading[0]), int(heading[1]))
        if heading not in DIRECTIONS:
            raise ValueError(f"the heading must be a unit step, got {heading}")
        w, h, s = r.width, r.height, self.stride
        grid = self.grid[i]
        grid[:] = 0
        grid[:s] = WALL
        grid[(h + 1) * s:] = WALL
        grid[s::s] = WALL
        grid[s + w + 1::s] = WALL
        n = len(body)
        for slot, (x, y) in enumerate(reversed(body)):
            self.body[i, slot] = self.cell(x, y)
            grid[self.cell(x, y)] += 1
        row = self.state[i]
        row[:] = 0
        row[HEAD], row[TAIL], row[LEN] = n - 1, 0, n
        row[DIR] = DIRECTIONS.index(heading)
        row[HCELL] = self.cell(*body[0])
        row[HX], row[HY] = body[0]
        if apple is None:
            row[ACELL], row[AX], row[AY] = -1, -1, -1
        else:
            row[ACELL] = self.cell(int(apple[0]), int(apple[1]))
            row[AX], row[AY] = int(apple[0]), int(apple[1])
        row[APPLES] = apples
        row[SCORE] = apples if r.classic else n
        row[STEPS] = steps
        row[SINCE] = steps_since_apple

    def _xy(self, cell: int) -> tuple[int, int]:
        return (cell % self.stride - 1, cell // self.stride - 1)

    def body_cells(self, i: int) -> list[tuple[int, int]]:
        """Game i's body, head first."""
        n, head = int(self.state[i, LEN]), int(self.state[i, HEAD])
        slots = (head - np.arange(n)) % self.cap
        return [self._xy(int(c)) for c in self.body[i, slots]]

    def apple(self, i: int) -> tuple[int, int] | None:
        """Game i's apple, ``None`` once it is won."""
        if self.state[i, ACELL] < 0:
            return None
        return (int(self.state[i, AX]), int(self.state[i, AY]))

    def heading(self, i: int) -> tuple[int, int]:
        return DIRECTIONS[int(self.state[i, DIR])]

    def death_name(self, i: int) -> str | None:
        return DEATH_NAMES[int(self.state[i, DEATH])]

    def snapshot(self, i: int) -> SnakeState:
        """Game i as the reference's :class:`SnakeState`."""
        return SnakeState(
            body=tuple(self.body_cells(i)),
            apple=self.apple(i),
            heading=self.heading(i),
            width=self.rules.width,
            height=self.rules.height,
            score=int(self.state[i, SCORE]),
            steps=int(self.state[i, STEPS]),
            done=bool(self.state[i, DONE]),
            won=int(self.state[i, DEATH]) == _WON,
            death=self.death_name(i),
        )
