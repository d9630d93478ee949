"""The fused snake engine: one compiled function plays whole games, network included.

:func:`play_mlp` plays every game of a population to its end inside one numba function:
the observation, the network's forward pass, the greedy action and the step, with no
Python between steps, the games spread over the cores (``prange`` over chunks of games;
every game is independent, so the result does not depend on the number of threads or on
how the games are chunked).

A thread plays LANES games of its chunk in lockstep, each lane with its own network; a lane
whose game ends takes the chunk's next game. The game logic is the batched engine's own
(:mod:`.engine`: the same compiled step and observation functions, inlined, called on the
live lanes), so a game given the same actions is the same game, move for move, as in
:class:`~.engine.BatchSnake` and in the reference.

On boards up to :data:`LINES_MAX` cells a side, each lane also keeps bit masks of its body
per row, column and diagonal, updated as the snake moves, and `vision` reads its eight rays'
first body cells from them (:func:`_observe_vision_lines`) instead of walking the board;
the features are the batched engine's bit for bit.

The forward pass runs over the lanes in float32 with a fixed order and no BLAS: for each
unit, ``sum_i x[i] * W[i, o]`` accumulated in input order, then the bias; the activations
use additions, multiplications and divisions only, never the C library's ``exp``/``tanh``
(whose last bit may differ between libraries and CPUs): tanh is :func:`tanh32`, the
float32 rational approximation Eigen and XLA use; sigmoid, elu and selu are computed in
float64 with :func:`exp64` (a Cody-Waite reduction and a degree-13 polynomial) and rounded
to float32. numba compiles without fast-math, so nothing is reassociated or fused: the
same weights and seeds give the same games on any x86-64 CPU and any thread count. (The
activations' products and sums are written with :func:`.arith.rn_mul` / :func:`.arith.rn_add`,
the plain operators here: the CUDA engine, :mod:`.cuda`, compiles the same source without
fused multiply-adds.)
The greedy action is the first index of the largest output (NumPy's ``argmax``: a NaN
wins); with a ``softmax`` output the largest logit is taken (softmax keeps the order).

What it cannot run (a hidden ``softmax`` layer) raises :class:`FusedUnsupported`, a
``ValueError`` naming the field.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from evonet.nn import _LEAKY_SLOPE, _SELU_ALPHA, _SELU_SCALE

from . import engine as _e
from .arith import rn_add, rn_mul
from .observations import OBSERVATION_IDS
from .rules import Rules

#: activation name -> code of the compiled forward pass
ACT_CODES: dict[str, int] = {"linear": 0, "relu": 1, "tanh": 2, "sigmoid": 3, "elu": 4, "selu": 5,
                             "leaky_relu": 6, "softmax": 7}


# exp: x = k ln2 + r, |r| <= ln2 / 2 (Cody-Waite: ln2 split so k * LN2_HI is exact)
_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: 2^k for k in -160..160, exact (ldexp)
_POW2 = np.ldexp(np.ones(321), np.arange(-160, 161))
#: 1/n! for the exp polynomial, n = 0..13 (error below 1e-17 on |r| <= 0.35)
_INV_FACT = np.array([1.0 / math.factorial(n) for n in range(14)])


# The engine's step and observation, inlined into the game loop: a call of a compiled
# function with array arguments costs reference-count updates (atomics) every step.
_step = njit(inline="always")(_e._step_range.py_func)
_observe = njit(inline="always")(_e._observe_range.py_func)
_reset_game = njit(inline="always")(_e._reset_game.py_func)
_ray = _e._ray
_ray_features = _e._ray_features
_vision_rest = _e._vision_rest


# ---------------------------------------------------------------------------------------
# `vision`'s rays from bit masks of the body (the fused engine on boards up to LINES_MAX)
#
# Each lane keeps, beside its grid, one uint64 bit mask of the body's cells per board line:
# row y (bit x), column x (bit y), diagonal x - y (bit x) and anti-diagonal x + y (bit x),
# updated as the head moves on and the tail leaves its cell. A ray's first body cell is then
# the lowest (or highest) set bit beyond the head on its line, one instruction, where the
# batched engine walks the board cell by cell; the features are the same bits.

#: boards up to this many columns and rows keep line masks (a shift by the head's x + 1 stays
#: under 64); larger ones walk the rays as the batched engine does
LINES_MAX = 63


def _zero_bits(op: str):
    """An intrinsic counting the zero bits of a uint64 with LLVM's ``op`` (64 for 0)."""

    @intrinsic
    def count(typingctx, m):
        if m != types.uint64:
            return None

        def codegen(context, builder, signature, args):
            return getattr(builder, op)(args[0], ir.Constant(ir.IntType(1), 0))

        return types.uint64(types.uint64), codegen

    return count


_ctz = _zero_bits("cttz")  # trailing zero bits
_clz = _zero_bits("ctlz")  # leading zero bits


@njit(cache=True, inline="always")
def _lines_of(x, y, width, height):
    """The columns of cell (x, y)'s four lines in a lane's masks: its row (H of them), its
    column (W), its diagonal x - y and its anti-diagonal x + y (W + H - 1 each)."""
    col = height + x
    diag = height + width + x - y + height - 1
    return y, col, diag, height + width + width + height - 1 + x + y


@njit(cache=True, inline="always")
def _line_bits(lines, k, x, y, width, height, on):
    """Set (on) or clear cell (x, y)'s bit in lane k's four lines."""
    bx = np.uint64(1) << np.uint64(x)
    by = np.uint64(1) << np.uint64(y)
    row, col, diag, anti = _lines_of(x, y, width, height)
    if on:
        lines[k, row] |= bx
        lines[k, col] |= by
        lines[k, diag] |= bx
        lines[k, anti] |= bx
    else:
        lines[k, row] &= ~bx
        lines[k, col] &= ~by
        lines[k, diag] &= ~bx
        lines[k, anti] &= ~bx


@njit(cache=True, inline="always")
def _lines_build(k, state, body, lines, cell_x, cell_y, width, height):
    """Lane k's line masks from its body (a new game)."""
    for j in range(lines.shape[1]):
        lines[k, j] = 0
    cap = body.shape[1]
    slot = state[k, _e.TAIL]
    for _ in range(state[k, _e.LEN]):
        c = body[k, slot]
        _line_bits(lines, k, cell_x[c], cell_y[c], width, height, True)
        slot += 1
        if slot == cap:
            slot = 0


@njit(cache=True, inline="always")
def _lines_step(k, old_tail, state, grid, lines, cell_x, cell_y, width, height):
    """Lane k's line masks after a step: the head's new cell is set, the tail's old cell
    cleared once no segment is left on it (under theailearner segments may overlap)."""
    _line_bits(lines, k, np.int64(state[k, _e.HX]), np.int64(state[k, _e.HY]), width, height, True)
    if (grid[k, old_tail] & _e._COUNT) == 0:
        _line_bits(lines, k, cell_x[old_tail], cell_y[old_tail], width, height, False)


@njit(cache=True)
def _line_tables(rows, use, width, height):
    """``(lines, cell_x, cell_y)``: ``rows`` rows of line masks (one column where ``use`` is
    false) and each padded cell's board coordinates."""
    stride = width + 2
    padded = stride * (height + 2)
    lines = np.zeros((rows, _lines_of(width - 1, height - 1, width, height)[3] + 1 if use else 1), dtype=np.uint64)
    cell_x = np.empty(padded, dtype=np.int64)
    cell_y = np.empty(padded, dtype=np.int64)
    for c in range(padded):
        cell_x[c] = c % stride - 1
        cell_y[c] = c // stride - 1
    return lines, cell_x, cell_y


@njit(cache=True, inline="always")
def _observe_vision_lines(g, classic, width, height, state, body, grid, out, row, mark, stack, base,
                          lines, cell_x, cell_y):
    """:func:`.engine._observe_vision` of lane g, the rays read from its line masks."""
    x, y, d, tail_cell = _e._head(g, state, body)
    # the four lines through the head; the tail's cell counts as free (the tail moves on
    # first) unless another segment lies there too
    i_row, i_col, i_diag, i_anti = _lines_of(x, y, width, height)
    rmask = lines[g, i_row]
    cmask = lines[g, i_col]
    dmask = lines[g, i_diag]
    amask = lines[g, i_anti]
    if (grid[g, tail_cell] & _e._COUNT) == 1:
        tx = np.int64(cell_x[tail_cell])
        ty = np.int64(cell_y[tail_cell])
        bx = ~(np.uint64(1) << np.uint64(tx))
        if ty == y:
            rmask &= bx
        if tx == x:
            cmask &= ~(np.uint64(1) << np.uint64(ty))
        if tx - ty == x - y:
            dmask &= bx
        if tx + ty == x + y:
            amask &= bx
    has_apple = state[g, _e.ACELL] >= 0
    adx = np.int64(state[g, _e.AX]) - x
    ady = np.int64(state[g, _e.AY]) - y
    for k in range(8):
        sx, sy, dist = _ray(k, _e._DX[d], _e._DY[d], x, y, width, height)
        # the ray's line and the coordinate along it that the step increases (or decreases);
        # selects, not branches: the rays' directions change from one ray to the next
        m = rmask if sy == 0 else (cmask if sx == 0 else (dmask if sx == sy else amask))
        pos = y if sx == 0 else x
        up = (sy > 0) if sx == 0 else (sx > 0)
        above = m >> np.uint64(pos + 1)
        below = m & ((np.uint64(1) << np.uint64(pos)) - np.uint64(1))
        t_up = np.int64(_ctz(above)) + 1  # 65: none
        t_down = pos - 63 + np.int64(_clz(below))  # pos + 1: none
        t = t_up if up else t_down
        t = t if (above != 0 if up else below != 0) else 0
        _ray_features(out, row, k, sx, sy, dist, t, has_apple, adx, ady)
    _vision_rest(g, classic, width, height, state, body, grid, out, row, mark, stack, base)


@njit(cache=True)
def _observe_lines_batch(games, classic, width, height, state, body, grid, out):
    """`vision` of games[j] into out[j] through line masks built from each body."""
    lines, cell_x, cell_y = _line_tables(state.shape[0], True, width, height)
    mark, stack = _e._scratch(1, grid.shape[1])
    base = 0
    for j in range(games.shape[0]):
        g = games[j]
        if state[g, _e.DONE]:
            continue
        _lines_build(g, state, body, lines, cell_x, cell_y, width, height)
        base += 4
        _observe_vision_lines(g, classic, width, height, state, body, grid, out, j, mark, stack, base,
                              lines, cell_x, cell_y)


def observe_vision_lines(engine, games=None) -> np.ndarray:
    """The `vision` rows of ``engine``'s games (a :class:`~.engine.BatchSnake`; default: all;
    finished games' rows stay zero) as the fused engine computes them, the rays from bit masks
    of each body (boards up to :data:`LINES_MAX`): equal to ``engine.observe("vision", games)``
    bit for bit."""
    r = engine.rules
    if r.width > LINES_MAX or r.height > LINES_MAX:
        raise ValueError(f"board: line masks cover boards up to {LINES_MAX}x{LINES_MAX}, got {r.width}x{r.height}")
    games = np.arange(engine.n_games) if games is None else np.asarray(games, dtype=np.int64)
    out = np.zeros((games.shape[0], _e.OBSERVATIONS["vision"]), dtype=np.float32)
    _observe_lines_batch(games, r.classic, r.width, r.height, engine.state, engine.body, engine.grid, out)
    return out


class FusedUnsupported(ValueError):
    """A network the fused engine cannot run (the message names the field)."""


@njit(cache=True)
def exp64(x):
    """e**x in float64 from +, -, *, / only (the same bits on every CPU); x clipped to
    [-100, 100], far beyond what a float32 activation can tell apart."""
    if x != x:
        return x
    if x > 100.0:
        x = 100.0
    elif x < -100.0:
        x = -100.0
    k = math.floor(rn_add(rn_mul(x, _INV_LN2), 0.5))
    r = rn_add(rn_add(x, -rn_mul(k, _LN2_HI)), -rn_mul(k, _LN2_LO))
    p = _INV_FACT[13]
    for n in range(12, -1, -1):
        p = rn_add(rn_mul(p, r), _INV_FACT[n])
    return rn_mul(p, _POW2[int(k) + 160])


# tanh in float32: the rational approximation of Eigen and XLA (odd degree 13 / even 6 on
# [-7.9053, 7.9053], 1 beyond; a few float32 ulps from the exact value)
_T_CLAMP = np.float32(7.90531110763549805)
_T_SMALL = np.float32(0.0004)
_A1, _A3, _A5, _A7 = (np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04),
                      np.float32(1.48572235717979e-05), np.float32(5.12229709037114e-08))
_A9, _A11, _A13 = np.float32(-8.60467152213735e-11), np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = (np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03),
                      np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06))


@njit(cache=True, error_model="numpy")
def tanh32(v):
    """tanh of float32 ``v`` from float32 +, *, / only (the same bits on every CPU)."""
    x = v
    if x > _T_CLAMP:
        x = _T_CLAMP
    elif x < -_T_CLAMP:
        x = -_T_CLAMP
    x2 = rn_mul(x, x)
    # num = x * (A1 + x2 * (A3 + x2 * (A5 + x2 * (A7 + x2 * (A9 + x2 * (A11 + x2 * A13)))))),
    # den = B0 + x2 * (B2 + x2 * (B4 + x2 * B6)), inside out
    p = rn_add(_A11, rn_mul(x2, _A13))
    p = rn_add(_A9, rn_mul(x2, p))
    p = rn_add(_A7, rn_mul(x2, p))
    p = rn_add(_A5, rn_mul(x2, p))
    p = rn_add(_A3, rn_mul(x2, p))
    p = rn_add(_A1, rn_mul(x2, p))
    num = rn_mul(x, p)
    q = rn_add(_B4, rn_mul(x2, _B6))
    q = rn_add(_B2, rn_mul(x2, q))
    den = rn_add(_B0, rn_mul(x2, q))
    t = num / den
    return v if -_T_SMALL < v < _T_SMALL else t


@njit(cache=True)
def activate(code, v):
    """Activation ``code`` of float32 ``v`` (tanh: :func:`tanh32`; the exp-based ones in
    float64 with :func:`exp64`), as float32."""
    if code == 0:
        return v
    if code == 1:
        return v if v > 0 else np.float32(0.0)
    if code == 2:
        return tanh32(v)
    x = np.float64(v)
    # 1 / (1 + e^-x); e^x - 1; selu: S x, (S A) (e^x - 1); leaky: slope x (a - 1 is a + -1)
    if code == 3:
        return np.float32(1.0 / rn_add(1.0, exp64(-x)))
    if code == 4:
        return v if x > 0 else np.float32(rn_add(exp64(x), -1.0))
    if code == 5:
        if x > 0:
            return np.float32(rn_mul(_SELU_SCALE, x))
        return np.float32(rn_mul(rn_mul(_SELU_SCALE, _SELU_ALPHA), rn_add(exp64(x), -1.0)))
    if code == 6:
        return v if x > 0 else np.float32(rn_mul(_LEAKY_SLOPE, x))
    return v  # 7, softmax: only as the output, where the order of the logits decides


#: games one thread plays in lockstep, each with its own network: the forward pass runs
#: over them in SIMD lanes (a game's arithmetic does not depend on its lane or the lane count)
LANES = 64


@njit(cache=True, error_model="numpy", inline="always")
def _forward_lanes(n, sizes, acts, wl, xt, h0, h1):
    """The outputs of the lanes (all LANES are computed, a trip count known to the compiler,
    which then uses SIMD; lanes n.. hold no game and are ignored): lane k's network is ``wl[:, k]`` (evonet.nn layout: per
    layer the (n_in, n_out) kernel in C order, then the bias), its observation ``xt[:, k]``.
    Returns the last layer's rows (n_out, LANES) (h0 or h1).

    Unit o in lane k: ``((x[0] W[0, o] + x[1] W[1, o]) + ...) + b[o]`` in float32, then the
    activation: a fixed order, no BLAS, no fused multiply-add."""
    src = xt
    n_src = sizes[0]
    pos = 0
    for layer in range(sizes.shape[0] - 1):
        n_out = sizes[layer + 1]
        dst = h0 if layer % 2 == 0 else h1
        for o in range(n_out):
            d = dst[o]
            for k in range(LANES):
                d[k] = 0.0
        for i in range(n_src):
            x = src[i]
            for o in range(n_out):
                d = dst[o]
                w = wl[pos + i * n_out + o]
                for k in range(LANES):
                    d[k] += x[k] * w[k]
        bias = pos + n_src * n_out
        code = acts[layer]
        for o in range(n_out):
            d = dst[o]
            b = wl[bias + o]
            if code == 2:
                for k in range(LANES):
                    d[k] = tanh32(d[k] + b[k])
            else:
                for k in range(LANES):
                    d[k] = activate(code, d[k] + b[k])
        pos = bias + n_out
        src = dst
        n_src = n_out
    return src


@njit(cache=True, inline="always")
def _argmax_lane(out, n_out, k):
    """The first index of the largest ``out[:, k]`` (NumPy's argmax: a NaN wins)."""
    top = out[0, k]
    if top != top:
        return 0
    best = 0
    for o in range(1, n_out):
        v = out[o, k]
        if v != v:
            return o
        if v > top:
            top = v
            best = o
    return best


@njit(cache=True, inline="always")
def _start(k, g, seeds, weights, games_per_net, wl, classic, width, height, start_cells, start_xy, start_dir,
           score_offset, state, body, grid, rng):
    """Lane k starts game g: its RNG, an empty board, the start position, its network."""
    rng[k] = seeds[g]
    for c in range(grid.shape[1]):
        grid[k, c] = 0
    _reset_game(k, classic, width, height, start_cells, start_xy, start_dir, score_offset, state, body, grid, rng)
    wp = weights[g // games_per_net]
    for j in range(wp.shape[0]):
        wl[j, k] = wp[j]


@njit(cache=True, inline="always")
def _move(a, b, game, wl, state, body, grid, rng, lines):
    """Lane a takes over lane b's game (lanes stay packed: the live ones are 0..n-1)."""
    game[a] = game[b]
    for c in range(lines.shape[1]):
        lines[a, c] = lines[b, c]
    for c in range(state.shape[1]):
        state[a, c] = state[b, c]
    for c in range(body.shape[1]):
        body[a, c] = body[b, c]
    for c in range(grid.shape[1]):
        grid[a, c] = grid[b, c]
    rng[a] = rng[b]
    for j in range(wl.shape[0]):
        wl[j, a] = wl[j, b]


@njit(cache=True)
def _play_chunk(lo, hi, order, weights, games_per_net, sizes, acts, kind, seeds, classic, width, height, max_steps,
                starve, cap, start_cells, start_xy, start_dir, score_offset, scores, steps, deaths):
    """Games order[lo:hi] (game g: network g // games_per_net, seed seeds[g]), LANES at a time:
    a lane whose game ends takes the next one; once none is left, the last live lane moves
    into it."""
    n_in = sizes[0]
    n_out = sizes[sizes.shape[0] - 1]
    padded = (width + 2) * (height + 2)
    state = np.zeros((LANES, _e.N_COLUMNS), dtype=np.int32)
    body = np.zeros((LANES, cap), dtype=np.uint16)
    grid = np.zeros((LANES, padded), dtype=np.uint16)
    rng = np.zeros(LANES, dtype=np.uint64)
    lanes = np.arange(LANES)
    actions = np.ones(LANES, dtype=np.int64)
    game = np.full(LANES, -1, dtype=np.int64)
    obs = np.zeros((LANES, n_in), dtype=np.float32)
    xt = np.zeros((n_in, LANES), dtype=np.float32)
    wl = np.zeros((weights.shape[1], LANES), dtype=np.float32)
    width_max = 1
    for s in sizes:
        width_max = max(width_max, s)
    h0 = np.zeros((width_max, LANES), dtype=np.float32)
    h1 = np.zeros((width_max, LANES), dtype=np.float32)
    mark, stack = _e._scratch(kind, padded)
    base = 0
    # `vision` reads its rays from line masks of the body on boards up to LINES_MAX
    use_lines = kind == 1 and width <= LINES_MAX and height <= LINES_MAX
    lines, cell_x, cell_y = _line_tables(LANES, use_lines, width, height)
    old_tail = np.zeros(LANES, dtype=np.int64)
    nxt = lo
    n = 0  # live lanes: 0..n-1
    while n < LANES and nxt < hi:
        g = order[nxt]
        nxt += 1
        _start(n, g, seeds, weights, games_per_net, wl, classic, width, height, start_cells, start_xy, start_dir,
               score_offset, state, body, grid, rng)
        if use_lines:
            _lines_build(n, state, body, lines, cell_x, cell_y, width, height)
        if state[n, _e.DONE]:  # over at its start (theailearner): recorded at once
            scores[g] = state[n, _e.SCORE]
            steps[g] = state[n, _e.STEPS]
            deaths[g] = state[n, _e.DEATH]
        else:
            game[n] = g
            n += 1
    while n > 0:
        if use_lines:
            for k in range(n):
                base += 4
                _observe_vision_lines(k, classic, width, height, state, body, grid, obs, k, mark, stack, base,
                                      lines, cell_x, cell_y)
                old_tail[k] = body[k, state[k, _e.TAIL]]
        else:
            _alive, base = _observe(kind, lanes, 0, n, classic, width, height, state, body, grid, obs, mark, stack,
                                    base)
        for i in range(n_in):
            for k in range(n):
                xt[i, k] = obs[k, i]
        out = _forward_lanes(n, sizes, acts, wl, xt, h0, h1)
        for k in range(n):
            actions[k] = _argmax_lane(out, n_out, k)
        _step(lanes, actions, 0, n, classic, width, height, max_steps, starve, cap, state, body, grid, rng)
        if use_lines:
            for k in range(n):
                if state[k, _e.DONE] == 0:
                    _lines_step(k, old_tail[k], state, grid, lines, cell_x, cell_y, width, height)
        k = 0
        while k < n:
            if state[k, _e.DONE] == 0:
                k += 1
                continue
            g = game[k]
            scores[g] = state[k, _e.SCORE]
            steps[g] = state[k, _e.STEPS]
            deaths[g] = state[k, _e.DEATH]
            started = False
            while nxt < hi:
                g = order[nxt]
                nxt += 1
                _start(k, g, seeds, weights, games_per_net, wl, classic, width, height, start_cells, start_xy,
                       start_dir, score_offset, state, body, grid, rng)
                if use_lines:
                    _lines_build(k, state, body, lines, cell_x, cell_y, width, height)
                if state[k, _e.DONE] == 0:
                    game[k] = g
                    started = True
                    break
                scores[g] = state[k, _e.SCORE]
                steps[g] = state[k, _e.STEPS]
                deaths[g] = state[k, _e.DEATH]
            if started:
                k += 1
                continue
            n -= 1
            if k < n:
                _move(k, n, game, wl, state, body, grid, rng, lines)  # look at lane k again: it holds lane n's game
            else:
                k += 1


@njit(parallel=True, cache=True, nogil=True)  # nogil: a checkpoint writer thread runs meanwhile
def _play_parallel(chunks, order, weights, games_per_net, sizes, acts, kind, seeds, classic, width, height,
                   max_steps, starve, cap, start_cells, start_xy, start_dir, score_offset, scores, steps, deaths):
    """Every chunk of games, order[first:end], on the threads; each game writes its own slots."""
    for c in prange(chunks.shape[0]):
        _play_chunk(chunks[c, 0], chunks[c, 1], order, weights, games_per_net, sizes, acts, kind, seeds, classic, width,
                    height, max_steps, starve, cap, start_cells, start_xy, start_dir, score_offset,
                    scores, steps, deaths)


#: chunks of games per thread: one keeps a thread's lanes full until its last games (a lane
#: whose game ends takes the next one at once); each chunk has the same share of every network
CHUNKS_PER_THREAD = 1


def game_chunks(n: int, threads: int, per_thread: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(chunks, order)``: games 0..n-1 dealt round-robin into ``per_thread`` x ``threads``
    chunks (at most n), chunk c being ``order[chunks[c, 0]:chunks[c, 1]]``. Dealt round-robin, a
    chunk holds every network's games in equal shares (network p's are p*G .. p*G+G-1), so
    a population whose networks play games of very different lengths keeps the threads
    equally busy."""
    k = max(1, min(n, threads * (CHUNKS_PER_THREAD if per_thread is None else per_thread)))
    order = np.concatenate([np.arange(c, n, k, dtype=np.int64) for c in range(k)])
    bounds = np.cumsum([0] + [len(range(c, n, k)) for c in range(k)])
    return np.stack([bounds[:-1], bounds[1:]], axis=1).astype(np.int64), order


def _tanh32_np(x: np.ndarray) -> np.ndarray:
    """:func:`tanh32` in NumPy float32 (the same operations in the same order: the same bits)."""
    c = np.clip(x, -_T_CLAMP, _T_CLAMP)
    x2 = c * c
    num = c * (_A1 + x2 * (_A3 + x2 * (_A5 + x2 * (_A7 + x2 * (_A9 + x2 * (_A11 + x2 * _A13))))))
    den = _B0 + x2 * (_B2 + x2 * (_B4 + x2 * _B6))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = num / den
    return np.where((x > -_T_SMALL) & (x < _T_SMALL), x, t).astype(np.float32)


def _exp64_np(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=np.float64), -100.0, 100.0)
    k = np.floor(x * _INV_LN2 + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = np.full_like(r, _INV_FACT[13])
    for n in range(12, -1, -1):
        p = p * r + _INV_FACT[n]
    return p * _POW2[np.nan_to_num(k).astype(np.int64) + 160]


def _activate_np(name: str, v: np.ndarray) -> np.ndarray:
    x = v.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "linear" or name == "softmax":
            return v
        if name == "relu":
            return np.where(v > 0, v, np.float32(0.0)).astype(np.float32)
        if name == "tanh":
            return _tanh32_np(v)
        if name == "sigmoid":
            return (1.0 / (1.0 + _exp64_np(-x))).astype(np.float32)
        if name == "elu":
            return np.where(x > 0, v, (_exp64_np(x) - 1.0).astype(np.float32)).astype(np.float32)
        if name == "selu":
            return np.where(x > 0, (_SELU_SCALE * x).astype(np.float32),
                            (_SELU_SCALE * _SELU_ALPHA * (_exp64_np(x) - 1.0)).astype(np.float32))
        if name == "leaky_relu":
            return np.where(x > 0, v, (_LEAKY_SLOPE * x).astype(np.float32)).astype(np.float32)
    raise ValueError(f"unknown activation {name!r}")


def forward_fixed(spec, weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The fused engine's forward pass in NumPy: network ``weights`` (n_params,) on inputs
    ``x`` (N, n_in), float32, the same bits as the compiled kernel (each unit's products
    summed in input order, then the bias; the same activations). A ``softmax`` output is
    returned as its logits (the greedy action is their argmax). For a single agent's moves
    and for tests; populations go through :func:`play_mlp`."""
    network_arrays(spec)
    h = np.asarray(x, dtype=np.float32)
    pos = 0
    for (n_in, n_out), act in zip(spec.layer_shapes, spec.activations()):
        kernel = np.asarray(weights[pos:pos + n_in * n_out], dtype=np.float32).reshape(n_in, n_out)
        pos += n_in * n_out
        bias = np.asarray(weights[pos:pos + n_out], dtype=np.float32)
        pos += n_out
        acc = np.zeros((h.shape[0], n_out), dtype=np.float32)
        for i in range(n_in):
            acc = acc + h[:, i:i + 1] * kernel[i]
        h = _activate_np(act, acc + bias)
    return h


def network_arrays(spec) -> tuple[np.ndarray, np.ndarray]:
    """``(sizes, activation codes)`` of an :class:`evonet.nn.MLPSpec` for the kernel, or
    :class:`FusedUnsupported` naming the field."""
    acts = spec.activations()
    if "softmax" in acts[:-1]:
        raise FusedUnsupported("network.activation: softmax is only an output activation in the fused engine")
    return np.asarray(spec.sizes, dtype=np.int64), np.asarray([ACT_CODES[a] for a in acts], dtype=np.int64)


def play_mlp(spec, weights: np.ndarray, rules: Rules, observation: str, seeds: np.ndarray,
             threads: int | None = None):
    """Individual p plays the games ``seeds[p, :]`` greedily with network ``weights[p]``,
    every game to its end in compiled code, over ``threads`` threads (default: numba's,
    every core). Returns :class:`evonet.problems.snake.evaluate.SnakeResults` with (P, G)
    arrays; the same for any ``threads``."""
    import numba

    from evonet.problems.snake.evaluate import SnakeResults, check_population

    weights, seeds = check_population(spec, weights, observation, seeds, rules)
    sizes, acts = network_arrays(spec)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
    from .rng import as_seeds

    n_nets, n_games = seeds.shape
    flat = as_seeds(seeds).reshape(-1)
    n = flat.shape[0]
    scores = np.zeros(n, dtype=np.int32)
    steps = np.zeros(n, dtype=np.int32)
    deaths = np.zeros(n, dtype=np.int32)
    if n:
        w, h = rules.width, rules.height
        stride = w + 2
        cap = rules.n_cells + 1 if rules.classic else rules.start_length + rules.max_steps + 1
        start = np.array([(y + 1) * stride + x + 1 for x, y in rules.start_body], dtype=np.int64)
        previous = numba.get_num_threads()
        use = min(previous, threads) if threads is not None else previous
        numba.set_num_threads(use)
        try:
            chunks, order = game_chunks(n, use)
            _play_parallel(chunks, order, weights, n_games, sizes, acts, OBSERVATION_IDS[observation],
                           flat, rules.classic, w, h, rules.max_steps or 0, rules.starvation_steps or 0, cap, start,
                           np.array(rules.start_body[0], dtype=np.int64), _e.DIRECTIONS.index(rules.start_heading),
                           rules.score_offset, scores, steps, deaths)
        finally:
            numba.set_num_threads(previous)
    shape = (n_nets, n_games)
    return SnakeResults(scores=scores.reshape(shape), steps=steps.reshape(shape),
                        won=(deaths == _e._WON).reshape(shape), deaths=deaths.reshape(shape),
                        env_steps=int(steps.sum(dtype=np.int64)))
