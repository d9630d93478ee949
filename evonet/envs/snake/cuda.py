"""The CUDA snake engine: the fused engine's games on an NVIDIA GPU, one thread per game.

:func:`play_mlp_cuda` takes the arguments of :func:`.fused.play_mlp` and returns the same
:class:`~evonet.problems.snake.evaluate.SnakeResults`, game for game: the same scores, steps
and causes of death. One numba CUDA kernel plays them: thread ``g`` plays game ``g``
(network ``g // G`` of the (P, G) seeds, seed ``seeds[g]``) from its start to its end (the
observation, the network's forward pass, the greedy action, the step), with no host work
between steps and no communication between threads.

One source. The kernel calls the batched engine's own compiled functions (:mod:`.engine`:
``_reset_game``, ``_observe_range``, ``_step_range``), which numba compiles for the CUDA
target as device functions, and the fused engine's ``activate`` (``tanh32``, ``exp64``) and
``_argmax_lane`` (:mod:`.fused`): the rules, the observation sets, the RNG (SplitMix64,
:mod:`.rng`) and the activations are the CPU engines' source, not a copy. Each thread works
on arrays of one row, its game being ``g = 0`` of them. Only the forward pass is this
module's own (:func:`_forward`: one game, not the CPU's SIMD lanes), in the CPU's order.

Layout. A game's state lives in per-thread arrays (``cuda.local.array``) whose sizes are
compile-time constants of a kernel built for one rule set, board, observation set and
network (once per process, then kept): the ``state`` row (16 int32), the body's ring
buffer, the padded grid, the observation, two activation rows and, for ``vision``, the
flood fill's ``mark`` (int32: its base restarts from 0 long before it could overflow, which
changes no feature) and ``stack`` (uint16 cells). CUDA interleaves local memory across the
threads (word i of consecutive threads is consecutive), so the threads of a warp reading
the same field of their games read one cache line: the game-major layout with the game
index fastest varying, without index arithmetic; and local memory is reserved for the
resident threads only, not for every game. Nothing is allocated in the kernel. The
population's weights stay in global memory, (P, n_params) float32; the games of one network
are consecutive threads, so the threads of a warp mostly read the same weight at once
(one broadcast, cached).

Bit-equality with the CPU. The game and the RNG are integer arithmetic. The observations'
few float64 quantities (unit vectors, ``1/d``, region fractions) are IEEE divisions and
square roots, correctly rounded on both (numba's CUDA target compiles without fast-math:
``prec-div=1``, ``prec-sqrt=1``, no flush to zero), of exact products and sums. The forward
pass is the fused engine's: for each unit ``((0 + x[0] W[0, o]) + x[1] W[1, o]) + ...`` in
input order in float32, then the bias, then the activation. What a GPU does differently is
fused multiply-add: NVVM contracts ``a * b + c`` into one ``fma.rn`` (one rounding instead of
two: other bits) by default, and numba's ``fastmath=False`` does not turn that off. So every
product and sum that meets another is written :func:`.arith.rn_mul` / :func:`.arith.rn_add`
(the forward pass, ``tanh32``, ``exp64``, the observations' unit vectors and dot products),
which this module implements on the CUDA target with libdevice's ``__nv_fmul_rn`` /
``__nv_fadd_rn`` (float32) and ``__nv_dmul_rn`` / ``__nv_dadd_rn`` (float64): NVVM emits them
as single ``mul.rn`` / ``add.rn`` instructions and never contracts them (nor does ptxas:
PTX fuses only a ``mul`` and an ``add`` without a rounding modifier); on the CPU they are
the plain operators (the CPU engine's machine code is unchanged). The same operations in the
same order, each rounded once: the same bits. ``tests/test_snake_cuda.py`` compiles the
kernel to PTX where libNVVM is installed and finds no floating-point multiply-add in it and
no float add or mul without ``.rn`` (where NVVM, given plain ``a * b + c``, emits
``fma.rn.f32``).

Two numba limits shaped the shared source: the CUDA target cannot compile the builtin
``min`` of two numbers (the engine compares instead), and numba's inlining of overloads
ignores their target (the CPU's ``rn_mul`` / ``rn_add`` are therefore not inlined at numba's
level; LLVM inlines them).

Tests. Under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``: the kernel's Python runs
on the CPU, thread by thread; the engine's functions it calls run compiled for the CPU) the
games equal :func:`.fused.play_mlp`'s for both rule sets, every observation set, every
activation and long games, on every CI run. The simulator's arithmetic is NumPy's, so it
checks the kernel's logic and the order of its operations, not the absence of FMA: that is
by construction, and checked on the PTX.

Requirements: an NVIDIA GPU, its driver and libNVVM (a CUDA toolkit) that numba finds;
:func:`cuda_status` says whether this process has them. The first call for a new rule set,
board, observation set or network compiles its kernel (about 15 to 25 s of one core here).
Per thread the kernel holds about ``2 cap + 2 (W+2)(H+2)`` bytes of local memory, plus
``6 (W+2)(H+2)`` with ``vision`` and the network's rows (from the PTX: 656 bytes for
blog7, 1,792 for vision on classic 10 x 10, 26,080 for vision on theailearner 50 x 50);
CUDA reserves it for every resident thread (up to 2048 per multiprocessor), which may rule
out the largest boards (a launch error).
"""

from __future__ import annotations

import functools
import warnings

import numba
import numpy as np
from numba import cuda

from . import engine as _e
from . import fused as _f
from .arith import rn_add, rn_mul, rn_types
from .observations import OBSERVATION_IDS
from .rules import Rules

#: numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1, read when numba was imported)
SIMULATOR: bool = bool(numba.config.ENABLE_CUDASIM)

#: threads per block of the kernel
THREADS_PER_BLOCK = 128

#: ``vision``'s flood-fill marks are int32: the base restarts from 0 past this
_MARK_LIMIT = 1 << 30


class CudaUnavailable(RuntimeError):
    """No CUDA GPU this process can use (the message says why, on one line)."""


@functools.lru_cache(maxsize=1)
def cuda_status() -> tuple[bool, str]:
    """``(usable, reason)``: whether numba can run CUDA kernels here (a GPU, its driver and
    libNVVM), or runs the simulator (``NUMBA_ENABLE_CUDASIM=1``: usable, reason
    ``"simulator"``); ``reason`` is one line."""
    if SIMULATOR:
        return True, "simulator"
    try:
        if not cuda.is_available():
            from numba.cuda.cudadrv import driver

            why = (getattr(driver.driver, "initialization_error", None) or "").strip()
            return False, (why.splitlines()[0] if why else "numba finds no CUDA GPU")
        from numba.cuda.cudadrv.nvvm import NVVM, LibDevice

        NVVM()
        LibDevice()
    except Exception as exc:  # noqa: BLE001 - any failure to set CUDA up means "not usable"
        text = " ".join(str(exc).split()) or type(exc).__name__
        return False, text[:200]
    return True, "gpu"


def gpu_available() -> bool:
    """A real CUDA GPU numba can use (never the simulator): what ``snake.device: auto`` asks."""
    usable, reason = cuda_status()
    return usable and reason != "simulator"


# -------------------------------------------------------------------------------- CUDA arithmetic

if not SIMULATOR:  # the simulator runs the Python functions themselves
    from numba import types
    from numba.cuda import libdevice

    try:  # NVIDIA's numba-cuda package: the CUDA target's own registry
        from numba.cuda.extending import overload as _overload_cuda
    except ImportError:  # numba's built-in CUDA target
        from numba.core.extending import overload as _overload

        _overload_cuda = functools.partial(_overload, target="cuda")

    def _both_f32(a, b):
        return a == types.float32 and b == types.float32

    @_overload_cuda(rn_mul)
    def _rn_mul_cuda(a, b):
        if not rn_types(a, b):
            return None
        if _both_f32(a, b):
            return lambda a, b: libdevice.fmul_rn(a, b)
        return lambda a, b: libdevice.dmul_rn(np.float64(a), np.float64(b))

    @_overload_cuda(rn_add)
    def _rn_add_cuda(a, b):
        if not rn_types(a, b):
            return None
        if _both_f32(a, b):
            return lambda a, b: libdevice.fadd_rn(a, b)
        return lambda a, b: libdevice.dadd_rn(np.float64(a), np.float64(b))


def _forward(weights, p, sizes, acts, x, h0, h1):
    """Network ``weights[p]`` (evonet.nn layout: per layer the (n_in, n_out) kernel in C
    order, then the bias) on the observation ``x[0, :]``; layer l writes row 0 of h0 (l
    even) or h1 (l odd), so the outputs end in h0 when the layer count is odd. Unit o:
    ``((0 + x[0] W[0, o]) + x[1] W[1, o]) + ...``, then ``+ b[o]``, then the activation:
    the fused engine's float32 operations in its order (:func:`.fused._forward_lanes`),
    each rounded once (:mod:`.arith`)."""
    src = x
    n_src = sizes[0]
    pos = 0
    for layer in range(len(sizes) - 1):
        n_out = sizes[layer + 1]
        dst = h0 if layer % 2 == 0 else h1
        bias = pos + n_src * n_out
        code = acts[layer]
        for o in range(n_out):
            acc = np.float32(0.0)
            for i in range(n_src):
                acc = rn_add(acc, rn_mul(src[0, i], weights[p, pos + i * n_out + o]))
            dst[0, o] = _f.activate(code, rn_add(acc, weights[p, bias + o]))
        pos = bias + n_out
        src = dst
        n_src = n_out


_forward_device = cuda.jit(device=True)(_forward)


def _make_kernel(kind: int, classic: bool, width: int, height: int, max_steps: int, starve: int, cap: int,
                 start_cells: tuple, start_xy: tuple, start_dir: int, score_offset: int, sizes: tuple,
                 acts: tuple):
    """``(kernel, python function)`` for one rule set, board, observation set and network;
    every size is a compile-time constant of the kernel."""
    n_cols = _e.N_COLUMNS
    padded = (width + 2) * (height + 2)
    scratch = padded if kind == 1 else (4 * _e.LOOKAHEAD_DEPTH if kind == 3 else 1)  # vision's fill, lookahead's moves
    n0 = len(start_cells)
    n_in = sizes[0]
    n_out = sizes[-1]
    width_max = max(sizes)
    out_in_h0 = (len(sizes) - 1) % 2 == 1  # the last layer's index is even
    done_col, score_col, steps_col, death_col = _e.DONE, _e.SCORE, _e.STEPS, _e.DEATH
    mark_limit = _MARK_LIMIT
    reset_game, observe, step = _e._reset_game, _e._observe_range, _e._step_range
    argmax, forward = _f._argmax_lane, _forward_device
    i32, i64, u16, u64, f32 = numba.int32, numba.int64, numba.uint16, numba.uint64, numba.float32

    def play(weights, games_per_net, seeds, scores, steps, deaths):
        g = cuda.grid(1)
        if g >= seeds.shape[0]:
            return
        state = cuda.local.array((1, n_cols), i32)
        body = cuda.local.array((1, cap), u16)
        grid = cuda.local.array((1, padded), u16)
        rng = cuda.local.array(1, u64)
        games = cuda.local.array(1, i64)
        actions = cuda.local.array(1, i64)
        obs = cuda.local.array((1, n_in), f32)
        h0 = cuda.local.array((1, width_max), f32)
        h1 = cuda.local.array((1, width_max), f32)
        mark = cuda.local.array(scratch, i32)
        stack = cuda.local.array(scratch, u16)  # cells: < MAX_PADDED_CELLS
        cells = cuda.local.array(n0, i64)
        xy = cuda.local.array(2, i64)
        for c in range(padded):
            grid[0, c] = 0
        for c in range(scratch):
            mark[c] = 0
        for i in range(n0):
            cells[i] = start_cells[i]
        xy[0] = start_xy[0]
        xy[1] = start_xy[1]
        games[0] = 0
        rng[0] = seeds[g]
        reset_game(0, classic, width, height, cells, xy, start_dir, score_offset, state, body, grid, rng)
        p = g // games_per_net
        base = 0
        while state[0, done_col] == 0:
            _alive, base = observe(kind, games, 0, 1, classic, width, height, state, body, grid, obs, mark, stack,
                                   base)
            if base > mark_limit:  # every cell unseen again: the features of the CPU's int64 marks
                for c in range(scratch):
                    mark[c] = 0
                base = 0
            forward(weights, p, sizes, acts, obs, h0, h1)
            actions[0] = argmax(h0.T if out_in_h0 else h1.T, n_out, 0)
            step(games, actions, 0, 1, classic, width, height, max_steps, starve, cap, state, body, grid, rng)
        scores[g] = state[0, score_col]
        steps[g] = state[0, steps_col]
        deaths[g] = state[0, death_col]

    return cuda.jit(play), play


@functools.lru_cache(maxsize=32)
def _kernel(*key):
    return _make_kernel(*key)


def kernel_key(spec, rules: Rules, observation: str) -> tuple:
    """The arguments of :func:`_make_kernel` for a network, rule set and observation set
    (:class:`.fused.FusedUnsupported` for a network the engine cannot run)."""
    sizes, acts = _f.network_arrays(spec)
    stride = rules.width + 2
    cap = rules.n_cells + 1 if rules.classic else rules.start_length + rules.max_steps + 1
    cells = tuple((y + 1) * stride + x + 1 for x, y in rules.start_body)
    return (OBSERVATION_IDS[observation], rules.classic, rules.width, rules.height, rules.max_steps or 0,
            rules.starvation_steps or 0, cap, cells, tuple(rules.start_body[0]),
            _e.DIRECTIONS.index(rules.start_heading), rules.score_offset, tuple(int(s) for s in sizes),
            tuple(int(a) for a in acts))


def compile_ptx(spec, rules: Rules, observation: str, cc: tuple[int, int] = (9, 0)) -> str:
    """The kernel for this network, rule set and observation set as PTX for compute
    capability ``cc``, compiled without a GPU (needs libNVVM; numba's device functions ask
    for the current device's compute capability, which is ``cc`` here)."""
    if SIMULATOR:
        raise CudaUnavailable("compile_ptx: not under the CUDA simulator")
    from numba.cuda import dispatcher

    class _Device:
        compute_capability = tuple(cc)

    key = kernel_key(spec, rules, observation)
    _, py_kernel = _make_kernel(*key)
    w = numba.types.Array(numba.float32, 2, "C")
    r = numba.types.Array(numba.int32, 1, "C")
    sig = (w, numba.int64, numba.types.Array(numba.uint64, 1, "C"), r, r, r)
    current = getattr(dispatcher, "get_current_device", None)
    if current is None:  # a numba whose device functions do not ask
        return cuda.compile_ptx(py_kernel, sig, cc=tuple(cc))[0]
    dispatcher.get_current_device = _Device
    try:
        ptx, _ = cuda.compile_ptx(py_kernel, sig, cc=tuple(cc))
    finally:
        dispatcher.get_current_device = current
    return ptx


def play_mlp_cuda(spec, weights: np.ndarray, rules: Rules, observation: str, seeds: np.ndarray,
                  threads: int | None = None, *, threads_per_block: int = THREADS_PER_BLOCK):
    """:func:`.fused.play_mlp` on the GPU: individual p plays the games ``seeds[p, :]``
    greedily with network ``weights[p]``, one CUDA thread per game. Returns
    :class:`evonet.problems.snake.evaluate.SnakeResults` with (P, G) arrays, equal game for
    game to ``play_mlp``'s. ``threads`` (the CPU engine's) is checked and not used.
    :class:`CudaUnavailable` without a usable GPU."""
    from evonet.problems.snake.evaluate import SnakeResults, check_population

    from .rng import as_seeds

    weights, seeds = check_population(spec, weights, observation, seeds, rules)
    key = kernel_key(spec, rules, observation)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
    tpb = threads_per_block
    if isinstance(tpb, bool) or not isinstance(tpb, int) or not 1 <= tpb <= 1024:
        raise ValueError(f"threads_per_block: expected an integer in 1..1024, got {threads_per_block!r}")
    n_nets, n_games = seeds.shape
    flat = np.ascontiguousarray(as_seeds(seeds).reshape(-1))
    n = flat.shape[0]
    scores = np.zeros(n, dtype=np.int32)
    steps = np.zeros(n, dtype=np.int32)
    deaths = np.zeros(n, dtype=np.int32)
    if n:
        usable, reason = cuda_status()
        if not usable:
            raise CudaUnavailable(f"the CUDA snake engine needs a GPU that numba can use: {reason}")
        kernel, _ = _kernel(*key)
        block = min(threads_per_block, n)
        blocks = (n + block - 1) // block
        d_weights = cuda.to_device(weights)
        d_seeds = cuda.to_device(flat)
        d_scores = cuda.device_array(n, dtype=np.int32)  # every thread writes its game's slots
        d_steps = cuda.device_array(n, dtype=np.int32)
        d_deaths = cuda.device_array(n, dtype=np.int32)
        with warnings.catch_warnings():  # a small population is not a mistake worth a line per call
            warnings.filterwarnings("ignore", message=".*under-utilization.*")
            kernel[blocks, block](d_weights, n_games, d_seeds, d_scores, d_steps, d_deaths)
        scores = d_scores.copy_to_host()
        steps = d_steps.copy_to_host()
        deaths = d_deaths.copy_to_host()
    shape = (n_nets, n_games)
    return SnakeResults(scores=scores.reshape(shape), steps=steps.reshape(shape),
                        won=(deaths == _e._WON).reshape(shape), deaths=deaths.reshape(shape),
                        env_steps=int(steps.sum(dtype=np.int64)))
