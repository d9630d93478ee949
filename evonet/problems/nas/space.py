"""Declarative search spaces: typed genes, conditions, and a float encoding for DEAP.

A search space is a YAML file (``search_spaces/*.yaml``, format in ``docs/search.md``)::

    name: dense_classifier
    model: mlp                       # which builder turns a genome into a network
    genes:
      n_layers: {type: int, low: 1, high: 4, default: 2}
      units_1:  {type: int, low: 16, high: 512, log: true, default: 128}
      units_2:  {type: int, low: 16, high: 512, log: true, default: 64, when: {gene: n_layers, min: 2}}
      activation: {type: choice, values: [relu, elu, tanh], default: relu}
      learning_rate: {type: float, low: 1.0e-4, high: 0.1, log: true, default: 0.001}
      batch_norm: {type: bool, default: false}
      momentum: {type: float, low: 0.0, high: 0.99, default: 0.9, when: {gene: optimizer, in: [sgd]}}

Gene types: ``int`` and ``float`` (inclusive ``low``/``high``, ``log: true`` for a
log-uniform scale), ``choice`` (a non-empty list of ``values``), ``bool``. ``when`` makes a
gene conditional on a gene declared *before* it: ``{gene: G, min: N}`` / ``max`` (numeric)
or ``{gene: G, in: [values]}``; a gene whose parent is inactive is inactive too.

The encoding (how DEAP evolves these genomes): every gene is one float in [0, 1], so the
existing :class:`~evonet.strategy.GeneticAlgorithm` and its float operators (crossover,
mutation, clipping into [0, 1]) work unchanged. :meth:`SearchSpace.decode` maps each float to
a typed value (ints by equal-width bucket, or rounded on a log scale; floats linearly or
log-scaled, rounded to ``FLOAT_DIGITS`` significant digits; choices by bucket; bools at
0.5), so *every* vector in [0, 1]^n is a valid genome, and any crossover or mutation leaves
a valid genome. Inactive genes keep their floats (they can become active again later),
but the :meth:`canonical` form drops them; :meth:`genome_hash` hashes the canonical form,
so two vectors that train the same network share one hash (the evaluation cache's key).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from evonet.core.errors import ConfigError

#: Significant digits kept by decoded float genes (and so by the canonical form).
FLOAT_DIGITS = 3
GENE_TYPES = ("int", "float", "choice", "bool")
MODELS = ("mlp", "cnn")
_GENE_KEYS = {
    "int": {"type", "low", "high", "log", "default", "when", "doc"},
    "float": {"type", "low", "high", "log", "default", "when", "doc"},
    "choice": {"type", "values", "default", "when", "doc"},
    "bool": {"type", "default", "when", "doc"},
}


def _round_sig(x: float, digits: int = FLOAT_DIGITS) -> float:
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits}g}")


@dataclass(frozen=True)
class Condition:
    """Active when gene ``gene`` is active and its value is in ``values`` / within [min, max]."""

    gene: str
    min: float | None = None
    max: float | None = None
    values: tuple | None = None

    def holds(self, value: Any) -> bool:
        if self.values is not None:
            return value in self.values
        if self.min is not None and value < self.min:
            return False
        if self.max is not None and value > self.max:
            return False
        return True

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"gene": self.gene}
        if self.values is not None:
            out["in"] = list(self.values)
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        return out


@dataclass(frozen=True)
class Gene:
    """One typed gene. ``low``/``high`` are inclusive; ``values`` for choices."""

    name: str
    type: str
    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple = ()
    when: Condition | None = None
    doc: str = ""

    # -- float <-> value ------------------------------------------------------------

    def decode(self, u: float) -> Any:
        """The typed value of the float ``u`` (clipped into [0, 1])."""
        u = min(1.0, max(0.0, float(u))) if math.isfinite(u) else 0.0
        if self.type == "bool":
            return u >= 0.5
        if self.type == "choice":
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        if self.type == "int":
            lo, hi = int(self.low), int(self.high)
            if self.log:
                v = int(round(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))))
            else:
                v = lo + int(u * (hi - lo + 1))
            return min(hi, max(lo, v))
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        return min(float(self.high), max(float(self.low), _round_sig(v)))

    def encode(self, value: Any) -> float:
        """A float in [0, 1] that decodes to ``value`` (the middle of its bucket)."""
        if self.type == "bool":
            return 0.75 if value else 0.25
        if self.type == "choice":
            return (self.values.index(value) + 0.5) / len(self.values)
        if self.type == "int":
            lo, hi = int(self.low), int(self.high)
            if hi == lo:
                return 0.5
            if self.log:
                return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
            return (int(value) - lo + 0.5) / (hi - lo + 1)
        if self.high == self.low:
            return 0.5
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (float(value) - self.low) / (self.high - self.low)

    def check_value(self, value: Any, where: str) -> Any:
        """``value`` if it is a valid value of this gene, else :class:`ConfigError`."""
        if self.type == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: expected true or false, got {value!r}")
            return value
        if self.type == "choice":
            if value not in self.values:
                raise ConfigError(f"{where}: {value!r} is not one of {list(self.values)}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if self.type == "int" and not float(value).is_integer():
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if not (self.low <= value <= self.high):
            raise ConfigError(f"{where}: must be in [{self.low}, {self.high}], got {value!r}")
        return int(value) if self.type == "int" else float(value)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"type": self.type}
        if self.type in ("int", "float"):
            out.update(low=self.low, high=self.high)
            if self.log:
                out["log"] = True
        if self.type == "choice":
            out["values"] = list(self.values)
        out["default"] = self.default
        if self.when is not None:
            out["when"] = self.when.to_dict()
        if self.doc:
            out["doc"] = self.doc
        return out


@dataclass
class SearchSpace:
    """An ordered set of genes; genomes are float vectors in [0, 1]^n (see the module doc)."""

    name: str
    model: str
    genes: list[Gene]
    description: str = ""
    source: str = "<space>"
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.index = {g.name: i for i, g in enumerate(self.genes)}

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    def __contains__(self, name: str) -> bool:
        return name in self.index

    # -- genomes ---------------------------------------------------------------------

    def sample(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """Random encoded genomes, uniform in [0, 1]^n (log genes are log-uniform)."""
        return rng.random((1 if n is None else n, self.n_genes))[0 if n is None else slice(None)]

    def decode(self, vector: Sequence[float]) -> dict[str, Any]:
        """Every gene's typed value, active or not (inactive genes included)."""
        vector = np.asarray(vector, dtype=np.float64).reshape(-1)
        if vector.size != self.n_genes:
            raise ValueError(f"{self.source}: expected a genome of {self.n_genes} genes, got {vector.size}")
        return {g.name: g.decode(u) for g, u in zip(self.genes, vector)}

    def active(self, values: dict[str, Any]) -> dict[str, bool]:
        """Which genes are active for these values (parents are declared first)."""
        out: dict[str, bool] = {}
        for g in self.genes:
            c = g.when
            out[g.name] = c is None or (out[c.gene] and values.get(c.gene) is not None and c.holds(values[c.gene]))
        return out

    def canonical(self, genome: Sequence[float] | dict) -> dict[str, Any]:
        """The active genes' typed values, in declaration order (inactive genes dropped).

        ``genome`` is an encoded vector or a value mapping (missing genes take their default).
        """
        values = self.decode(genome) if not isinstance(genome, dict) else self.complete(genome)
        act = self.active(values)
        return {g.name: values[g.name] for g in self.genes if act[g.name]}

    def complete(self, values: dict[str, Any], where: str | None = None) -> dict[str, Any]:
        """``values`` checked, unknown keys rejected, missing genes filled with defaults."""
        where = where or self.source
        for key in values:
            if key not in self.index:
                raise ConfigError(f"{where}: unknown gene {key!r} of search space {self.name!r}")
        return {g.name: g.check_value(values[g.name], f"{where}.{g.name}") if g.name in values else g.default
                for g in self.genes}

    def encode(self, values: dict[str, Any]) -> np.ndarray:
        """A float vector that decodes to ``values`` (missing genes: their defaults)."""
        full = self.complete(values)
        return np.array([g.encode(full[g.name]) for g in self.genes], dtype=np.float64)

    def defaults(self) -> dict[str, Any]:
        return self.canonical({})

    def genome_hash(self, genome: Sequence[float] | dict) -> str:
        """A stable 16-hex-digit hash of the canonical form (the evaluation cache key)."""
        return canonical_hash(self.canonical(genome))

    # -- JSON ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model, "description": self.description,
                "genes": {g.name: g.to_dict() for g in self.genes}}

    @classmethod
    def from_dict(cls, data: Any, source: str = "<space>") -> "SearchSpace":
        return _parse(data, source)

    @classmethod
    def load(cls, path: str | Path) -> "SearchSpace":
        """Read and validate a search space YAML file (errors name the file and the field)."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such search space file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
        return _parse(data, str(path))


def canonical_hash(canonical: dict) -> str:
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- parsing


def _num(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return value


def _parse_gene(name: str, spec: Any, where: str, earlier: dict[str, Gene]) -> Gene:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping like {{type: int, low: 1, high: 4}}, got {spec!r}")
    kind = spec.get("type")
    if kind not in GENE_TYPES:
        raise ConfigError(f"{where}.type: unknown gene type {kind!r}; choose from {', '.join(GENE_TYPES)}")
    for key in spec:
        if key not in _GENE_KEYS[kind]:
            raise ConfigError(f"{where}.{key}: unknown key for a {kind} gene; valid keys: {', '.join(sorted(_GENE_KEYS[kind]))}")
    low = high = None
    log = False
    values: tuple = ()
    if kind in ("int", "float"):
        for key in ("low", "high"):
            if key not in spec:
                raise ConfigError(f"{where}.{key}: missing (a {kind} gene needs inclusive low and high)")
        low, high = _num(spec["low"], f"{where}.low"), _num(spec["high"], f"{where}.high")
        if kind == "int":
            for key, v in (("low", low), ("high", high)):
                if not float(v).is_integer():
                    raise ConfigError(f"{where}.{key}: an int gene needs integer bounds, got {v!r}")
            low, high = int(low), int(high)
        else:
            low, high = float(low), float(high)
        if low > high:
            raise ConfigError(f"{where}.low: must be <= high ({high}), got {low} (bounds reversed?)")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{where}.log: expected true or false, got {log!r}")
        if log and low <= 0:
            raise ConfigError(f"{where}.low: a log-scale gene needs low > 0, got {low}")
    elif kind == "choice":
        raw = spec.get("values")
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{where}.values: a choice gene needs a non-empty list of values, got {raw!r}")
        for i, v in enumerate(raw):
            if not isinstance(v, (str, int, float, bool)):
                raise ConfigError(f"{where}.values[{i}]: expected a string, number or bool, got {v!r}")
        if len(set(map(repr, raw))) != len(raw):
            raise ConfigError(f"{where}.values: duplicate values in {raw!r}")
        values = tuple(raw)
    when = None
    if "when" in spec:
        when = _parse_when(spec["when"], f"{where}.when", earlier)
    gene = Gene(name, kind, None, low, high, log, values, when, str(spec.get("doc", "")))
    if "default" in spec:
        default = gene.check_value(spec["default"], f"{where}.default")
    elif kind == "bool":
        default = False
    elif kind == "choice":
        default = values[0]
    else:
        default = gene.decode(0.5)
    return Gene(name, kind, default, low, high, log, values, when, gene.doc)


def _parse_when(spec: Any, where: str, earlier: dict[str, Gene]) -> Condition:
    if not isinstance(spec, dict) or "gene" not in spec:
        raise ConfigError(f"{where}: expected a mapping like {{gene: n_layers, min: 2}} or {{gene: optimizer, in: [sgd]}}")
    for key in spec:
        if key not in ("gene", "min", "max", "in"):
            raise ConfigError(f"{where}.{key}: unknown key; valid keys: gene, min, max, in")
    parent = spec["gene"]
    if not isinstance(parent, str) or parent not in earlier:
        raise ConfigError(f"{where}.gene: condition on a missing gene {parent!r} (conditions refer to genes declared before)")
    p = earlier[parent]
    if "in" in spec:
        if "min" in spec or "max" in spec:
            raise ConfigError(f"{where}: use either in or min/max")
        vals = spec["in"]
        if not isinstance(vals, list) or not vals:
            raise ConfigError(f"{where}.in: expected a non-empty list of values of {parent!r}")
        for i, v in enumerate(vals):
            p.check_value(v, f"{where}.in[{i}]")
        return Condition(parent, values=tuple(vals))
    if "min" not in spec and "max" not in spec:
        raise ConfigError(f"{where}: needs in, min or max")
    if p.type not in ("int", "float"):
        raise ConfigError(f"{where}: min/max need a numeric gene, {parent!r} is a {p.type} gene (use in: [...])")
    lo = _num(spec["min"], f"{where}.min") if "min" in spec else None
    hi = _num(spec["max"], f"{where}.max") if "max" in spec else None
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"{where}.min: must be <= max ({hi}), got {lo}")
    return Condition(parent, min=lo, max=hi)


def _parse(data: Any, source: str) -> SearchSpace:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with name, model and genes, got {type(data).__name__}")
    for key in data:
        if key not in ("name", "model", "description", "genes"):
            raise ConfigError(f"{source}: {key}: unknown key; valid keys: name, model, description, genes")
    model = data.get("model", "mlp")
    if model not in MODELS:
        raise ConfigError(f"{source}: model: unknown model {model!r}; choose from {', '.join(MODELS)}")
    genes_raw = data.get("genes")
    if not isinstance(genes_raw, dict) or not genes_raw:
        raise ConfigError(f"{source}: genes: expected a non-empty mapping of gene name to gene")
    genes: dict[str, Gene] = {}
    for name, spec in genes_raw.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"{source}: genes.{name}: gene names are identifiers")
        genes[name] = _parse_gene(name, spec, f"{source}: genes.{name}", genes)
    space = SearchSpace(str(data.get("name", Path(source).stem)), model, list(genes.values()),
                        str(data.get("description", "")), source)
    from evonet.problems.nas.models import check_space

    check_space(space)
    return space


def resolve_space_path(path: str | Path) -> Path:
    """``path`` as given, else a space of ``./search_spaces/`` or one shipped with evonet, by name."""
    p = Path(path)
    if p.is_file():
        return p
    # the working directory's own spaces first, then those shipped with evonet (package data)
    for base in (Path.cwd() / "search_spaces", Path(__file__).resolve().parents[2] / "search_spaces"):
        for cand in (base / p, base / p.name, base / f"{p.name}.yaml"):
            if cand.is_file():
                return cand
    return p
