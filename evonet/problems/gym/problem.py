"""Weight-vector genomes of a fixed policy network, scored on a Gymnasium environment."""

from __future__ import annotations

import difflib
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from evonet.core import seeding
from evonet.core.errors import ConfigError
from evonet.nn import MLPSpec
from evonet.problems.base import EvalResult
from evonet.problems.network import WeightVectorProblem
from evonet.problems.gym.rollout import episode_stats, make_env, rollout, space_map

#: pip extras of gymnasium by the package of an environment's entry point
_EXTRAS = {
    "gymnasium.envs.box2d": "box2d",
    "gymnasium.envs.mujoco": "mujoco",
    "gymnasium.envs.classic_control": "classic-control",
    "gymnasium.envs.toy_text": "toy-text",
    "ale_py": "atari",
}


@dataclass(frozen=True)
class GymTask:
    """A chunk of genomes and the episode seeds each one plays (picklable, self-contained)."""

    spec: MLPSpec
    env: Any  # a registered id (str) or a zero-argument factory (cloudpickle-able)
    env_kwargs: dict
    env_key: str  # names the cached environments of a worker process
    max_steps: int | None
    weights: np.ndarray  # (n, n_params) float32
    seeds: np.ndarray  # (n, episodes) uint64


def evaluate_gym_task(task: GymTask) -> list[EvalResult]:
    """Play every genome of the task on its seeds; fitness = mean undiscounted return. Pure."""
    start = time.perf_counter()
    try:
        res = rollout(task.spec, task.weights, task.seeds, task.env, task.env_kwargs, task.max_steps, task.env_key)
    except Exception as exc:  # a broken evaluation must not kill the run
        return GymProblem.failed_results(task, f"{type(exc).__name__}: {exc}")
    seconds = (time.perf_counter() - start) / max(1, len(task.weights))
    out = []
    for p in range(len(task.weights)):
        if res.errors[p] is not None:
            out.append(EvalResult(fitness=float("-inf"), weight=0, error=res.errors[p], seconds=seconds,
                                  metrics={"steps": float(res.steps[p].sum())}))
            continue
        r = res.returns[p]
        out.append(
            EvalResult(
                fitness=float(r.mean()),
                weight=int(r.size),
                metrics={"steps": float(res.steps[p].sum()), "max_score": float(r.max()),
                         "min_return": float(r.min())},
                seconds=seconds,
            )
        )
    return out


def env_name(env) -> str:
    """An environment id, or a factory's qualified name."""
    if isinstance(env, str):
        return env
    return f"{getattr(env, '__module__', '?')}.{getattr(env, '__qualname__', type(env).__name__)}"


def _env_key(env, env_kwargs: dict) -> str:
    if isinstance(env, str):
        return "id:" + json.dumps([env, env_kwargs], sort_keys=True, default=repr)
    import cloudpickle

    try:
        blob = cloudpickle.dumps(env)
    except Exception as exc:
        raise ConfigError(f"gym.env: the environment factory {env_name(env)} cannot be pickled ({exc})") from None
    return "factory:" + hashlib.sha256(blob).hexdigest()


def _check_id(env: str) -> None:
    import gymnasium

    if ":" in env:  # "module:EnvId": gymnasium imports the module, which registers the id
        return
    if env in gymnasium.registry:
        return
    close = difflib.get_close_matches(env, list(gymnasium.registry.keys()), n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    raise ConfigError(f"gym.env: unknown Gymnasium environment {env!r}{hint}")


def _extra_for(env) -> str | None:
    if not isinstance(env, str):
        return None
    try:
        import gymnasium

        entry = gymnasium.registry[env].entry_point
    except Exception:
        return None
    module = entry if isinstance(entry, str) else getattr(entry, "__module__", "")
    for prefix, extra in _EXTRAS.items():
        if module.startswith(prefix):
            return extra
    return None


def open_env(env, env_kwargs: dict | None = None):
    """One instance of the environment, with setup errors turned into one-line ``ConfigError``s."""
    import gymnasium

    if isinstance(env, str):
        _check_id(env)
    elif not callable(env):
        raise ConfigError(f"gym.env: expected a Gymnasium environment id or a factory, got {type(env).__name__}")
    try:
        instance = make_env(env, env_kwargs)
    except (gymnasium.error.DependencyNotInstalled, ImportError) as exc:
        extra = _extra_for(env)
        how = f'pip install "gymnasium[{extra}]"' if extra else "install the package it names"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"gym.env: {env_name(env)} needs a missing dependency ({first}); {how}") from None
    except ConfigError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(f"gym.env: cannot create {env_name(env)}: {type(exc).__name__}: {first}") from None
    if not isinstance(instance, gymnasium.Env):
        raise ConfigError(f"gym.env: the factory {env_name(env)} returned {type(instance).__name__}, not a gymnasium.Env")
    return instance


def _map_of(env, instance):
    try:
        return space_map(instance.observation_space, instance.action_space)
    except ValueError as exc:
        raise ConfigError(f"gym.env: {env_name(env)}: {exc}") from None


class GymProblem(WeightVectorProblem):
    """Flat weight vectors of ``spec``; fitness = mean return over ``episodes`` episodes of ``env``."""

    def __init__(
        self,
        env: str | Callable[[], Any],
        spec: MLPSpec,
        episodes: int,
        run_seed: int = 0,
        bound: float = 5.0,
        eval_episodes: int = 100,
        max_steps: int | None = None,
        env_kwargs: dict | None = None,
    ):
        if int(episodes) < 1:
            raise ConfigError(f"gym.episodes: must be >= 1, got {episodes}")
        if max_steps is not None and int(max_steps) < 1:
            raise ConfigError(f"gym.max_steps: must be >= 1 or null, got {max_steps}")
        self.env = env
        self.env_kwargs = dict(env_kwargs or {})
        if not isinstance(env, str) and self.env_kwargs:
            raise ConfigError("gym.env_kwargs: only for an environment id; a factory takes no arguments")
        instance = open_env(env, self.env_kwargs)
        try:
            self.space = _map_of(env, instance)
            self.observation_space = str(instance.observation_space)
            self.action_space = str(instance.action_space)
        finally:
            instance.close()
        if self.space.n_inputs != spec.n_inputs:
            raise ConfigError(
                f"network: {env_name(env)} gives {self.space.n_inputs} observation inputs "
                f"({self.observation_space}) but the network has {spec.n_inputs} inputs"
            )
        if self.space.n_outputs != spec.n_outputs:
            raise ConfigError(
                f"network: {env_name(env)} needs {self.space.n_outputs} action outputs "
                f"({self.action_space}) but the network has {spec.n_outputs} outputs"
            )
        self.env_key = _env_key(env, self.env_kwargs)
        self.spec = spec
        self.episodes = int(episodes)
        self.run_seed = int(run_seed)
        self.eval_episodes = int(eval_episodes)
        self.max_steps = None if max_steps is None else int(max_steps)
        self.n_genes = spec.n_params
        self.low, self.up = -float(bound), float(bound)

    @staticmethod
    def spec_for_env(env, hidden=(16,), activation: str = "tanh", output_activation: str = "linear",
                     env_kwargs: dict | None = None) -> MLPSpec:
        """The network spec whose input/output sizes fit the environment's spaces."""
        instance = open_env(env, env_kwargs)
        try:
            smap = _map_of(env, instance)
        finally:
            instance.close()
        try:
            return MLPSpec(smap.n_inputs, tuple(hidden), smap.n_outputs, activation, output_activation)
        except ValueError as exc:
            raise ConfigError(f"network: {exc}") from None

    @classmethod
    def from_config(cls, cfg) -> "GymProblem":
        g = cfg.gym
        spec = cls.spec_for_env(g.env, cfg.network.hidden, cfg.network.activation, cfg.network.output_activation,
                                g.env_kwargs)
        return cls(g.env, spec, g.episodes, cfg.seed, cfg.ga.bound, g.eval_episodes, g.max_steps, g.env_kwargs)

    @property
    def evaluate_task(self):
        return evaluate_gym_task

    def make_tasks(self, genomes, generation, indices, chunk, purpose=seeding.PURPOSE_GAMES, games=None):
        genomes = np.asarray(genomes, dtype=np.float32).reshape(-1, self.n_genes)
        seeds = seeding.training_game_seeds(
            self.run_seed, generation, indices, games or self.episodes, purpose=purpose
        )
        chunk = max(1, int(chunk))
        return [
            GymTask(self.spec, self.env, self.env_kwargs, self.env_key, self.max_steps,
                    genomes[i : i + chunk], seeds[i : i + chunk])
            for i in range(0, len(genomes), chunk)
        ]

    def banner(self) -> str:
        """One line for the start of a run."""
        return (
            f"gym genome of {self.n_genes} genes (network {'-'.join(map(str, self.spec.sizes))} "
            f"{self.spec.activation}), {env_name(self.env)}, fitness = mean return over {self.episodes} "
            f"training episodes"
        )

    def title(self) -> str:
        return env_name(self.env)

    def progress_text(self, record: dict) -> str:
        return (f"best episode {record['best_game']:8.1f}  {record['env_steps_per_s'] / 1e3:7.1f} k steps/s"
                if "best_game" in record else "")

    def final_choice(self, result) -> str:
        return f"mean return {result.best_fitness:.2f} over {result.best_games} fresh training episodes"

    def evaluate(self, genome, episodes: int | None = None, start_seed: int = 0) -> dict:
        """Statistics of ``genome`` over evaluation episodes ``start_seed ..``."""
        return evaluate_policy(self.env, self.spec, genome, self.eval_episodes if episodes is None else episodes,
                               start_seed, self.max_steps, self.env_kwargs)

    def finalize(self, store, result, stream) -> dict:
        """Write the best policy (genome, .keras model) and its statistics on evaluation
        seeds ``0 .. eval_episodes-1``; returns figures for summary.json."""
        from evonet.genomes.weights import save_keras

        store.save_genome(
            "best/genome.npz", result.best_genome, network=self.spec.to_dict(), env=env_name(self.env),
            env_kwargs=self.env_kwargs, final_fitness=result.best_fitness, final_episodes=result.best_games,
        )
        save_keras(store.file("best/model.keras"), self.spec, result.best_genome)
        if self.eval_episodes <= 0:
            return {}
        t0 = time.perf_counter()
        record = self.evaluate(result.best_genome)
        record["seconds"] = round(time.perf_counter() - t0, 3)
        store.write_json("best/eval.json", record)
        stream.write(format_stats(record) + "\n")
        return {"eval": record}

    def describe(self) -> dict:
        return {
            "genome": "gym",
            "n_genes": self.n_genes,
            "env": env_name(self.env),
            "env_kwargs": self.env_kwargs,
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "mapping": self.space.describe(),
            "network": self.spec.to_dict(),
            "episodes": self.episodes,
            "max_steps": self.max_steps,
            "eval_episodes": self.eval_episodes,
        }


def evaluate_policy(env, spec: MLPSpec, genome, episodes: int, start_seed: int = 0, max_steps: int | None = None,
                    env_kwargs: dict | None = None) -> dict:
    """Play ``genome`` (flat weights of ``spec``) on evaluation seeds ``start_seed .. start_seed+episodes-1``
    (never used by training, whose seeds are >= 2**63); returns the statistics of the returns."""
    episodes = int(episodes)
    seeds = seeding.evaluation_game_seeds(episodes, start_seed)
    genome = np.asarray(genome, dtype=np.float32).reshape(1, spec.n_params)
    key = _env_key(env, dict(env_kwargs or {}))
    res = rollout(spec, genome, seeds[None], env, env_kwargs, max_steps, key)
    if res.errors[0] is not None:
        raise RuntimeError(f"evaluation of the policy failed: {res.errors[0]}")
    stats = episode_stats(res.returns[0], res.steps[0])
    last = start_seed + episodes - 1
    return {"env": env_name(env), "seeds": f"evaluation seeds {start_seed}..{last}", **stats}


def format_stats(record: dict) -> str:
    """A short table of an evaluation record."""
    lo, hi = record["ci95"]
    rows = [
        ("episodes", f"{record['episodes']} ({record['seeds']})"),
        ("mean return", f"{record['mean']:.2f}  (95% CI {lo:.2f} .. {hi:.2f}, {record['ci95_method']})"),
        ("median", f"{record['median']:.2f}"),
        ("min / max", f"{record['min']:.2f} / {record['max']:.2f}"),
        ("std", f"{record['std']:.2f}"),
    ]
    if "mean_steps" in record:
        rows.append(("mean steps", f"{record['mean_steps']:.1f}"))
    head = f"evaluation of the best policy on {record['env']}"
    return head + "\n" + "\n".join(f"  {k:<12} {v}" for k, v in rows)
