"""Experiment configs: typed dataclasses, loaded from YAML and validated before any work.

Every field carries a one-line doc (``field(metadata={"doc": ...})``); ``evonet config``
prints them. Loading rejects unknown keys (with a did-you-mean hint), wrong types and
impossible values with a :class:`~evonet.errors.ConfigError` whose message is one line
naming the field, e.g. ``ga.population: must be >= 2, got 1``.

Overrides use dotted keys with YAML values: ``--set ga.population=64 --set
network.hidden=[16,16]``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence, Union

import yaml

from evonet.core.errors import ConfigError


def doc(text: str, **extra) -> dict:
    return {"doc": text, **extra}


def _f(default, text: str, *, factory=None, **extra):
    meta = doc(text, **extra)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# ----------------------------------------------------------------------------- sections


#: ``ga.algorithm: auto`` runs CMA-ES on real-valued genomes up to this many genes: its
#: covariance matrix has n x n entries and each generation decomposes it (O(n^3))
CMA_ES_MAX_GENES = 2000


@dataclass
class GAConfig:
    """The evolutionary algorithm over the DEAP toolbox."""

    algorithm: Literal["auto", "simple", "mu_plus_lambda", "cma_es", "aging"] = _f(
        "auto",
        "auto: cma_es for a genome of real numbers (network weights, a vector) of at most "
        f"{CMA_ES_MAX_GENES} genes, mu_plus_lambda otherwise (hyperparameter genomes, larger vectors); "
        "the run's config.yaml records the choice. "
        "simple: eaSimple-style generational GA; mu_plus_lambda: parents compete with offspring; "
        "cma_es: DEAP's CMA-ES (population = lambda; selection/crossover/mutation unused); "
        "aging: asynchronous regularized evolution (population = the P most recent members, "
        "selection.tournsize = the sample size; a generation = P results)",
    )
    mode: Literal["reproducible", "greedy"] = _f(
        "reproducible",
        "aging: reproducible (results in job order with a fixed lag: the same search on any number of "
        "workers and after resume) or greedy (results as they arrive: fastest, not reproducible)",
    )
    lag: int = _f(
        8, "aging, reproducible: job k is made once k - lag results are in; keep it >= 2 x workers", min=0,
        max=1_000_000,
    )
    fidelity: Optional[dict] = _f(
        None,
        "aging: multi-fidelity (asynchronous successive halving): {min_budget, max_budget, reduction_factor: 3, "
        "brackets: 1} in the problem's unit (epochs); null: every evaluation at full budget",
    )
    start_from: Optional[str] = _f(
        None,
        "start the search at a genome of an earlier run (fine-tuning, a curriculum): a run directory (its "
        "best/genome.npz) or a genome .npz; cma_es centres its first distribution on it, the GAs put it "
        "into their first population beside random genomes; null: random genomes only",
    )
    sigma: float = _f(0.5, "cma_es: initial step size", min=1e-9)
    eigen_gap: Union[int, Literal["auto"]] = _f(
        "auto",
        "cma_es: generations between two eigendecompositions of the covariance matrix (O(n^3) each; "
        "about 70-125 ms at 627 genes on one core): auto, Hansen's lazy update from 200 genes on (after "
        "more than 0.5 / ((c1 + cmu) n) generations: 5 for 627 genes and population 128, 10 for 64) and "
        "every generation below; 1, every generation (DEAP's own update, the only choice before 2026-12-06); "
        "or a number",
        min=1,
    )
    population: int = _f(128, "population size (mu)", min=2, max=1_000_000)
    offspring: int = _f(0, "offspring per generation (lambda) for mu_plus_lambda; 0 means = population", min=0)
    generations: int = _f(200, "number of generations after the initial one", min=0, max=1_000_000)
    cxpb: float = _f(0.5, "probability that a pair of offspring is mated", min=0.0, max=1.0)
    mutpb: float = _f(0.5, "probability that an offspring is mutated", min=0.0, max=1.0)
    elitism: int = _f(
        1, "simple only: the best N of the hall of fame replace the worst offspring each generation", min=0
    )
    reevaluate: bool = _f(
        True,
        "re-score surviving parents on fresh games each generation (guards against lucky noisy fitness)",
    )
    selection: dict = _f(None, "selection operator: {name: tournament|best|random, ...}", factory=lambda: {"name": "tournament", "tournsize": 3})
    crossover: dict = _f(None, "crossover operator: {name: uniform|blend|sbx|one_point|two_point, ...}", factory=lambda: {"name": "blend", "alpha": 0.3})
    mutation: dict = _f(None, "mutation operator: {name: gaussian|polynomial, ...}", factory=lambda: {"name": "gaussian", "sigma": 0.3, "indpb": 0.1})
    bound: float = _f(5.0, "genes are kept in [-bound, bound]", min=1e-6)
    hall_of_fame: int = _f(10, "hall of fame size", min=1)
    final_games: int = _f(
        256, "games (fresh training seeds) used to pick the final best of the hall of fame", min=1
    )


@dataclass
class ExecutorConfig:
    """Where evaluations run."""

    kind: Literal["local", "processes", "ray"] = _f(
        "local", "local: in this process; processes: a pool of worker processes on this machine (no Ray); "
        "ray: Ray workers on this machine or a cluster"
    )
    workers: int = _f(1, "parallel workers (processes, ray: warm worker processes; local: 1)", min=1, max=100_000)
    address: Optional[str] = _f(
        None, "ray: address of a running cluster (HOST:PORT or 'auto'); null: RAY_ADDRESS, else start Ray locally"
    )
    cpus_per_eval: float = _f(
        1.0, "ray: CPUs reserved by each evaluation task; processes: threads each worker may use "
        "(OMP_NUM_THREADS, NUMBA_NUM_THREADS: int(cpus_per_eval), at least 1)", min=0.0,
    )
    gpus_per_eval: float = _f(
        0.0, "processes, ray: GPUs per evaluation task (0.25 lets four share a GPU; above 1 a whole number); "
        "local: > 0 needs a GPU on this machine", min=0.0,
    )
    eval_timeout_s: Optional[float] = _f(
        None, "processes, ray: a task running longer is cancelled and its evaluations fail; null: no limit",
        min=0.001,
    )
    max_retries: int = _f(3, "processes, ray: retries of a task whose worker died", min=0)
    chunk: int = _f(
        0, "individuals per evaluation task (one vectorized snake batch); 0: split evenly over the workers", min=0
    )


@dataclass
class CheckpointConfig:
    """Checkpoints of the run directory (docs/runs.md): what `evonet resume` continues from."""

    every: int = _f(
        1, "write a checkpoint every N generations (the last generation and Ctrl-C always write one)",
        min=1, max=1_000_000,
    )
    keep: int = _f(2, "checkpoints kept; an older one is deleted only once a newer one is complete", min=1, max=1000)


@dataclass
class StopConfig:
    """Rules that end a run before ga.generations; the reason goes to summary.json and the logbook."""

    target_fitness: Optional[float] = _f(None, "stop once the population's best fitness reaches this; null: off")
    stagnation: Optional[int] = _f(
        None, "stop after N generations without improvement of the best fitness; null: off", min=1, max=1_000_000
    )
    max_seconds: Optional[float] = _f(
        None, "wall-clock budget of the evolution in seconds, all sessions of a run together; null: off", min=0.001
    )
    max_evaluations: Optional[int] = _f(
        None, "evaluation budget (checked after each generation); null: off", min=1
    )
    include_final: bool = _f(
        False, "max_seconds covers the final choice too: an asynchronous search (ga.algorithm: aging) stops "
        "early by the problem's estimate of it (architecture search: the cross-validation of search.final_folds)"
    )


@dataclass
class LogConfig:
    """What a run shows while it runs."""

    progress: Literal["auto", "bar", "lines", "none"] = _f(
        "auto", "bar: one live line (a terminal); lines: a line per generation; auto: bar on a terminal, else lines"
    )
    tensorboard: bool = _f(True, "TensorBoard scalars per generation in RUN_DIR/tensorboard/")


# ----------------------------------------------------------------------------- validation


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        text = " or ".join(_type_name(a) for a in args)
        return f"{text} or null" if len(args) < len(typing.get_args(tp)) else text
    if origin in (list,):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if isinstance(tp, type):
        return {"int": "integer", "float": "number", "str": "string", "bool": "true/false", "dict": "mapping"}.get(
            tp.__name__, tp.__name__
        )
    return str(tp)


def _did_you_mean(key: str, choices) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_value(value, tp, where: str, meta: dict):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = _did_you_mean(str(value), [str(c) for c in choices])
            raise ConfigError(
                f"{where}: unknown value {value!r}{hint}; choose from {', '.join(str(c) for c in choices)}"
            )
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:
            return _check_value(value, others[0], where, meta)
        for arg in others:
            try:
                return _check_value(value, arg, where, meta)
            except ConfigError:
                continue
        names = " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
        raise ConfigError(f"{where}: expected {names}, got {value!r}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        out = [_check_value(v, item_tp, f"{where}[{i}]", {}) for i, v in enumerate(value)]
        if "item_min" in meta:
            for i, v in enumerate(out):
                if v < meta["item_min"]:
                    raise ConfigError(f"{where}[{i}]: must be >= {meta['item_min']}, got {v}")
        return out
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{where}: expected null, got {value!r}")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: must be a finite number, got {value}")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
    elif tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{where}: must be >= {meta['min']}, got {value}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{where}: must be <= {meta['max']}, got {value}")
    return value


def _build(cls, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if not isinstance(key, str) or key not in fields:
            shown = str(key) if str(key).isprintable() and str(key).strip() == str(key) and str(key) else repr(key)
            where = f"{prefix}.{shown}" if prefix else shown
            raise ConfigError(f"{where}: unknown key{_did_you_mean(str(key), fields)}; valid keys: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        where = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _check_value(data[name], hints[name], where, dict(f.metadata))
    return cls(**kwargs)


# ----------------------------------------------------------------------------- problems


@dataclass
class ProblemKind:
    """A genome kind (``genome: NAME``) and how to make its problem.

    ``factory``: ``"module:Class.from_config"`` (imported when a run starts) or a callable
    ``cfg -> Problem``; ``check(cfg)``: cross-checks when the config names this kind;
    ``multi_objective(cfg)``: whether the config asks for several objectives (NSGA-II)."""

    name: str
    doc: str
    factory: Any
    check: Callable[[Any], None] | None = None
    multi_objective: Callable[[Any], bool] | None = None
    #: a module with ``add_commands(sub, bench_sub, parser_class)``: the package's CLI commands
    cli: str | None = None
    #: ``"module:function"``: ``(run_dir, summary) -> markdown lines``, the problem's section of
    #: ``evonet report`` (its best genome's figures)
    report: str | None = None


@dataclass
class Section:
    """A config section a problem package declares (``snake:``, ``search:``, ...), or a
    top-level field of its own (``eval_games``) when ``cls`` is not a dataclass."""

    name: str
    cls: Any
    doc: str
    default: Any = None
    meta: dict = dataclasses.field(default_factory=dict)
    check: Callable[[Any], None] | None = None  # run on every config (e.g. defaults derived from others)


PROBLEM_KINDS: dict[str, ProblemKind] = {}
SECTIONS: dict[str, Section] = {}
_CLASS: dict[tuple, type] = {}
_PLUGINS_LOADED = False


def register_problem(kind: ProblemKind, sections: Sequence[Section] = ()) -> None:
    """Declare a genome kind and the config sections it reads (a section may serve several
    kinds: ``network`` is the weights' and gym's). Problem packages call this on import."""
    for section in sections:
        if section.name in _CORE_FIELDS:
            raise ValueError(f"config section {section.name!r} belongs to the core")
        SECTIONS.setdefault(section.name, section)
    PROBLEM_KINDS[kind.name] = kind


def load_plugins() -> None:
    """Import the problem packages that register genome kinds: evonet's own
    (:mod:`evonet.problems`) and any installed under the ``evonet.problems`` entry point."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    import importlib

    importlib.import_module("evonet.problems")
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="evonet.problems"):
            ep.load()
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not break evonet itself
        import warnings

        warnings.warn(f"an evonet.problems plugin failed to load: {exc}", stacklevel=2)


_CORE_FIELDS = ("name", "seed", "genome", "ga", "executor", "checkpoint", "stop", "log")


def experiment_class() -> type:
    """The ``ExperimentConfig`` dataclass: the core's fields and every registered section."""
    load_plugins()
    key = (tuple(PROBLEM_KINDS), tuple(SECTIONS))
    if key not in _CLASS:
        kinds = tuple(PROBLEM_KINDS) or ("none",)
        genome_doc = "genome kind: " + "; ".join(f"{k.name} = {k.doc}" for k in PROBLEM_KINDS.values())
        fields = [
            ("name", str, _f("snake_weights", "run name; the run directory is runs/NAME-seedS-TIMESTAMP")),
            ("seed", int, _f(0, "run seed: every random draw derives from it", min=0, max=2**32 - 1)),
            ("genome", Literal[kinds], _f(kinds[0], genome_doc)),
        ]
        tops = []
        for sec in SECTIONS.values():
            if dataclasses.is_dataclass(sec.cls):
                fields.append((sec.name, sec.cls, _f(None, sec.doc, factory=sec.cls)))
            else:
                tops.append((sec.name, sec.cls, _f(sec.default, sec.doc, **sec.meta)))
        fields += tops
        fields += [
            ("ga", GAConfig, _f(None, "the evolutionary algorithm", factory=GAConfig)),
            ("executor", ExecutorConfig, _f(None, "where evaluations run", factory=ExecutorConfig)),
            ("checkpoint", CheckpointConfig, _f(None, "checkpoints (evonet resume)", factory=CheckpointConfig)),
            ("stop", StopConfig, _f(None, "early stopping rules", factory=StopConfig)),
            ("log", LogConfig, _f(None, "progress display and TensorBoard", factory=LogConfig)),
        ]
        cls = dataclasses.make_dataclass("ExperimentConfig", fields)
        cls.__module__ = __name__
        cls.__doc__ = "A complete, runnable experiment (``evonet run FILE``): the core's sections and the problems'."
        _CLASS[key] = cls
    return _CLASS[key]


def __getattr__(name: str):
    if name == "ExperimentConfig":
        return experiment_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_problem(cfg):
    """The problem an experiment config describes (its genome kind's factory)."""
    load_plugins()
    kind = PROBLEM_KINDS.get(cfg.genome)
    if kind is None:
        raise ConfigError(f"genome: unknown kind {cfg.genome!r}")
    factory = kind.factory
    if isinstance(factory, str):
        import importlib

        module, _, attr = factory.partition(":")
        factory = importlib.import_module(module)
        for part in attr.split("."):
            factory = getattr(factory, part)
    return factory(cfg)


def _cross_checks(cfg) -> None:
    if not cfg.name or not cfg.name.isprintable() or any(c in cfg.name for c in "/\\") or cfg.name in (".", ".."):
        raise ConfigError(f"name: must be a non-empty printable name without / or \\ (it names the run directory), "
                          f"got {cfg.name!r}")
    from evonet.strategies.operators import validate_operator

    cfg.ga.selection = validate_operator("selection", cfg.ga.selection, "ga.selection")
    cfg.ga.crossover = validate_operator("crossover", cfg.ga.crossover, "ga.crossover")
    cfg.ga.mutation = validate_operator("mutation", cfg.ga.mutation, "ga.mutation")
    kind = PROBLEM_KINDS[cfg.genome]
    multi = bool(kind.multi_objective and kind.multi_objective(cfg))
    if cfg.ga.selection["name"] == "nsga2" and not multi:
        multis = ", ".join(k.name for k in PROBLEM_KINDS.values() if k.multi_objective) or "none registered"
        raise ConfigError(f"ga.selection.name: nsga2 needs a multi-objective genome (genome: {cfg.genome} "
                          f"is single-objective here; multi-objective kinds: {multis}); use tournament, best or random")
    if kind.check is not None:
        kind.check(cfg)
    if cfg.ga.algorithm == "simple" and cfg.ga.elitism >= cfg.ga.population:
        raise ConfigError(f"ga.elitism: must be < ga.population ({cfg.ga.population}), got {cfg.ga.elitism}")
    if cfg.ga.elitism > cfg.ga.hall_of_fame:
        raise ConfigError(f"ga.elitism: must be <= ga.hall_of_fame ({cfg.ga.hall_of_fame}), got {cfg.ga.elitism}")
    for section in SECTIONS.values():
        if section.check is not None:
            section.check(cfg)
    if cfg.ga.algorithm == "mu_plus_lambda" and cfg.ga.cxpb + cfg.ga.mutpb > 1.0:
        raise ConfigError(
            f"ga.cxpb: mu_plus_lambda needs cxpb + mutpb <= 1, got {cfg.ga.cxpb} + {cfg.ga.mutpb}"
        )
    check_async(cfg)
    if cfg.stop.include_final:
        if cfg.stop.max_seconds is None:
            raise ConfigError("stop.include_final: needs stop.max_seconds (the budget the final choice counts in)")
        if cfg.ga.algorithm != "aging":
            raise ConfigError(f"stop.include_final: needs ga.algorithm: aging (the {cfg.ga.algorithm} loop checks "
                              f"its budget only between generations)")
    if cfg.ga.selection["name"] == "tournament":
        if cfg.ga.selection["tournsize"] > cfg.ga.population:
            raise ConfigError(
                f"ga.selection.tournsize: must be <= ga.population ({cfg.ga.population}), got {cfg.ga.selection['tournsize']}"
            )


FIDELITY_KEYS = {"min_budget": None, "max_budget": None, "reduction_factor": 3.0, "brackets": 1}


def check_async(cfg) -> None:
    """The asynchronous strategy's settings and the rung schedule (``ga.fidelity``), completed
    with their defaults; what only the problem knows (its budget unit and limit) is checked by
    :func:`check_fidelity` when the problem exists."""
    ga = cfg.ga
    if ga.algorithm != "aging":
        if ga.fidelity is not None:
            raise ConfigError(f"ga.fidelity: multi-fidelity needs ga.algorithm: aging (got {ga.algorithm})")
        return
    if ga.selection["name"] not in ("tournament", "random"):
        raise ConfigError(f"ga.selection.name: aging evolution samples a tournament (tournament or random), "
                          f"got {ga.selection['name']}")
    kind = PROBLEM_KINDS[cfg.genome]
    if kind.multi_objective and kind.multi_objective(cfg):
        raise ConfigError("ga.algorithm: aging evolution is single-objective; a multi-objective search needs "
                          "mu_plus_lambda with nsga2")
    if cfg.executor.chunk > 1:
        raise ConfigError(f"executor.chunk: aging evolution sends one genome per task, got {cfg.executor.chunk}")
    if ga.fidelity is None:
        return
    if not isinstance(ga.fidelity, dict):
        raise ConfigError(f"ga.fidelity: expected a mapping {{min_budget, max_budget, reduction_factor, brackets}}, "
                          f"got {ga.fidelity!r}")
    unknown = sorted(set(ga.fidelity) - set(FIDELITY_KEYS))
    if unknown:
        raise ConfigError(f"ga.fidelity.{unknown[0]}: unknown key{_did_you_mean(unknown[0], FIDELITY_KEYS)}; "
                          f"keys: {', '.join(FIDELITY_KEYS)}")
    fid = {**FIDELITY_KEYS, **ga.fidelity}
    for key in FIDELITY_KEYS:
        v = fid[key]
        if v is None:
            raise ConfigError(f"ga.fidelity.{key}: required (a number in the problem's budget unit)")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise ConfigError(f"ga.fidelity.{key}: expected a number, got {v!r}")
    if fid["reduction_factor"] <= 1:
        raise ConfigError(f"ga.fidelity.reduction_factor: must be > 1 (each rung keeps 1/reduction_factor), "
                          f"got {fid['reduction_factor']}")
    if fid["min_budget"] <= 0:
        raise ConfigError(f"ga.fidelity.min_budget: must be > 0, got {fid['min_budget']}")
    if fid["min_budget"] > fid["max_budget"]:
        raise ConfigError(f"ga.fidelity.min_budget: {fid['min_budget']} is above ga.fidelity.max_budget "
                          f"{fid['max_budget']}")
    if fid["brackets"] != int(fid["brackets"]) or fid["brackets"] < 1:
        raise ConfigError(f"ga.fidelity.brackets: must be a whole number >= 1, got {fid['brackets']}")
    ga.fidelity = fid


def check_fidelity(cfg, problem) -> None:
    """``ga.fidelity`` against the problem: it must have a budget unit, whole budgets where the
    unit needs them, and a ``max_budget`` within the problem's limit (one-line ConfigError)."""
    fid = cfg.ga.fidelity
    if fid is None:
        return
    unit = problem.fidelity_unit
    if unit is None:
        raise ConfigError(f"ga.fidelity: {type(problem).__name__} ({cfg.genome}) has no evaluation budget to "
                          "cut (multi-fidelity trains networks for epochs: architecture search with validation "
                          "accuracy); remove ga.fidelity")
    if problem.fidelity_integer:
        for key in ("min_budget", "max_budget"):
            if fid[key] != int(fid[key]):
                raise ConfigError(f"ga.fidelity.{key}: budgets are whole {unit}, got {fid[key]}")
    limit = problem.fidelity_limit()
    if limit is not None and fid["max_budget"] > limit:
        where = f" ({problem.fidelity_limit_field})" if problem.fidelity_limit_field else ""
        raise ConfigError(f"ga.fidelity.max_budget: {fid['max_budget']:g} {unit} is above the problem's limit, "
                          f"{limit:g}{where}")


def resolve_algorithm(cfg, problem):
    """``(config, was_auto)``: for ``ga.algorithm: auto``, a copy of ``cfg`` naming the strategy
    it means for ``problem`` (CMA-ES for a continuous genome of at most
    :data:`CMA_ES_MAX_GENES` genes, else ``mu_plus_lambda``), checked again for the settings
    that depend on the algorithm; any other config unchanged."""
    if cfg.ga.algorithm != "auto":
        return cfg, False
    cfg = copy.deepcopy(cfg)
    continuous = problem.continuous
    cfg.ga.algorithm = "cma_es" if continuous and int(problem.n_genes) <= CMA_ES_MAX_GENES else "mu_plus_lambda"
    try:
        _cross_checks(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{_one_line(exc)} (ga.algorithm: auto chose {cfg.ga.algorithm})") from None
    return cfg, True


def auto_reason(cfg, problem) -> str:
    """Why ``auto`` chose ``cfg.ga.algorithm`` (for the run's first line)."""
    if cfg.ga.algorithm == "cma_es":
        return f"auto: {problem.n_genes} real genes"
    if problem.continuous:
        return f"auto: {problem.n_genes} genes > {CMA_ES_MAX_GENES} for CMA-ES"
    return "auto: not a real-valued genome"


def from_dict(data: Any):
    """Validate a plain mapping (as read from YAML) into an :class:`ExperimentConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(data).__name__}")
    try:
        cfg = _build(experiment_class(), data)
        _cross_checks(cfg)
    except ConfigError as exc:
        message = str(exc)
        if "\n" in message or "\r" in message:  # a value or key with a line break, echoed back
            raise ConfigError(_one_line(exc)) from None
        raise
    return cfg


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"ga.population=64"`` -> (["ga", "population"], 64); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. ga.population=64")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text}: value is not valid YAML ({_one_line(exc)})") from None
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``--set`` overrides to a raw config mapping (validation comes after)."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text}: {'.'.join(path[: i + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return data


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


#: the experiments shipped inside the package (``evonet run NAME`` runs one by name)
SHIPPED_EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def shipped_experiments() -> dict[str, Path]:
    """Name -> file of every experiment shipped with evonet (package data)."""
    return {p.stem: p for p in sorted(SHIPPED_EXPERIMENTS.glob("*.yaml"))}


def resolve_experiment(path: str | Path) -> Path:
    """A config file as given, else a shipped experiment by name (``digits_search`` or
    ``experiments/digits_search.yaml`` from any directory); a ConfigError names the closest."""
    p = Path(path)
    if p.is_file():
        return p
    shipped = shipped_experiments()
    stem = p.name[:-5] if p.name.endswith(".yaml") else p.name
    if stem in shipped and (len(p.parts) == 1 or p.parent.name == "experiments"):
        return shipped[stem]
    close = difflib.get_close_matches(stem, list(shipped), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{path}: no such config file or shipped experiment{hint}; shipped: {', '.join(shipped)}")


def read_yaml(path: str | Path) -> Any:
    path = resolve_experiment(path)
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or _one_line(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None


def load(path: str | Path | None, overrides: list[str] | None = None):
    """Read, override and validate an experiment config (``path=None``: the defaults)."""
    data = read_yaml(path) if path is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    data = apply_overrides(data, list(overrides or []))
    return from_dict(data)


def dump_yaml(cfg) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def describe(cls=None, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, doc) for every field, nested sections flattened."""
    cls = experiment_class() if cls is None else cls
    rows = []
    hints = typing.get_type_hints(cls)
    instance = cls()
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, key + "."))
            continue
        rows.append((key, _type_name(tp), repr(getattr(instance, f.name)), f.metadata.get("doc", "")))
    return rows
