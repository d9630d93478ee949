"""The Python API: ``evonet.evolve`` (weights, Gymnasium policies, fitness functions).

Every call is one experiment: it builds the same validated config a YAML file gives
``evonet run`` and runs it through the same runner, so an API run has the run directory,
logbook, checkpoints, progress line, TensorBoard scalars and report of a CLI run, and
``evonet resume RUN_DIR`` / ``evonet report RUN_DIR`` work on it. The problem object (with
the user's functions) is pickled into the run directory (``problem.pkl``) for resume.

Arguments are checked before any work: a bad one raises :class:`evonet.ConfigError` with
a one-line message naming it.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from evonet.core.errors import ConfigError

__all__ = ["evolve", "run", "resume", "EvolveResult", "RunOutcome"]


@dataclass
class EvolveResult:
    """What :func:`evolve` returns; ``run_dir`` holds everything it wrote."""

    run_dir: Path
    best_genome: np.ndarray
    best_fitness: float
    logbook: list[dict]
    summary: dict
    #: the network whose weights the genome is (an MLPSpec), or None for a plain vector
    spec: Any = field(repr=False, default=None)
    #: the Gymnasium problem of an ``env=`` run (evaluate() plays its environment), else None
    gym: Any = field(repr=False, default=None)
    _model: Any = field(repr=False, default=None)

    @property
    def best_model(self):
        """The policy network with the best genome's weights (a ``keras.Model``; needs a
        network: ``evolve(model, ...)`` or a Gymnasium env)."""
        spec = self.spec
        if spec is None:
            raise AttributeError("this run evolved a plain vector (no network): see best_genome")
        if self._model is None:
            from evonet.genomes.weights import to_keras

            self._model = to_keras(spec, self.best_genome)
        return self._model

    def evaluate(self, episodes: int = 100, start_seed: int = 0) -> dict:
        """Gymnasium runs: the best policy on evaluation seeds ``start_seed ..`` (never used in
        training): mean, 95% confidence interval of the mean, median, min, max, std."""
        if self.gym is None:
            raise AttributeError("evaluate() plays episodes of a Gymnasium run; this run has no environment")
        return self.gym.evaluate(self.best_genome, episodes, start_seed=start_seed)

    def __repr__(self) -> str:
        gens = self.logbook[-1]["gen"] if self.logbook else 0
        return (f"EvolveResult(best_fitness={self.best_fitness:.6g}, generations={gens}, "
                f"genes={np.size(self.best_genome)}, run_dir={str(self.run_dir)!r})")


def _name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "evolve"
    return name[:64]


def _check_int(name: str, value, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}")


def executor_section(executor: str, workers: int, address: str | None, chunk: int = 0, **extra) -> dict:
    """The config's executor section from API arguments (validated with the config)."""
    if executor not in ("local", "processes", "ray"):
        raise ConfigError(f"executor: unknown value {executor!r}; choose from local, processes, ray")
    out = {"kind": executor, "workers": workers, "address": address, "chunk": chunk}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def stop_section(target_fitness=None, stagnation=None, max_seconds=None, max_evaluations=None) -> dict:
    return {"target_fitness": target_fitness, "stagnation": stagnation, "max_seconds": max_seconds,
            "max_evaluations": max_evaluations}


def evolve(model=None, *, env: str | Callable | None = None, fitness: Callable | None = None,
           n_genes: int | None = None, algorithm: str = "cma_es", population: int | None = None,
           generations: int = 100, seed: int = 0, out: str | Path | None = None, name: str | None = None,
           sigma: float = 0.5, bound: float | None = None, episodes: int = 4, eval_episodes: int = 100,
           max_steps: int | None = None, env_kwargs: dict | None = None, batched: bool = True,
           noisy: bool = False, init_scale: float = 1.0, ga: dict | None = None,
           executor: str = "local", workers: int = 1, address: str | None = None, chunk: int = 0,
           target_fitness: float | None = None, stagnation: int | None = None, max_seconds: float | None = None,
           max_evaluations: int | None = None, checkpoint_every: int = 1, progress: str = "auto",
           tensorboard: bool = True, stream: TextIO | None = None) -> EvolveResult:
    """Evolve flat weight vectors and return the best one.

    * ``evolve(policy, env="CartPole-v1")``: the weights of a fixed Keras policy (a
      ``keras.Sequential`` of ``Dense`` layers) on a Gymnasium environment, given by id or by
      a zero-argument factory; fitness = mean return over ``episodes`` training episodes.
      Discrete actions take the argmax of the outputs, Box actions the outputs clipped to
      the bounds.
    * ``evolve(n_genes=30, fitness=f)``: vectors scored by ``f(genomes (n, d) float32,
      seeds (n,)) -> (n,)`` (maximised; ``batched=False``: ``f(genome, seed) -> float``).
      With a Keras model instead of ``n_genes``, the vectors are the model's weights and
      ``best_model`` carries the best of them.

    ``algorithm``: ``cma_es`` (default), ``mu_plus_lambda``, ``simple`` or ``aging``
    (asynchronous; ``ga={"mode": "greedy"}`` or ``{"lag": 16}``); ``ga``: any other
    ``ga.*`` config key (operators, hall of fame, ...). ``executor="processes"`` runs the
    evaluations on ``workers`` worker processes of this machine, ``executor="ray"`` on
    ``workers`` Ray workers, on this machine or the cluster at ``address``.
    Stops after ``generations`` or at ``target_fitness`` / ``stagnation`` / ``max_seconds`` /
    ``max_evaluations``. Writes the run directory ``out`` (default ``runs/NAME-seedS-TIME``).
    """
    from evonet import config as config_mod
    from evonet.core.runner import run_experiment

    if (env is None) == (fitness is None):
        raise ConfigError("evolve: give exactly one of env= (a Gymnasium environment) or fitness= (a function)")
    if algorithm not in ("cma_es", "mu_plus_lambda", "simple", "aging"):
        raise ConfigError(f"algorithm: unknown value {algorithm!r}; choose from cma_es, mu_plus_lambda, simple, aging")
    _check_int("generations", generations)
    _check_int("seed", seed)
    _check_int("episodes", episodes, 1)
    spec = flat = None
    if model is not None:
        from evonet.genomes.weights import from_keras

        try:
            spec, flat = from_keras(model)
        except ValueError as exc:
            raise ConfigError(f"model: {exc}") from None
    if bound is None:
        bound = 100.0 if algorithm == "cma_es" else 5.0

    if env is not None:
        if model is None:
            raise ConfigError("evolve(env=...): give the policy network, a keras.Sequential of Dense layers")
        if n_genes is not None:
            raise ConfigError("evolve(env=...): n_genes comes from the policy network; leave it out")
        from evonet.problems.gym import GymProblem

        problem = GymProblem(env, spec, episodes, run_seed=seed, bound=bound, eval_episodes=eval_episodes,
                             max_steps=max_steps, env_kwargs=dict(env_kwargs or {}))
        env_name = env if isinstance(env, str) else getattr(env, "__qualname__", type(env).__name__)
        genome_kind, run_name = "gym", name or _name(str(env_name))
        section = {"gym": {"env": str(env_name), "env_kwargs": dict(env_kwargs or {}) if isinstance(env, str) else {},
                           "episodes": episodes, "max_steps": max_steps, "eval_episodes": eval_episodes}}
    else:
        from evonet.problems.function import FunctionProblem

        init = None
        if spec is not None:
            if n_genes is not None and n_genes != spec.n_params:
                raise ConfigError(f"n_genes: {n_genes}, but the model has {spec.n_params} weights")
            n_genes = spec.n_params
            init = _WeightsInit(spec)
        if n_genes is None:
            raise ConfigError("evolve(fitness=...): give n_genes (the length of a genome) or a Keras model")
        problem = FunctionProblem(fitness, n_genes, low=-bound, up=bound, run_seed=seed, init_scale=init_scale,
                                  batched=batched, noisy=noisy, init_genomes=init)
        genome_kind, run_name = "function", name or _name(problem.name)
        section = {"function": {"fitness": _qualified(fitness), "n_genes": int(n_genes), "init_scale": init_scale}}
    from evonet.strategies import default_population

    if population is None:
        population = default_population(algorithm, problem.n_genes)
    ga_section = {"algorithm": algorithm, "population": population, "generations": generations, "sigma": sigma,
                  "bound": bound}
    if algorithm != "cma_es":
        ga_section["reevaluate"] = bool(noisy or env is not None)
    ga_section.update(ga or {})
    if not (noisy or env is not None):  # a deterministic function: one evaluation picks the final best
        ga_section.setdefault("final_games", 1)
    data = {
        "name": run_name, "seed": seed, "genome": genome_kind, **section, "ga": ga_section,
        "executor": executor_section(executor, workers, address, chunk),
        "stop": stop_section(target_fitness, stagnation, max_seconds, max_evaluations),
        "checkpoint": {"every": checkpoint_every},
        "log": {"progress": progress, "tensorboard": tensorboard},
        "eval_games": eval_episodes if env is not None else 0,
    }
    if spec is not None:
        data["network"] = _network_section(spec)
    cfg = config_mod.from_dict(data)
    if env is None:
        _probe_fitness(problem, seed)
    run_dir, result = run_experiment(cfg, out, stream or sys.stdout, problem=problem)
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    return EvolveResult(run_dir=Path(run_dir), best_genome=np.asarray(result.best_genome, dtype=np.float32),
                        best_fitness=float(result.best_fitness), logbook=list(result.logbook), summary=summary,
                        spec=spec, gym=problem if env is not None else None)


class _WeightsInit:
    """Initial genomes of a network's weights (Glorot-uniform kernels, zero biases)."""

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, rng: np.random.Generator, n: int) -> np.ndarray:
        from evonet.genomes.weights import init_weights

        return init_weights(self.spec, rng, n)


def _qualified(fn) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}:{getattr(fn, '__qualname__', type(fn).__name__)}"


def _network_section(spec) -> dict:
    from evonet.problems.network import NetworkConfig
    import typing

    hints = typing.get_type_hints(NetworkConfig)
    section: dict = {"hidden": list(spec.hidden) or [1]}
    for key in ("activation", "output_activation"):
        value = getattr(spec, key)
        if value in typing.get_args(hints[key]):
            section[key] = value
    return section


def _probe_fitness(problem, seed: int) -> None:
    """Call the fitness function once on two initial genomes, so a function that raises or
    returns the wrong shape or type fails here with one line, before the run directory."""
    from evonet.core import seeding
    from evonet.problems.function.problem import _call

    genomes = problem.init_genomes(seeding.generator(seed, seeding.PURPOSE_INIT), 2)
    task = problem.make_tasks(genomes, 0, [0, 1], 2)[0]
    try:
        _call(task, task.genomes, task.seeds[:, 0].copy())
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"fitness: {type(exc).__name__}: {' '.join(str(exc).split())}"[:400]) from None


@dataclass
class RunOutcome:
    """What :func:`run` and :func:`resume` return: the run directory and its figures."""

    run_dir: Path
    best_genome: np.ndarray
    best_fitness: float
    logbook: list[dict]
    summary: dict

    def __repr__(self) -> str:
        gens = self.logbook[-1]["gen"] if self.logbook else 0
        return f"RunOutcome(best_fitness={self.best_fitness:.6g}, generations={gens}, run_dir={str(self.run_dir)!r})"


def _outcome(run_dir, result) -> RunOutcome:
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    return RunOutcome(Path(run_dir), np.asarray(result.best_genome, dtype=np.float32), float(result.best_fitness),
                      list(result.logbook), summary)


def run(experiment: str | Path | None = None, overrides: list[str] | dict | None = None,
        out: str | Path | None = None, stream: TextIO | None = None) -> RunOutcome:
    """Run an experiment file (or a shipped experiment by name; ``None``: the embedded
    defaults) with ``--set``-style overrides (``["ga.population=64"]`` or
    ``{"ga.population": 64}``): exactly what ``evonet run`` does."""
    from evonet.core import config as config_mod
    from evonet.core.runner import run_experiment

    cfg = config_mod.load(experiment, _overrides(overrides))
    run_dir, result = run_experiment(cfg, out, stream or sys.stdout)
    return _outcome(run_dir, result)


def resume(run_dir: str | Path, overrides: list[str] | dict | None = None, force: bool = False,
           checkpoint: str | None = None, stream: TextIO | None = None) -> RunOutcome:
    """Continue a run from its latest checkpoint (``checkpoint``: another one): ``evonet resume``."""
    from evonet.core.runner import resume_experiment

    run_dir, result = resume_experiment(run_dir, _overrides(overrides), force=force, stream=stream or sys.stdout,
                                        checkpoint=checkpoint)
    return _outcome(run_dir, result)


def _overrides(overrides) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, dict):
        import yaml

        return [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                for k, v in overrides.items()]
    return [str(o) for o in overrides]
