"""Snake fitness of a population: every individual plays its games to the end.

:func:`evaluate_weights` is pure: the result depends only on the arguments (no global RNG,
no printing, no files), and the row of individual p depends only on ``weights[p]`` and
``seeds[p]``, never on which other individuals share the batch, nor on the thread count.

Two engines play the games, chosen by ``engine=``:

- ``"fused"`` (:func:`evonet.envs.snake.fused.play_mlp`): one compiled call plays every game
  to its end, network included, over every core; its forward pass has a fixed summation
  order and no BLAS, so the same weights and seeds give the same games on any x86-64 CPU.
  It runs every network but one with a hidden ``softmax`` layer.
- ``"batched"``, the reference: a Python loop whose step is

  1. the networks' outputs on the current observations: :func:`evonet.nn.forward` of the
     (P', G, n_in) observations with the (P', n_in, n_out) weights, one batched product per
     layer over the P' individuals still playing (BLAS: its rounding may differ between
     CPUs and libraries, so a published result may differ in the last bit elsewhere);
  2. greedy actions, ``argmax`` (ties to the lowest index);
  3. one compiled call of the engine that plays the actions and writes the next
     observations (:meth:`BatchSnake.step_observe`).

  An individual whose G games are all over leaves the batch: the observation buffer and
  the weights are re-sliced then, and only then. (Finished games of an individual still
  playing keep their slot: the per-individual matrices keep the shape (G, n_in), which
  keeps BLAS's rounding, and so the actions, independent of the batching.)

``"auto"`` (the default) is the fused engine where it can run the network, else the batched
one. The two play the same rules and observations (tested game for game against each other
and the reference game); their greedy actions can differ only where two outputs are equal
to the last bit, which the different rounding of the two forward passes can break apart.

``device="cuda"`` plays the fused engine's games on an NVIDIA GPU instead of the cores
(:func:`evonet.envs.snake.cuda.play_mlp_cuda`: one thread per game, the same games bit for
bit); ``device="auto"`` does where numba finds a GPU it can use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evonet import nn
from evonet.envs.snake.engine import BatchSnake
from evonet.envs.snake.observations import OBSERVATIONS, check_observation
from evonet.envs.snake.rng import as_seeds
from evonet.envs.snake.rules import Rules

Policy = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SnakeResults:
    """Outcome of a batch of games; arrays have the shape of the seeds given.

    ``scores``: the rule set's score (classic: apples; theailearner: length);
    ``steps``: actions taken per game; ``won``: bool; ``deaths``: engine death codes
    (:data:`evonet.envs.snake.DEATH_NAMES`); ``env_steps``: the total steps played.
    """

    scores: np.ndarray
    steps: np.ndarray
    won: np.ndarray
    deaths: np.ndarray
    env_steps: int


def _results(engine: BatchSnake, shape: tuple[int, ...]) -> SnakeResults:
    return SnakeResults(
        scores=engine.score.reshape(shape).copy(),
        steps=engine.steps.reshape(shape).copy(),
        won=engine.won.reshape(shape).copy(),
        deaths=engine.death.reshape(shape).copy(),
        env_steps=int(engine.steps.sum(dtype=np.int64)),
    )


def check_population(spec: nn.MLPSpec, weights, observation: str, seeds,
                     rules: Rules | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(weights (P, n_params) float32 C-contiguous, seeds (P, G))`` of a population's games,
    or ``ValueError`` naming what does not fit (observation size or board, 3 outputs, shapes)."""
    check_observation(observation, *((rules.width, rules.height) if rules is not None else ()))
    n_obs = OBSERVATIONS[observation]
    if spec.n_inputs != n_obs:
        raise ValueError(f"observation {observation!r} has {n_obs} features but the network takes {spec.n_inputs}")
    if spec.n_outputs != 3:
        raise ValueError(f"a snake network has 3 outputs (left, straight, right), got {spec.n_outputs}")
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    seeds_arr = np.asarray(seeds)
    if weights.ndim != 2 or weights.shape[1] != spec.n_params:
        raise ValueError(f"weights must have shape (P, {spec.n_params}), got {weights.shape}")
    if seeds_arr.ndim != 2 or seeds_arr.shape[0] != weights.shape[0]:
        raise ValueError(f"seeds must have shape (P={weights.shape[0]}, G), got {seeds_arr.shape}")
    return weights, seeds_arr


ENGINES = ("auto", "fused", "batched")
#: where the fused engine plays (``snake.device``)
DEVICES = ("auto", "cpu", "cuda")


def _resolve_device(device: str) -> str:
    from evonet.problems.snake.config import resolve_device

    return resolve_device(device)


def pick_engine(spec: nn.MLPSpec, engine: str = "auto") -> str:
    """The engine ``"fused"`` or ``"batched"`` that plays ``spec`` for the choice ``engine``
    (``"auto"``: fused where it can run the network); ``ValueError`` for an unknown name and
    :class:`~evonet.envs.snake.fused.FusedUnsupported` for ``"fused"`` with a network it
    cannot run."""
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "batched":
        return engine
    from evonet.envs.snake.fused import FusedUnsupported, network_arrays

    try:
        network_arrays(spec)
    except FusedUnsupported:
        if engine == "fused":
            raise
        return "batched"
    return "fused"


def evaluate_weights(spec: nn.MLPSpec, weights: np.ndarray, rules: Rules, observation: str,
                     seeds: np.ndarray, *, engine: str = "auto", threads: int | None = None,
                     device: str = "cpu") -> SnakeResults:
    """Individual p plays the games ``seeds[p, :]`` greedily with network ``weights[p]``.

    Args:
        spec: the network; ``spec.n_inputs`` must equal the observation's size and
            ``spec.n_outputs`` 3 (turn left, straight, turn right).
        weights: (P, spec.n_params) float32 flat weight vectors (:mod:`evonet.nn` layout).
        rules: the rule set and board.
        observation: a name of :data:`~evonet.envs.snake.observations.OBSERVATIONS`.
        seeds: (P, G) uint64 game seeds.
        engine: ``"auto"`` (fused where it can run the network), ``"fused"`` or
            ``"batched"`` (see the module doc).
        threads: the fused engine's threads (default: every core); the batched engine
            uses one. The result is the same for any count.
        device: where the fused engine plays: ``"cpu"`` (the default), ``"cuda"`` (an
            NVIDIA GPU, one thread per game; a :class:`~evonet.core.errors.ConfigError`
            without one; not with ``engine="batched"``) or ``"auto"`` (cuda where numba finds
            a GPU, else cpu). The result is the same on both.

    Returns:
        :class:`SnakeResults` with (P, G) arrays.
    """
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda" and engine == "batched":
        raise ValueError("device: cuda runs the fused engine, not engine='batched'")
    if device == "cuda" or pick_engine(spec, engine) == "fused":
        if device != "cpu" and _resolve_device(device) == "cuda":  # the network must fit (FusedUnsupported)
            from evonet.envs.snake.cuda import play_mlp_cuda

            return play_mlp_cuda(spec, weights, rules, observation, seeds, threads=threads)
        from evonet.envs.snake.fused import play_mlp

        return play_mlp(spec, weights, rules, observation, seeds, threads=threads)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
    return _evaluate_batched(spec, weights, rules, observation, seeds)


def _evaluate_batched(spec: nn.MLPSpec, weights: np.ndarray, rules: Rules, observation: str,
                      seeds: np.ndarray) -> SnakeResults:
    weights, seeds_arr = check_population(spec, weights, observation, seeds, rules)
    n_obs = OBSERVATIONS[observation]
    n_ind, n_games = seeds_arr.shape
    engine = BatchSnake(rules, as_seeds(seeds_arr))
    if n_ind == 0 or n_games == 0:
        return _results(engine, (n_ind, n_games))

    games = np.arange(n_ind * n_games, dtype=np.int64)
    obs = engine.observe(observation, games)
    alive = ~engine.done.reshape(n_ind, n_games).all(axis=1)
    active = np.arange(n_ind)
    if not alive.all():
        active, games, obs = active[alive], games.reshape(n_ind, n_games)[alive].ravel(), \
            obs.reshape(n_ind, n_games, n_obs)[alive].reshape(-1, n_obs)
    layers = nn.unflatten(spec, weights[active])
    alive = np.empty(active.size, dtype=np.bool_)
    while active.size:
        n_active = active.size
        out = nn.forward(spec, layers, obs.reshape(n_active, n_games, n_obs))
        actions = np.argmax(out, axis=-1).reshape(-1)
        engine.step_observe(games, actions, observation, obs, alive, n_games)
        if not alive.all():
            keep = alive.copy()
            active = active[keep]
            games = games.reshape(n_active, n_games)[keep].reshape(-1)
            obs = obs.reshape(n_active, n_games, n_obs)[keep].reshape(-1, n_obs)
            layers = nn.unflatten(spec, weights[active])
            alive = np.empty(active.size, dtype=np.bool_)
    return _results(engine, (n_ind, n_games))


def play_policy(rules: Rules, seeds, policy: Policy | str, observation: str = "blog7") -> SnakeResults:
    """Play the games ``seeds`` (B,) to their end with ``policy``.

    ``policy(obs, active)`` gets the observations (n_active, n_features) float32 of the
    games still playing and their indices into ``seeds``, and returns their actions
    (0 left, 1 straight, 2 right). ``policy="heuristic"`` plays the blog's heuristic on the
    raw state instead, compiled, all games at once (``observation`` is then unused).
    """
    seeds = as_seeds(seeds)
    engine = BatchSnake(rules, seeds)
    if isinstance(policy, str):
        if policy != "heuristic":
            raise ValueError(f"unknown built-in policy {policy!r}; the only one is 'heuristic'")
        engine.play_heuristic()
        return _results(engine, seeds.shape)
    check_observation(observation, rules.width, rules.height)
    active = np.flatnonzero(~engine.done).astype(np.int64)
    obs = engine.observe(observation, active)
    alive = np.empty(active.size, dtype=np.bool_)
    while active.size:
        actions = engine.check_actions(policy(obs, active), active.size)
        engine.step_observe(active, actions, observation, obs, alive, 1)
        if not alive.all():
            keep = alive.copy()
            active, obs = active[keep], obs[keep]
            alive = np.empty(active.size, dtype=np.bool_)
    return _results(engine, seeds.shape)


def random_policy(rng: np.random.Generator) -> Policy:
    """A policy of uniform random actions drawn from ``rng``."""

    def policy(obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        return rng.integers(0, 3, size=active.shape[0])

    return policy


def summarize(scores, steps, won, rules: Rules) -> dict:
    """Summary statistics of a set of games (any shape; all games pooled).

    Keys: ``games``, ``mean``, ``ci95`` (half-width of the normal-approximation 95% CI of
    the mean, 1.96 * sd / sqrt(n)), ``ci_low``, ``ci_high``, ``sd``, ``median``, ``min``,
    ``max``, ``win_rate``, ``apples_mean``, ``steps_mean``, ``steps_per_apple`` (all steps /
    all apples; ``None`` with no apple), ``fill_fraction`` (classic: mean / (W*H - 3), else
    ``None``).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    steps = np.asarray(steps, dtype=np.float64).reshape(-1)
    won = np.asarray(won, dtype=bool).reshape(-1)
    n = scores.size
    if n == 0:
        raise ValueError("no games to summarize")
    mean = float(scores.mean())
    sd = float(scores.std(ddof=1)) if n > 1 else 0.0
    ci = 1.96 * sd / math.sqrt(n)
    apples = scores - rules.score_offset
    total_apples = float(apples.sum())
    return {
        "games": int(n),
        "mean": mean,
        "ci95": ci,
        "ci_low": mean - ci,
        "ci_high": mean + ci,
        "sd": sd,
        "median": float(np.median(scores)),
        "min": float(scores.min()),
        "max": float(scores.max()),
        "win_rate": float(won.mean()),
        "apples_mean": float(apples.mean()),
        "steps_mean": float(steps.mean()),
        "steps_per_apple": float(steps.sum() / total_apples) if total_apples > 0 else None,
        "fill_fraction": mean / rules.max_score if rules.classic else None,
    }


def format_summary(summary: dict, rules: Rules, seeds_desc: str) -> str:
    """A readable table of :func:`summarize`'s output naming the rule set, board and seeds."""
    unit = "apples" if rules.classic else "length (incl. the initial 3)"
    spa = summary["steps_per_apple"]
    rows = [
        ("rule set", f"{rules.name}, board {rules.board}"),
        ("games", f"{summary['games']} on {seeds_desc}"),
        ("score", unit),
        ("mean", f"{summary['mean']:.3f} ± {summary['ci95']:.3f} "
                 f"(95% CI {summary['ci_low']:.3f} .. {summary['ci_high']:.3f})"),
        ("median", f"{summary['median']:g}"),
        ("min / max", f"{summary['min']:g} / {summary['max']:g}"),
        ("win rate", f"{summary['win_rate']:.1%}"),
        ("steps per apple", "n/a" if spa is None else f"{spa:.1f}"),
        ("mean steps", f"{summary['steps_mean']:.1f}"),
    ]
    if summary.get("fill_fraction") is not None:
        rows.append(("fill fraction", f"{summary['fill_fraction']:.3f} of {rules.max_score}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
