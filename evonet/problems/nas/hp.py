"""Define-by-run hyperparameters: a KerasTuner-style ``hp`` object over evonet's search spaces.

The user writes one build function, ``build_model(hp) -> compiled keras.Model``, that
declares its hyperparameters as it goes (``hp.Int``, ``hp.Float``, ``hp.Choice``,
``hp.Boolean``, with KerasTuner's argument names and order) and may reach some of them only
through control flow (``units_2`` only when ``layers == 3``). Three uses of one class,
:class:`HyperParameters`:

* *discovery* (:func:`discover`): the build function runs several times: with every
  hyperparameter at its default, at its highest, at its lowest, then at random values from a
  seeded numpy Generator, until several probes in a row find no new name (at most
  ``max_probes``). Every name met becomes a :class:`~evonet.space.Gene`, in order of first
  appearance, of a :class:`UserSearchSpace`: an ordinary evonet search space (the [0, 1]
  float encoding, DEAP's operators, the canonical hash, the evaluation cache, NSGA-II and the
  final refit / cross-validation all apply). The defaults probe must build a compiled
  ``keras.Model`` (else :class:`~evonet.errors.ConfigError`, before any training); a later
  probe that fails is tolerated (that point of the space fails when the search meets it);
* *replay* (:meth:`HyperParameters.replay`): given a genome's values, every declaration
  returns its value and the object records which names were *accessed*: the active ones. The
  canonical form of a genome is exactly its active names (:meth:`UserSearchSpace.canonical`),
  so two genomes that differ only in a gene the build function never reads share one hash and
  one training. A name never met during discovery takes its default and is reported
  (``unseen``, and a warning once per name), never a crash;
* standalone, like KerasTuner: ``HyperParameters()`` returns defaults,
  ``HyperParameters({"units": 64})`` those values; ``hp.values`` is the dict of the values
  returned so far, ``hp.get(name)`` / ``hp[name]`` read one.

Defaults follow KerasTuner's rule: ``Int`` and ``Float``: ``min_value``; ``Choice``: the
first value; ``Boolean``: False; ``default=`` overrides. ``Int``/``Float`` with a ``step``
(other than an ``Int`` step of 1) become an ordered choice of the stepped values
(multiplied by ``step`` on a log scale, as KerasTuner's ``sampling="log"``). ``log=True``
is accepted as a synonym of ``sampling="log"``.

A name declared twice with a different type, range, values or default, in one call or
across calls of the build function, is a :class:`~evonet.errors.ConfigError` naming the
hyperparameter and both declarations.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from evonet.core.errors import ConfigError
from evonet.problems.nas.space import Gene, SearchSpace

#: model kind of a search space made by discovery (evonet.problems.nas.models builds mlp / cnn only)
USER_MODEL = "user"


# ----------------------------------------------------------------------------- declarations


def _show(gene: Gene) -> str:
    """A declaration as the user would write it (for error messages)."""
    n = repr(gene.name)
    spec = getattr(gene, "_spec", None)
    if gene.type == "bool":
        return f"Boolean({n}, default={gene.default!r})"
    if gene.type == "choice":
        return f"Choice({n}, {list(gene.values)!r}, default={gene.default!r})"
    kind = "Int" if gene.type == "int" else "Float"
    log = ", log=True" if gene.log else ""
    return f"{kind}({n}, {gene.low!r}, {gene.high!r}{log}, default={gene.default!r})" if spec is None else spec


def _signature(gene: Gene) -> tuple:
    return (gene.type, gene.low, gene.high, gene.log, tuple(map(repr, gene.values)), repr(gene.default))


def _number(value, name: str, what: str, kind: str):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise ConfigError(f"hyperparameter {name!r}: {what} must be a finite number, got {value!r}")
    if kind == "int":
        if not float(value).is_integer():
            raise ConfigError(f"hyperparameter {name!r}: {what} of an Int must be an integer, got {value!r}")
        return int(value)
    return float(value)


def _log_flag(name: str, sampling, log) -> bool:
    if sampling not in (None, "linear", "log", "reverse_log"):
        raise ConfigError(f"hyperparameter {name!r}: sampling must be 'linear' or 'log', got {sampling!r}")
    if sampling == "reverse_log":
        raise ConfigError(f"hyperparameter {name!r}: sampling='reverse_log' is not supported; use 'linear' or 'log'")
    if not isinstance(log, bool):
        raise ConfigError(f"hyperparameter {name!r}: log must be True or False, got {log!r}")
    return bool(log or sampling == "log")


def _stepped(name: str, kind: str, lo, hi, step, log: bool) -> tuple:
    step = _number(step, name, "step", kind)
    if step <= 0 or (log and step <= 1):
        raise ConfigError(f"hyperparameter {name!r}: step must be > {1 if log else 0}"
                          f"{' with log sampling (a factor)' if log else ''}, got {step!r}")
    out, v = [], lo
    while v <= hi * (1 + 1e-12) and len(out) < 10_000:
        out.append(int(round(v)) if kind == "int" else float(f"{v:.12g}"))
        v = v * step if log else v + step
    return tuple(dict.fromkeys(out))


def make_gene(kind: str, name: str, *, min_value=None, max_value=None, step=None, sampling=None, log=False,
              default=None, values=None, ordered=None) -> Gene:
    """The :class:`Gene` of one declaration; bad declarations raise :class:`ConfigError`."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"hyperparameter names are non-empty strings, got {name!r}")
    if kind == "bool":
        if not isinstance(default, bool):
            raise ConfigError(f"hyperparameter {name!r}: Boolean default must be True or False, got {default!r}")
        return Gene(name, "bool", default)
    if kind == "choice":
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ConfigError(f"hyperparameter {name!r}: Choice needs a list of values, got {values!r}")
        vals = tuple(v.item() if isinstance(v, np.generic) else v for v in values)
        if not vals:
            raise ConfigError(f"hyperparameter {name!r}: Choice needs a non-empty list of values")
        for v in vals:
            if not isinstance(v, (str, int, float, bool)):
                raise ConfigError(f"hyperparameter {name!r}: Choice values must be str, int, float or bool, got {v!r}")
        if len(set(map(repr, vals))) != len(vals):
            raise ConfigError(f"hyperparameter {name!r}: duplicate Choice values in {list(vals)!r}")
        if default is None:
            default = vals[0]
        elif default not in vals:
            raise ConfigError(f"hyperparameter {name!r}: default {default!r} is not one of {list(vals)!r}")
        return Gene(name, "choice", default, values=vals)
    label = "Int" if kind == "int" else "Float"
    lo = _number(min_value, name, "min_value", kind)
    hi = _number(max_value, name, "max_value", kind)
    if lo > hi:
        raise ConfigError(f"hyperparameter {name!r}: min_value {lo!r} > max_value {hi!r}")
    is_log = _log_flag(name, sampling, log)
    if is_log and lo <= 0:
        raise ConfigError(f"hyperparameter {name!r}: log sampling needs min_value > 0, got {lo!r}")
    if step is not None and not (kind == "int" and not is_log and step == 1):
        vals = _stepped(name, kind, lo, hi, step, is_log)
        if default is None:
            default = vals[0]
        elif default not in vals:
            raise ConfigError(f"hyperparameter {name!r}: default {default!r} is not one of the stepped values "
                              f"{list(vals)[:8]!r}{'...' if len(vals) > 8 else ''}")
        g = Gene(name, "choice", default, values=vals)
        object.__setattr__(g, "_spec", f"{label}({name!r}, {lo!r}, {hi!r}, step={step!r}"
                                       f"{', log=True' if is_log else ''}, default={default!r})")
        return g
    if default is None:
        default = lo  # KerasTuner: the default of Int and Float is min_value
    else:
        default = _number(default, name, "default", kind)
        if not lo <= default <= hi:
            raise ConfigError(f"hyperparameter {name!r}: default {default!r} outside [{lo!r}, {hi!r}]")
    return Gene(name, kind, default, lo, hi, is_log)


# ----------------------------------------------------------------------------- the hp object


class HyperParameters:
    """KerasTuner-style hyperparameters (see the module doc).

    ``values``: name -> value to return (missing names: their default). Internal keyword
    arguments select discovery or replay; users need only ``HyperParameters(values)``.
    """

    def __init__(self, values: dict | None = None, *, _registry: dict | None = None,
                 _chooser: Callable[[Gene], Any] | None = None, _known: dict | None = None):
        self._given = dict(values or {})
        #: declarations shared by every call of a discovery (name -> Gene, first appearance first)
        self._registry = {} if _registry is None else _registry
        self._chooser = _chooser
        #: replay: the search space's genes; a name not among them is unseen
        self._known = _known
        self._local: dict[str, Gene] = {}
        self.values: dict[str, Any] = {}
        #: names declared by this call, in order of first access (the active ones)
        self.accessed: list[str] = []
        #: replay: names the search space does not have (they took their defaults)
        self.unseen: dict[str, str] = {}

    @classmethod
    def replay(cls, values: dict, known: dict | None = None) -> "HyperParameters":
        """The hp of a decoded genome: declarations return ``values`` (defaults for the rest)."""
        return cls(values, _known=known)

    # -- KerasTuner's declarations ---------------------------------------------------

    def Int(self, name, min_value, max_value, step=None, sampling="linear", default=None, parent_name=None,
            parent_values=None, *, log=False):
        self._no_parent(name, parent_name, parent_values)
        return self._declare(make_gene("int", name, min_value=min_value, max_value=max_value, step=step,
                                       sampling=sampling, log=log, default=default))

    def Float(self, name, min_value, max_value, step=None, sampling="linear", default=None, parent_name=None,
              parent_values=None, *, log=False):
        self._no_parent(name, parent_name, parent_values)
        return self._declare(make_gene("float", name, min_value=min_value, max_value=max_value, step=step,
                                       sampling=sampling, log=log, default=default))

    def Choice(self, name, values, ordered=None, default=None, parent_name=None, parent_values=None):
        self._no_parent(name, parent_name, parent_values)
        return self._declare(make_gene("choice", name, values=values, default=default))

    def Boolean(self, name, default=False, parent_name=None, parent_values=None):
        self._no_parent(name, parent_name, parent_values)
        return self._declare(make_gene("bool", name, default=default))

    def Fixed(self, name, value, parent_name=None, parent_values=None):
        """A constant: returned as is, not searched."""
        self.values[name] = value
        return value

    def get(self, name):
        if name in self.values:
            return self.values[name]
        if name in self._given:
            return self._given[name]
        raise KeyError(f"hyperparameter {name!r} has not been declared")

    def __getitem__(self, name):
        return self.get(name)

    def __contains__(self, name) -> bool:
        return name in self.values

    def __repr__(self) -> str:
        return f"HyperParameters({self.values!r})"

    # -- internals -------------------------------------------------------------------

    @staticmethod
    def _no_parent(name, parent_name, parent_values) -> None:
        if parent_name is not None or parent_values is not None:
            raise ConfigError(f"hyperparameter {name!r}: parent_name/parent_values are not needed here: "
                              f"a name the build function does not read is inactive")

    def _check(self, gene: Gene, known: dict) -> None:
        old = known.get(gene.name)
        if old is not None and _signature(old) != _signature(gene):
            raise ConfigError(f"hyperparameter {gene.name!r} declared twice differently: {_show(old)} and "
                              f"{_show(gene)}")

    def _declare(self, gene: Gene):
        name = gene.name
        self._check(gene, self._local)
        self._check(gene, self._registry)
        if self._known is not None:
            if name in self._known:
                self._check(gene, self._known)
            elif name not in self.unseen:
                self.unseen[name] = _show(gene)
        self._local.setdefault(name, gene)
        self._registry.setdefault(name, gene)
        if name not in self.accessed:
            self.accessed.append(name)
        if name in self.values:
            return self.values[name]
        if name in self._given:
            value = gene.check_value(self._given[name], f"hyperparameter {name!r}")
        elif self._chooser is not None:
            value = self._chooser(gene)
        else:
            value = gene.default
        self.values[name] = value
        return value


# ----------------------------------------------------------------------------- discovery


def _describe(obj) -> str:
    if obj is None:
        return "None"
    text = type(obj).__name__
    return text


def check_model(model) -> None:
    """Raise ``TypeError`` unless ``model`` is a compiled ``keras.Model`` with an accuracy metric."""
    from evonet.tf_utils import import_keras

    keras = import_keras()
    if not isinstance(model, keras.Model):
        raise TypeError(f"build_model must return a compiled keras.Model, got {_describe(model)}")
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise TypeError(f"build_model must return a compiled keras.Model, got an uncompiled {type(model).__name__} "
                        f"(call model.compile(...) before returning it)")
    try:
        metrics = (model.get_compile_config() or {}).get("metrics") or []
    except Exception:  # noqa: BLE001 - an unusual compile config: let training decide
        return
    flat = []
    for m in (metrics.values() if isinstance(metrics, dict) else metrics):
        flat.extend(m if isinstance(m, (list, tuple)) else [m])
    if "accuracy" not in [_metric_name(m) for m in flat]:
        raise TypeError("build_model must compile the model with metrics=['accuracy'] (the search's fitness is "
                        "validation accuracy)")


def _metric_name(m) -> str | None:
    if isinstance(m, str):
        return m
    if isinstance(m, dict):
        return (m.get("config") or {}).get("name")
    return getattr(m, "name", None)


def _one_line(exc: BaseException) -> str:
    msg = " ".join(f"{type(exc).__name__}: {exc}".split())
    return msg if len(msg) <= 300 else msg[:297] + "..."


def _choosers(rng: np.random.Generator):
    yield "defaults", lambda g: g.default
    yield "highest", lambda g: g.decode(1.0)
    yield "lowest", lambda g: g.decode(0.0)
    while True:
        yield "random", lambda g: g.decode(float(rng.random()))


def discover(build_fn: Callable, *, seed: int = 0, max_probes: int = 32, patience: int = 5,
             name: str | None = None) -> "UserSearchSpace":
    """Run ``build_fn`` until its hyperparameters are known (see the module doc).

    Probes: defaults, all highest, all lowest, then random draws (``seed``); stops after
    ``patience`` random probes in a row without a new name, or ``max_probes`` probes."""
    from evonet.tf_utils import import_keras

    if not callable(build_fn):
        raise ConfigError(f"build_model must be callable (a function hp -> compiled keras.Model), got "
                          f"{type(build_fn).__name__}")
    keras = import_keras()
    registry: dict[str, Gene] = {}
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x6870]))
    probes, quiet, failures = 0, 0, []
    for label, chooser in _choosers(rng):
        if probes >= max_probes or (label == "random" and quiet >= patience):
            break
        before = len(registry)
        hp = HyperParameters(_registry=registry, _chooser=chooser)
        try:
            model = build_fn(hp)
            check_model(model)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's code
            if probes == 0:
                how = str(exc) if isinstance(exc, TypeError) and str(exc).startswith("build_model must") \
                    else f"build_model raised {_one_line(exc)}"
                raise ConfigError(f"build_model with every hyperparameter at its default ({hp.values}): {how}; "
                                  f"nothing was trained") from None
            failures.append({"probe": label, "values": dict(hp.values), "error": _one_line(exc)})
        finally:
            probes += 1
        quiet = 0 if len(registry) > before else quiet + 1
        keras.backend.clear_session(free_memory=False)
    if not registry:
        raise ConfigError("build_model declared no hyperparameters (hp.Int, hp.Float, hp.Choice, hp.Boolean): "
                          "nothing to search")
    space = UserSearchSpace(name or getattr(build_fn, "__name__", "build_model"), USER_MODEL, list(registry.values()),
                            description="discovered from a build function", source="build_model")
    space.builder = build_fn
    space.discovery = {"probes": probes, "failed_probes": failures}
    return space


# ----------------------------------------------------------------------------- the space


@dataclass
class UserSearchSpace(SearchSpace):
    """A search space whose genes a build function declared; its canonical form (the active
    genes) comes from replaying the build function (memoised per decoded genome)."""

    builder: Callable | None = field(default=None, repr=False)
    discovery: dict = field(default_factory=dict, repr=False)
    #: names met in replay that discovery never saw (name -> declaration)
    unseen: dict = field(default_factory=dict, repr=False)
    _memo: dict = field(default_factory=dict, repr=False)

    def replay(self, values: dict) -> HyperParameters:
        """Run the build function on ``values``; the hp records the accessed names. Never raises
        (a build that fails stops recording where it failed; training reports the error)."""
        hp = HyperParameters.replay(values, {g.name: g for g in self.genes})
        try:
            self.builder(hp)
        except Exception:  # noqa: BLE001 - evaluated (and reported) by the training
            pass
        finally:
            try:
                from evonet.tf_utils import import_keras

                import_keras().backend.clear_session(free_memory=False)
            except Exception:  # noqa: BLE001
                pass
        self.note_unseen(hp.unseen)
        return hp

    def note_unseen(self, unseen: dict) -> None:
        for name, decl in unseen.items():
            if name not in self.unseen:
                self.unseen[name] = decl
                warnings.warn(f"hyperparameter {name!r} ({decl}) was not met during discovery; it keeps its "
                              f"default and is not searched", stacklevel=3)

    def active(self, values: dict[str, Any]) -> dict[str, bool]:
        names = set(self.canonical(values))
        return {g.name: g.name in names for g in self.genes}

    def canonical(self, genome) -> dict[str, Any]:
        values = self.decode(genome) if not isinstance(genome, dict) else self.complete(genome)
        key = tuple(values[g.name] for g in self.genes)
        hit = self._memo.get(key)
        if hit is not None:
            return dict(hit)
        accessed = set(self.replay(values).accessed)
        canon = {g.name: values[g.name] for g in self.genes if g.name in accessed}
        self._memo[key] = canon
        # the canonical form completed with defaults replays to itself: remember it too
        full = {g.name: canon.get(g.name, g.default) for g in self.genes}
        self._memo.setdefault(tuple(full[g.name] for g in self.genes), canon)
        return dict(canon)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_memo"] = {}  # rebuilt on demand (and keys hold floats of this process)
        return state


@dataclass(frozen=True)
class UserModel:
    """How a worker builds a user's model from a canonical genome (picklable with cloudpickle)."""

    build_fn: Callable
    genes: tuple
    batch_size: int = 32

    def build(self, genome: dict):
        hp = HyperParameters.replay(genome, {g.name: g for g in self.genes})
        try:
            model = self.build_fn(hp)
        except ConfigError:
            raise
        except Exception as exc:
            raise BuildError(f"build_model raised {_one_line(exc)}") from exc
        try:
            check_model(model)
        except TypeError as exc:
            raise BuildError(str(exc)) from None
        return model


class BuildError(Exception):
    """The user's build function raised or returned something else than a compiled model."""
