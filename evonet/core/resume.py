"""``evonet resume RUN_DIR``: check everything before a run continues from a checkpoint.

:func:`prepare_resume` reads the run's ``config.yaml`` with the ``--set`` overrides,
lists what differs, loads and verifies the checkpoint and restores problem and strategy
from it, all without writing anything: a refused resume (changed settings without
``--force``, a corrupt or foreign checkpoint, a finished run) leaves the run directory
exactly as it was. :meth:`ResumePlan.commit` then rewrites the run's files to the
checkpoint's generation (``logbook.jsonl``, ``failures.jsonl``, ``eval_times.jsonl``
lose the lines of generations after it; a stale ``summary.json`` goes).

Settings that may change on resume without ``--force`` (:data:`SAFE`) decide how long
the run goes on, where evaluations run and what is logged, never what a generation
computes: ``ga.generations`` (typically raised), ``ga.final_games``, ``eval_games``,
``executor.*``, ``checkpoint.*``, ``stop.*`` and ``log.*``. Any other change (seed,
population, operators, network, game) gives a run that no single uninterrupted run would
produce, and needs ``--force``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evonet import config as config_mod
from evonet.core import seeding
from evonet.core.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from evonet.core.errors import ConfigError
from evonet.core.loop import LoopState
from evonet.core.stopping import Stop, StoppingRules
from evonet.core.store import RunDirError, RunStore

#: config keys (exact, or a section prefix ending in ".") that may change on resume
SAFE = ("ga.generations", "ga.final_games", "eval_games", "executor.", "checkpoint.", "stop.", "log.")


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b.c": value}``."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: obj}


def diff_configs(old, new) -> list[tuple[str, Any, Any]]:
    """``(key, old, new)`` for every field that differs between two configs."""
    a, b = flatten(config_mod.to_dict(old)), flatten(config_mod.to_dict(new))
    missing = object()
    out = []
    for key in list(a) + [k for k in b if k not in a]:
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            out.append((key, None if va is missing else va, None if vb is missing else vb))
    return out


def is_safe(key: str) -> bool:
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE)


def _show(value: Any) -> str:
    return json.dumps(value, default=str) if not isinstance(value, str) else value


def describe_diffs(diffs) -> str:
    return ", ".join(f"{key}: {_show(old)} -> {_show(new)}" for key, old, new in diffs)


@dataclass
class ResumePlan:
    """A verified resume, ready to :meth:`commit` and run."""

    store: RunStore
    cfg: Any
    diffs: list[tuple[str, Any, Any]]
    forced: bool
    checkpoint: Checkpoint
    problem: Any
    strategy: Any
    loop_state: LoopState
    run_info: dict = field(default_factory=dict)

    @property
    def generation(self) -> int:
        return self.checkpoint.generation

    def commit(self) -> None:
        """Write the run directory back to the checkpoint's generation (the only writes)."""
        store, gen = self.store, self.generation
        if self.diffs:
            store.write_text("config.yaml", config_mod.dump_yaml(self.cfg))
        store.rewrite_jsonl("logbook.jsonl", self.loop_state.logbook)
        store.rewrite_jsonl("failures.jsonl", self.loop_state.failures, keep_empty=False)
        store.rewrite_jsonl("eval_times.jsonl", [r for r in store.read_jsonl("eval_times.jsonl", tolerant=True)
                                                  if isinstance(r, dict) and r.get("gen", gen + 1) <= gen],
                            keep_empty=False)
        if hasattr(self.strategy, "pending"):  # asynchronous: the jobs told by the checkpoint
            told = lambda r: (isinstance(r, dict) and isinstance(r.get("job"), int)  # noqa: E731
                              and r["job"] < self.strategy.next_id and r["job"] not in self.strategy.pending)
            store.rewrite_jsonl("jobs.jsonl", [r for r in store.read_jsonl("jobs.jsonl", tolerant=True) if told(r)],
                                keep_empty=False)
        summary = store.file("summary.json")
        if summary.exists():
            summary.unlink()
        self.run_info.setdefault("resumes", []).append({
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "from_generation": gen,
            "checkpoint": self.checkpoint.name,
            "changes": [f"{k}: {_show(a)} -> {_show(b)}" for k, a, b in self.diffs],
            "forced": self.forced and any(not is_safe(k) for k, _, _ in self.diffs),
        })
        store.write_json("run.json", self.run_info)


def _stop_now(cfg, loop_state: LoopState, generation: int) -> Stop | None:
    """What the loop would decide before running a generation of the resumed run."""
    if not loop_state.logbook:
        return None
    rules = StoppingRules.from_config(cfg.stop)
    rules.set_state(loop_state.stopping)
    last = loop_state.logbook[-1]
    stop = rules.check(last, loop_state.evaluations, loop_state.elapsed)
    if stop is None and generation >= cfg.ga.generations:
        stop = Stop("generations", f"all {cfg.ga.generations} generations done", generation)
    return stop


def prepare_resume(run_dir: str | Path, overrides: list[str] | None = None, force: bool = False,
                   checkpoint: str | None = None) -> ResumePlan:
    """Validate a resume of ``run_dir``; raises a one-line EvonetError and writes nothing."""
    from evonet.core.config import make_problem
    from evonet.strategies.ga import make_strategy

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    if not (run_dir / "config.yaml").is_file():
        raise RunDirError(f"{run_dir}: not a run directory (no config.yaml)")
    store = RunStore(run_dir)
    old = config_mod.load(run_dir / "config.yaml")
    cfg = config_mod.load(run_dir / "config.yaml", list(overrides or []))
    diffs = diff_configs(old, cfg)
    for key, a, b in diffs:  # a strategy's state cannot follow these, not even with --force
        if old.ga.algorithm == "aging" and (key.startswith("ga.fidelity") or key == "ga.algorithm"):
            raise ConfigError(f"{key}: the run's {'rung schedule' if key.startswith('ga.fidelity') else 'strategy'} "
                              f"cannot change on resume ({_show(a)} -> {_show(b)})")
    unsafe = [d for d in diffs if not is_safe(d[0])]
    if unsafe and not force:
        raise ConfigError(
            f"{run_dir}: the config differs from the run's in settings that change its results "
            f"({describe_diffs(unsafe)}); resume with --force to accept them"
        )
    try:
        run_info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    except (OSError, ValueError):
        raise CheckpointError(f"{run_dir / 'run.json'}: unreadable run info; corrupt or truncated") from None
    if not isinstance(run_info, dict):
        raise CheckpointError(f"{run_dir / 'run.json'}: not an evonet run info file")
    ckpt = load_checkpoint(run_dir, checkpoint)
    gen = ckpt.generation
    if cfg.ga.generations < gen:
        raise ConfigError(
            f"ga.generations: {cfg.ga.generations} is below the checkpoint's generation {gen}; "
            f"the run can only go on from there"
        )
    from evonet.core.runner import PROBLEM_PICKLE, load_problem

    pickled = run_dir / PROBLEM_PICKLE
    problem = load_problem(pickled) if pickled.is_file() else make_problem(cfg)
    cfg, _ = config_mod.resolve_algorithm(cfg, problem)  # only a --set ga.algorithm=auto leaves it unresolved here
    config_mod.check_fidelity(cfg, problem)
    try:
        s_state = ckpt.state["strategy"]
        genomes = np.asarray(s_state["population"]["genomes"], dtype=np.float64)
        if genomes.ndim != 2 or genomes.shape[1] != problem.n_genes:
            raise CheckpointError(
                f"{ckpt.path}: genomes of {genomes.shape[-1]} genes, the config's problem has {problem.n_genes}; "
                "cannot resume with this config"
            )
        strategy = make_strategy(
            cfg.ga, genomes, problem.low, problem.up, seeding.generator(cfg.seed, seeding.PURPOSE_STRATEGY),
            weights=problem.weights, similar=problem.same_genome, key=problem.genome_key,
            integer_budgets=problem.fidelity_integer,
        )
        if not strategy.resumable:
            raise CheckpointError(f"ga.algorithm {cfg.ga.algorithm}: this strategy cannot be resumed from a checkpoint")
        strategy.set_state(s_state)
        if "problem" in ckpt.state:
            problem.set_state(ckpt.state["problem"])
        loop_state = LoopState.from_dict(ckpt.state["loop"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise CheckpointError(
            f"{ckpt.path}: the checkpoint's state does not fit this config ({type(exc).__name__}: {exc})"
        ) from None
    if len(loop_state.logbook) != gen + 1 or loop_state.logbook[-1].get("gen") != gen:
        raise CheckpointError(f"{ckpt.path}: logbook of {len(loop_state.logbook)} generations for generation {gen}; corrupt")
    stop = _stop_now(cfg, loop_state, gen)
    if stop is not None and (run_dir / "summary.json").exists():
        raise ConfigError(
            f"{run_dir}: the run is complete (stopped: {stop.reason}); to go on, raise ga.generations "
            f"(--set ga.generations=N) or change the stop rules"
        )
    return ResumePlan(store=store, cfg=cfg, diffs=diffs, forced=force, checkpoint=ckpt, problem=problem,
                      strategy=strategy, loop_state=loop_state, run_info=run_info)
