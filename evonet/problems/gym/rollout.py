"""Lockstep rollouts of many policy networks on many Gymnasium environments.

One call plays ``P`` genomes x ``E`` episodes at once: one environment instance per
(genome, episode), and at every step ONE batched :func:`evonet.nn.forward` over the
genomes that still have a running episode. Every genome's slice of that product has the
fixed shape ``(E, n_inputs)`` (finished episodes keep their last observation, their
outputs are ignored): numpy's matmul gives bit-identical rows for the same slice shape
whatever the number of slices, whereas compacting rows changes the last bits. So a
genome's returns depend only on its weights and seeds, never on how many genomes share
the task (the chunk size, the number of workers).

Only numpy runs in the hot loop; no TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from evonet.nn import MLPSpec, forward, unflatten

#: environments kept per worker process, keyed by the problem's env key
_ENV_CACHE: dict[str, list[Any]] = {}
#: at most this many environments are kept per key (more are made and closed per call)
MAX_CACHED_ENVS = 4096


def make_env(env: str | Callable[[], Any], env_kwargs: dict | None = None):
    """A fresh environment: ``gymnasium.make(env, **env_kwargs)`` or ``env()`` for a factory."""
    if callable(env):
        return env()
    import gymnasium

    return gymnasium.make(env, **(env_kwargs or {}))


def clear_env_cache() -> None:
    """Close and forget every cached environment of this process."""
    for envs in _ENV_CACHE.values():
        for e in envs:
            try:
                e.close()
            except Exception:  # closing is best effort
                pass
    _ENV_CACHE.clear()


def _get_envs(key: str | None, env, env_kwargs, n: int) -> list[Any]:
    if key is None:
        return [make_env(env, env_kwargs) for _ in range(n)]
    envs = _ENV_CACHE.setdefault(key, [])
    while len(envs) < n:
        envs.append(make_env(env, env_kwargs))
    return envs[:n]


def _drop_env(key: str | None, env) -> None:
    """Forget an environment that raised (its state is unknown)."""
    if key is not None and key in _ENV_CACHE:
        _ENV_CACHE[key] = [e for e in _ENV_CACHE[key] if e is not env]
    try:
        env.close()
    except Exception:
        pass


def _trim_cache(key: str | None) -> None:
    if key is not None and len(_ENV_CACHE.get(key, ())) > MAX_CACHED_ENVS:
        extra = _ENV_CACHE[key][MAX_CACHED_ENVS:]
        del _ENV_CACHE[key][MAX_CACHED_ENVS:]
        for e in extra:
            try:
                e.close()
            except Exception:
                pass


# ----------------------------------------------------------------------------- spaces


@dataclass(frozen=True)
class SpaceMap:
    """How observations become network inputs and network outputs become actions."""

    n_inputs: int
    n_outputs: int
    obs_kind: str  # "box" | "discrete"
    obs_start: int
    act_kind: str  # "discrete" | "box"
    act_start: int
    act_low: np.ndarray | None
    act_high: np.ndarray | None
    act_dtype: Any

    def encode(self, obs) -> np.ndarray:
        if self.obs_kind == "discrete":
            x = np.zeros(self.n_inputs, dtype=np.float32)
            x[int(obs) - self.obs_start] = 1.0
            return x
        return np.asarray(obs, dtype=np.float32).reshape(self.n_inputs)

    def actions(self, out: np.ndarray) -> np.ndarray:
        """Actions for outputs ``(..., n_outputs)``: argmax (discrete) or clipped outputs (box)."""
        if self.act_kind == "discrete":
            return np.argmax(out, axis=-1) + self.act_start
        return np.clip(out, self.act_low, self.act_high).astype(self.act_dtype, copy=False)

    def describe(self) -> dict:
        obs = (f"Discrete({self.n_inputs}) one-hot" if self.obs_kind == "discrete" else f"Box({self.n_inputs},)")
        act = (f"Discrete({self.n_outputs}) argmax" if self.act_kind == "discrete"
               else f"Box({self.n_outputs},) clipped to [low, high]")
        return {"observation": obs, "action": act}


def space_map(observation_space, action_space) -> SpaceMap:
    """The mapping for these spaces; ``ValueError`` (one line) for unsupported ones."""
    from gymnasium import spaces

    if isinstance(observation_space, spaces.Discrete):
        n_in, obs_kind, obs_start = int(observation_space.n), "discrete", int(observation_space.start)
    elif isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 1:
        n_in, obs_kind, obs_start = int(observation_space.shape[0]), "box", 0
    else:
        raise ValueError(
            f"observation space {observation_space} is not supported: only a flat (1-D) Box or a Discrete "
            f"(one-hot) observation can feed the network"
        )
    if isinstance(action_space, spaces.Discrete):
        return SpaceMap(n_in, int(action_space.n), obs_kind, obs_start, "discrete", int(action_space.start),
                        None, None, None)
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        return SpaceMap(n_in, int(action_space.shape[0]), obs_kind, obs_start, "box", 0,
                        np.asarray(action_space.low, dtype=np.float32),
                        np.asarray(action_space.high, dtype=np.float32), action_space.dtype)
    raise ValueError(
        f"action space {action_space} is not supported: only Discrete (argmax of the outputs) or a 1-D Box "
        f"(outputs clipped to low/high)"
    )


# ----------------------------------------------------------------------------- rollouts


@dataclass
class Rollouts:
    returns: np.ndarray  # (P, E) float64, undiscounted
    steps: np.ndarray  # (P, E) int64
    errors: list  # per genome: None or "Type: message"


def rollout(
    spec: MLPSpec,
    weights: np.ndarray,
    seeds: np.ndarray,
    env,
    env_kwargs: dict | None = None,
    max_steps: int | None = None,
    env_key: str | None = None,
) -> Rollouts:
    """Play genome ``p`` (row of ``weights``, (P, n_params)) on seeds ``seeds[p]`` ((P, E)).

    ``env`` is an id for ``gymnasium.make`` or a zero-argument factory. With ``env_key``
    the environments are kept in a per-process cache and reused by later calls (an
    episode is fully determined by ``reset(seed=...)``). An exception raised by an
    environment fails only the genome it belongs to.
    """
    weights = np.asarray(weights, dtype=np.float32).reshape(-1, spec.n_params)
    seeds = np.asarray(seeds).reshape(len(weights), -1)
    P, E = seeds.shape
    returns = np.zeros((P, E), dtype=np.float64)
    steps = np.zeros((P, E), dtype=np.int64)
    errors: list = [None] * P
    if P == 0 or E == 0:
        return Rollouts(returns, steps, errors)
    envs = _get_envs(env_key, env, env_kwargs, P * E)
    smap = space_map(envs[0].observation_space, envs[0].action_space)
    if smap.n_inputs != spec.n_inputs or smap.n_outputs != spec.n_outputs:
        raise ValueError(
            f"the environment has {smap.n_inputs} observation inputs and {smap.n_outputs} action outputs, "
            f"the network {spec.n_inputs} inputs and {spec.n_outputs} outputs"
        )
    layers = unflatten(spec, weights)
    X = np.zeros((P, E, spec.n_inputs), dtype=np.float32)
    Xflat = X.reshape(P * E, spec.n_inputs)  # a view: row p * E + e is X[p, e]
    limit = math.inf if max_steps is None else int(max_steps)
    box_obs = smap.obs_kind == "box"
    n_in = spec.n_inputs
    # bookkeeping in plain Python lists (numpy scalar indexing costs more than a Box2D step's
    # share of the loop); float additions in the same order give the same float64 returns
    ret = [0.0] * (P * E)
    nsteps = [0] * (P * E)
    live: list[list[int]] = [[] for _ in range(P)]  # the running episodes of each genome

    def fail(p: int, e: int, exc: BaseException) -> None:
        errors[p] = f"{type(exc).__name__}: {exc}"
        live[p] = []
        _drop_env(env_key, envs[p * E + e])

    for p in range(P):
        eps = []
        for e in range(E):
            try:
                obs, _info = envs[p * E + e].reset(seed=int(seeds[p, e]))
                X[p, e] = smap.encode(obs)
            except Exception as exc:  # a broken environment fails its genome, not the run
                fail(p, e, exc)
                eps = []
                break
            eps.append(e)
        live[p] = eps

    alive_key = None
    sub = layers
    idx = None
    discrete = smap.act_kind == "discrete"
    while True:
        alive = [p for p in range(P) if live[p]]
        if not alive:
            break
        if alive != alive_key:  # the weights of the genomes still playing, gathered once per change
            alive_key = alive
            if len(alive) == P:
                sub, idx = layers, None
            else:
                idx = np.asarray(alive, dtype=np.intp)
                sub = [(k[idx], b[idx]) for k, b in layers]
        acts = smap.actions(forward(spec, sub, X if idx is None else X[idx]))
        if discrete:
            acts = acts.tolist()
        for k, p in enumerate(alive):
            acts_p = acts[k]
            base = p * E
            keep = []
            for e in live[p]:
                i = base + e
                a = int(acts_p[e]) if discrete else acts_p[e].copy()
                try:
                    obs, reward, terminated, truncated, _info = envs[i].step(a)
                    ret[i] += float(reward)
                    n = nsteps[i] = nsteps[i] + 1
                    if not (terminated or truncated or n >= limit):
                        if box_obs:
                            Xflat[i] = np.asarray(obs, dtype=np.float32).reshape(n_in)
                        else:
                            Xflat[i] = smap.encode(obs)
                        keep.append(e)
                except Exception as exc:
                    fail(p, e, exc)
                    keep = []
                    break
            live[p] = keep
    returns[:] = np.asarray(ret, dtype=np.float64).reshape(P, E)
    steps[:] = np.asarray(nsteps, dtype=np.int64).reshape(P, E)
    _trim_cache(env_key)
    if env_key is None:
        for e in envs:
            try:
                e.close()
            except Exception:
                pass
    return Rollouts(returns, steps, errors)


def episode_stats(returns: np.ndarray, steps: np.ndarray | None = None) -> dict:
    """Mean, 95% confidence interval of the mean (Student t), median, min, max, std of returns."""
    r = np.asarray(returns, dtype=np.float64).reshape(-1)
    n = r.size
    std = float(r.std(ddof=1)) if n > 1 else 0.0
    if n > 1:
        try:
            from scipy.stats import t

            q = float(t.ppf(0.975, n - 1))
            method = "student t"
        except ImportError:  # pragma: no cover
            q, method = 1.959964, "normal approximation"
        half = q * std / math.sqrt(n)
    else:
        half, method = float("nan"), "student t"
    mean = float(r.mean()) if n else float("nan")
    out = {
        "mean": mean,
        "ci95": [mean - half, mean + half],
        "ci95_half_width": half,
        "ci95_method": f"{method}, {n - 1} degrees of freedom",
        "median": float(np.median(r)) if n else float("nan"),
        "min": float(r.min()) if n else float("nan"),
        "max": float(r.max()) if n else float("nan"),
        "std": std,
        "episodes": int(n),
    }
    if steps is not None:
        out["mean_steps"] = float(np.mean(steps)) if n else float("nan")
    return out
