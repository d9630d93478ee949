"""DEAP selection, crossover and mutation operators, configured by name.

Experiment configs name operators as mappings, e.g. ``{"name": "sbx", "eta": 15}``.
:data:`OPERATORS` describes every operator and its parameters (type, default, allowed
range, one-line doc); :func:`validate_operator` checks a mapping against it and fills
in defaults; :func:`register_operators` registers the chosen ones on a DEAP toolbox as
``select``, ``mate`` and ``mutate``. The operators themselves are DEAP's
(``deap.tools``); crossover and mutation are wrapped so that every gene stays in the
search box ``[low, up]``.

Randomness: DEAP's operators draw from Python's global :mod:`random` module. Run them
inside :func:`deap_random`, which seeds that module from an explicit
``numpy.random.Generator`` and restores its previous state afterwards::

    with deap_random(rng):
        offspring = toolbox.select(population, len(population))
        child1, child2 = toolbox.mate(toolbox.clone(a), toolbox.clone(b))

Individuals are ``list`` subclasses of floats made by :func:`individual_class`.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from deap import base, creator, tools

from evonet.core.errors import ConfigError

__all__ = [
    "KINDS",
    "OPERATORS",
    "Param",
    "OperatorInfo",
    "validate_operator",
    "register_operators",
    "clip_genes",
    "individual_class",
    "population_from_array",
    "population_to_array",
    "deap_random",
    "describe_operators",
]

KINDS = ("selection", "crossover", "mutation")


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Param:
    """One parameter of an operator.

    ``type`` is ``int``, ``float`` or ``str``. Numbers must lie in the range given by
    ``low``/``high`` (``None`` = unbounded; ``low_open``/``high_open`` make the bound
    strict); strings must be one of ``choices``. Floats must be finite.
    """

    name: str
    type: type
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None

    def range_text(self) -> str:
        """The allowed values in words, e.g. ``"> 0"``, ``"in [0, 1]"``, ``"standard|log"``."""
        if self.choices is not None:
            return "|".join(self.choices)
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return "any finite number" if self.type is not str else "any string"

    def check(self, value: Any, where: str) -> Any:
        """``value`` converted to the parameter's type, or :class:`ConfigError` naming ``where``."""
        if self.type is str:
            if not isinstance(value, str):
                raise ConfigError(f"{where}: expected a string, got {_show(value)}")
            if self.choices is not None and value not in self.choices:
                raise ConfigError(
                    f"{where}: unknown value {value!r}{_did_you_mean(value, self.choices)}; choose from {', '.join(self.choices)}"
                )
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            kind = "an integer" if self.type is int else "a number"
            raise ConfigError(f"{where}: expected {kind}, got {_show(value)}")
        given = value
        if self.type is int:
            if isinstance(value, (float, np.floating)):
                if not float(value).is_integer():
                    raise ConfigError(f"{where}: expected an integer, got {_show(value)}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{where}: must be a finite number, got {_show(given)}")
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise ConfigError(f"{where}: must be {self.range_text()}, got {_show(given)}")
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            raise ConfigError(f"{where}: must be {self.range_text()}, got {_show(given)}")
        return value


@dataclass(frozen=True)
class OperatorInfo:
    """A named operator: the DEAP function it runs and the parameters it takes.

    ``bounded`` operators also receive the search box as DEAP's ``low``/``up`` arguments
    (from :func:`register_operators`, not from the config).
    """

    kind: str
    name: str
    function: Callable[..., Any]
    doc: str
    params: tuple[Param, ...] = field(default_factory=tuple)
    bounded: bool = False

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _show(value: Any) -> str:
    """A config value as the user wrote it: numbers plain, strings quoted, others typed."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return str(value)
    return f"{type(value).__name__} {value!r}"


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_INDPB_GENE = Param("indpb", float, 0.1, "probability that each gene is mutated", low=0.0, high=1.0)

OPERATORS: dict[str, dict[str, OperatorInfo]] = {
    "selection": {
        op.name: op
        for op in (
            OperatorInfo(
                "selection",
                "tournament",
                tools.selTournament,
                "k tournaments; each picks the fittest of tournsize individuals drawn with replacement",
                (Param("tournsize", int, 3, "individuals per tournament (1 = random selection)", low=1),),
            ),
            OperatorInfo("selection", "best", tools.selBest, "elitist truncation: the k fittest individuals"),
            OperatorInfo("selection", "random", tools.selRandom, "k individuals uniformly at random, with replacement"),
            OperatorInfo(
                "selection",
                "nsga2",
                tools.selNSGA2,
                "NSGA-II non-dominated sorting and crowding distance (multi-objective fitness)",
                (Param("nd", str, "standard", "non-dominated sorting algorithm", choices=("standard", "log")),),
            ),
        )
    },
    "crossover": {
        op.name: op
        for op in (
            OperatorInfo(
                "crossover",
                "uniform",
                tools.cxUniform,
                "swap each gene between the two parents with probability indpb",
                (Param("indpb", float, 0.5, "probability that each gene is swapped", low=0.0, high=1.0),),
            ),
            OperatorInfo(
                "crossover",
                "blend",
                tools.cxBlend,
                "BLX-alpha: each child gene is drawn around the parents' genes, extended by alpha",
                (Param("alpha", float, 0.5, "extent of the interval beyond the parents' genes", low=0.0),),
            ),
            OperatorInfo(
                "crossover",
                "sbx",
                tools.cxSimulatedBinaryBounded,
                "simulated binary crossover (NSGA-II, bounded by the search box)",
                (Param("eta", float, 20.0, "crowding degree: larger = children closer to parents", low=0.0, low_open=True),),
                bounded=True,
            ),
            OperatorInfo("crossover", "one_point", tools.cxOnePoint, "swap the tails after one random cut point"),
            OperatorInfo("crossover", "two_point", tools.cxTwoPoint, "swap the segment between two random cut points"),
        )
    },
    "mutation": {
        op.name: op
        for op in (
            OperatorInfo(
                "mutation",
                "gaussian",
                tools.mutGaussian,
                "add N(mu, sigma) noise to each gene with probability indpb",
                (
                    Param("mu", float, 0.0, "mean of the added noise"),
                    Param("sigma", float, 0.3, "standard deviation of the added noise", low=0.0, low_open=True),
                    _INDPB_GENE,
                ),
            ),
            OperatorInfo(
                "mutation",
                "polynomial",
                tools.mutPolynomialBounded,
                "polynomial mutation (NSGA-II, bounded by the search box) of each gene with probability indpb",
                (
                    Param("eta", float, 20.0, "crowding degree: larger = mutants closer to the parent", low=0.0, low_open=True),
                    _INDPB_GENE,
                ),
                bounded=True,
            ),
        )
    },
}


def describe_operators() -> str:
    """Human-readable list of every operator and its parameters (for docs and ``--help``)."""
    lines = []
    for kind, ops in OPERATORS.items():
        lines.append(f"{kind}:")
        for op in ops.values():
            lines.append(f"  {op.name}: {op.doc}")
            for p in op.params:
                lines.append(f"    {p.name} ({p.type.__name__}, default {p.default!r}, {p.range_text()}): {p.doc}")
    return "\n".join(lines)


def validate_operator(kind: str, spec: dict | str, where: str) -> dict:
    """The complete parameter dict of an operator mapping, defaults filled in.

    Args:
        kind: ``"selection"``, ``"crossover"`` or ``"mutation"``.
        spec: ``{"name": NAME, PARAM: VALUE, ...}``; a bare string is read as ``{"name": spec}``.
        where: the config path of ``spec`` used in messages, e.g. ``"ga.crossover"``.

    Returns:
        ``{"name": NAME, **params}`` with every parameter of the operator, in registry
        order, converted to its declared type.

    Raises:
        ConfigError: one line naming the offending field, e.g.
            ``ga.crossover.eta: must be > 0, got -1``.
    """
    if kind not in OPERATORS:
        raise ValueError(f"unknown operator kind {kind!r}; choose from {', '.join(KINDS)}")
    ops = OPERATORS[kind]
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping like {{name: {next(iter(ops))}}}, got {_show(spec)}")
    if "name" not in spec:
        raise ConfigError(f"{where}.name: missing; choose from {', '.join(ops)}")
    name = spec["name"]
    if not isinstance(name, str):
        raise ConfigError(f"{where}.name: expected a string, got {_show(name)}; choose from {', '.join(ops)}")
    if name not in ops:
        raise ConfigError(f"{where}.name: unknown {kind} {name!r}{_did_you_mean(name, ops)}; choose from {', '.join(ops)}")
    op = ops[name]
    valid = [p.name for p in op.params]
    for key in spec:
        if key == "name":
            continue
        if key not in valid:
            hint = _did_you_mean(str(key), valid)
            rest = f"valid parameters: {', '.join(valid)}" if valid else f"{name} takes no parameters"
            shown = key if isinstance(key, str) and key.isprintable() and key.strip() == key and key else repr(key)
            raise ConfigError(f"{where}.{shown}: unknown parameter of {kind} {name!r}{hint}; {rest}")
    out: dict[str, Any] = {"name": name}
    for p in op.params:
        out[p.name] = p.check(spec[p.name], f"{where}.{p.name}") if p.name in spec else p.default
    return out


# ----------------------------------------------------------------------------- toolbox


def clip_genes(individual: list, low: float, up: float) -> list:
    """Clip every gene of ``individual`` into ``[low, up]`` in place; returns it."""
    for i, x in enumerate(individual):
        if x < low:
            individual[i] = low
        elif x > up:
            individual[i] = up
    return individual


def _check_box(low: float, up: float) -> tuple[float, float]:
    low, up = float(low), float(up)
    if not (math.isfinite(low) and math.isfinite(up) and low < up):
        raise ValueError(f"the search box needs finite low < up, got [{low}, {up}]")
    return low, up


def _make_mate(op: OperatorInfo, params: dict, low: float, up: float) -> Callable[[list, list], tuple[list, list]]:
    kwargs = dict(params, low=low, up=up) if op.bounded else dict(params)
    fn = op.function
    needs_two = op.name in ("one_point", "two_point")

    def mate(ind1: list, ind2: list) -> tuple[list, list]:
        clip_genes(ind1, low, up)  # bounded DEAP operators misbehave outside the box
        clip_genes(ind2, low, up)
        if not (needs_two and min(len(ind1), len(ind2)) < 2):
            fn(ind1, ind2, **kwargs)
        return clip_genes(ind1, low, up), clip_genes(ind2, low, up)

    mate.__name__ = f"{fn.__name__}_clipped"
    mate.__doc__ = f"{op.doc}; genes clipped into [{low}, {up}]. Modifies both parents in place."
    return mate


def _make_mutate(op: OperatorInfo, params: dict, low: float, up: float) -> Callable[[list], tuple[list]]:
    kwargs = dict(params, low=low, up=up) if op.bounded else dict(params)
    fn = op.function

    def mutate(ind: list) -> tuple[list]:
        clip_genes(ind, low, up)
        fn(ind, **kwargs)
        return (clip_genes(ind, low, up),)

    mutate.__name__ = f"{fn.__name__}_clipped"
    mutate.__doc__ = f"{op.doc}; genes clipped into [{low}, {up}]. Modifies the individual in place."
    return mutate


def register_operators(
    toolbox: base.Toolbox,
    selection: dict,
    crossover: dict,
    mutation: dict,
    low: float,
    up: float,
) -> base.Toolbox:
    """Register ``toolbox.select``, ``toolbox.mate`` and ``toolbox.mutate``.

    The three mappings are validated with :func:`validate_operator` (so raw config
    mappings work too). ``select(population, k)`` returns references (clone before
    varying); ``mate(ind1, ind2)`` and ``mutate(ind)`` modify their arguments in place,
    return them as DEAP does (a pair / a 1-tuple), and clip every gene into
    ``[low, up]`` before and after the DEAP operator, so genes always stay in the box,
    also for ``blend`` and ``gaussian``; ``sbx`` and ``polynomial`` get ``[low, up]`` as
    their bounds.

    Fitness: like DEAP's own operators these wrappers do *not* touch ``.fitness``; the
    caller invalidates it (``del child.fitness.values``) for every individual that was
    mated or mutated, as :func:`deap.algorithms.varAnd` / ``varOr`` do.

    Randomness: call the registered operators inside :func:`deap_random`.
    """
    low, up = _check_box(low, up)
    sel = validate_operator("selection", selection, "selection")
    cx = validate_operator("crossover", crossover, "crossover")
    mut = validate_operator("mutation", mutation, "mutation")
    sel_op = OPERATORS["selection"][sel["name"]]
    toolbox.register("select", sel_op.function, **{k: v for k, v in sel.items() if k != "name"})
    toolbox.register("mate", _make_mate(OPERATORS["crossover"][cx["name"]], {k: v for k, v in cx.items() if k != "name"}, low, up))
    toolbox.register(
        "mutate", _make_mutate(OPERATORS["mutation"][mut["name"]], {k: v for k, v in mut.items() if k != "name"}, low, up)
    )
    return toolbox


# ----------------------------------------------------------------------------- individuals


def _weights_code(weights: Sequence[float]) -> str:
    def one(w: float) -> str:
        s = _num(abs(w)).replace(".", "_")
        return ("p" if w >= 0 else "m") + s

    return "_".join(one(w) for w in weights)


def individual_class(n_objectives: int = 1, weights: Sequence[float] | None = None) -> type:
    """The ``deap.creator`` individual class (a ``list`` of floats with ``.fitness``).

    ``weights`` are DEAP fitness weights (+ maximise, - minimise), by default ``1.0``
    for each of ``n_objectives``. The single-objective maximising class is
    ``creator.WeightIndividual`` (fitness ``creator.EvonetFitnessMax``); others get the
    weights encoded in their names. Classes are created once per process and reused,
    so calling this repeatedly emits no DEAP re-creation warning.

    Processes that unpickle individuals (workers) must call this too before unpickling,
    since pickles refer to the class as ``deap.creator.<name>``.
    """
    if weights is None:
        if n_objectives < 1:
            raise ValueError(f"n_objectives must be >= 1, got {n_objectives}")
        weights = (1.0,) * n_objectives
    weights = tuple(float(w) for w in weights)
    if len(weights) != n_objectives:
        raise ValueError(f"expected {n_objectives} fitness weights, got {len(weights)}")
    if not all(math.isfinite(w) and w != 0 for w in weights):
        raise ValueError(f"fitness weights must be finite and non-zero, got {weights}")
    if weights == (1.0,):
        fit_name, ind_name = "EvonetFitnessMax", "WeightIndividual"
    else:
        code = _weights_code(weights)
        fit_name, ind_name = f"EvonetFitness_{code}", f"WeightIndividual_{code}"
    fitness = getattr(creator, fit_name, None)
    if fitness is None:
        creator.create(fit_name, base.Fitness, weights=weights)
        fitness = getattr(creator, fit_name)
    elif tuple(fitness.weights) != weights:
        raise RuntimeError(f"deap.creator.{fit_name} exists with weights {fitness.weights}, expected {weights}")
    cls = getattr(creator, ind_name, None)
    if cls is None:
        creator.create(ind_name, list, fitness=fitness)
        cls = getattr(creator, ind_name)
    elif not (issubclass(cls, list) and tuple(cls().fitness.weights) == weights):
        raise RuntimeError(f"deap.creator.{ind_name} exists but is not a list with fitness weights {weights}")
    return cls


def population_from_array(cls: type, genes: np.ndarray) -> list:
    """One individual of class ``cls`` per row of ``genes`` (shape (P, n)), as Python floats."""
    genes = np.asarray(genes)
    if genes.ndim != 2:
        raise ValueError(f"expected a (P, n) array of genes, got shape {genes.shape}")
    return [cls(row) for row in genes.astype(np.float64).tolist()]


def population_to_array(population: Sequence[Sequence[float]]) -> np.ndarray:
    """The genes of ``population`` as a (P, n) float32 array (for :func:`evonet.nn.unflatten`)."""
    return np.asarray(population, dtype=np.float32).reshape(len(population), -1)


# ----------------------------------------------------------------------------- randomness


@contextlib.contextmanager
def deap_random(rng: np.random.Generator) -> Iterator[int]:
    """Run DEAP operators on a global :mod:`random` seeded from ``rng``.

    Saves the state of Python's global ``random`` generator, seeds it with one 64-bit
    draw of ``rng`` (yielded, for logging), and restores the saved state on exit, even
    on error. The same ``rng`` state therefore gives the same operator results, and code
    outside the block sees the global ``random`` untouched. Not thread-safe: the global
    generator is shared by the whole process.
    """
    seed = int(rng.integers(0, 2**63, dtype=np.int64))
    saved = random.getstate()
    try:
        random.seed(seed)
        yield seed
    finally:
        random.setstate(saved)
