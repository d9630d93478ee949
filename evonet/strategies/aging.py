"""Asynchronous evolution: regularized ("aging") evolution with successive-halving promotions.

Aging evolution (Real et al. 2019, the AmoebaNet search) keeps a *population* of the ``P``
most recently created members, oldest first. A new member is the mutated winner of a
tournament of ``S`` members sampled from the population (``ga.selection.tournsize``; with
probability ``ga.cxpb`` two winners are crossed first); when it enters, the oldest member
leaves, however good it was. No generation boundary exists: a worker that frees up gets the
next job at once, so the strategy is steady state: :meth:`next_job` hands out one job,
:meth:`tell_job` takes one result back, in any order the loop decides
(:mod:`evonet.core.async_loop` decides it: in job order with a fixed lag for reproducible
runs, as results arrive for greedy ones).

Multi-fidelity (``ga.fidelity``): a job trains a member for a *budget* in the problem's unit
(epochs for architecture search). The budgets form rungs ``min_budget * eta**r`` up to
``max_budget`` (the top rung); asynchronous successive halving (ASHA, Li et al. 2020) promotes a
member from rung ``r`` to ``r + 1`` as soon as it ranks in the top ``1/eta`` of the results
of rung ``r`` so far, and a promotion *continues* the member's training from the state its
rung-``r`` job saved (``Job.parent``). Promotions come first, highest rung first; otherwise a
new member starts. With ``brackets: B`` new members cycle over Hyperband's brackets ``0 ..
B-1``: bracket ``s`` starts its members at rung ``s`` and promotes among its own members. A
member's rank (tournaments, the hall of fame) is its highest rung, then its fitness there. The
hall of fame holds members that reached the top rung (every member, without fidelity).

All randomness comes from one ``numpy.random.Generator`` (DEAP's operators run under
:func:`~evonet.strategies.operators.deap_random`); the state (members, their results, the
population queue, the rung tables, the jobs handed out and not yet told, the generator) is
JSON and arrays, for exact checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from deap import base

from evonet.core.strategy import WORST, Strategy
from evonet.core.types import EvalResult
from evonet.strategies.ga import _jsonable_state
from evonet.strategies.operators import deap_random, individual_class, register_operators


def rung_budgets(min_budget: float, max_budget: float, eta: float, integer: bool = False) -> list[float]:
    """The rungs' budgets: ``min_budget * eta**r`` below ``max_budget``, then ``max_budget``."""
    if not eta > 1:
        raise ValueError(f"reduction_factor must be > 1, got {eta}")
    if not 0 < min_budget <= max_budget:
        raise ValueError(f"need 0 < min_budget <= max_budget, got {min_budget} and {max_budget}")
    out = [float(min_budget)]
    while out[-1] * eta < max_budget * (1 - 1e-9):
        out.append(out[-1] * eta)
    if out[-1] < max_budget:
        out.append(float(max_budget))
    if integer:
        rounded = []
        for b in out:
            r = float(max(1, round(b)))
            if not rounded or r > rounded[-1]:
                rounded.append(r)
        out = rounded
    return out


@dataclass
class Job:
    """One evaluation the strategy hands out: ``member`` (its genome) at ``rung`` for
    ``budget`` (None: the problem's full evaluation), continuing the state saved by job
    ``parent`` (None: from scratch)."""

    id: int
    member: int
    genome: np.ndarray
    rung: int = 0
    budget: float | None = None
    parent: int | None = None

    def to_dict(self) -> dict:
        return {"id": int(self.id), "member": int(self.member), "genome": np.asarray(self.genome, dtype=np.float64),
                "rung": int(self.rung), "budget": None if self.budget is None else float(self.budget),
                "parent": None if self.parent is None else int(self.parent)}

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        return cls(int(d["id"]), int(d["member"]), np.asarray(d["genome"], dtype=np.float64), int(d["rung"]),
                   None if d["budget"] is None else float(d["budget"]),
                   None if d["parent"] is None else int(d["parent"]))


class _Member:
    __slots__ = ("id", "genome", "bracket", "results", "errors", "last_job", "promoted", "key", "seconds")

    def __init__(self, mid: int, genome: np.ndarray, bracket: int, key: Any):
        self.id = mid
        self.genome = np.asarray(genome, dtype=np.float64)
        self.bracket = bracket
        self.results: dict[int, float] = {}  # rung -> fitness
        self.errors: dict[int, str] = {}
        self.last_job: int | None = None  # the job whose saved state a promotion continues
        self.promoted: set[int] = set()  # rungs it was promoted from
        self.key = key
        self.seconds = 0.0  # evaluation seconds of all its jobs (what its training cost)

    def rank(self) -> tuple[int, float]:
        if not self.results:
            return (-1, WORST)
        r = max(self.results)
        return (r, self.results[r])


class AgingEvolution(Strategy):
    """Steady-state aging evolution, optionally with ASHA promotions; see the module doc.

    ``genomes``: the warm-up members: random genomes, used in order for new members until
    ``population`` members have a result (give ``population`` + the jobs that may be in
    flight before then);
    ``budgets``: the rungs' budgets (None: no multi-fidelity); ``key(genome)``: a hashable
    identity (duplicates are mutated again, up to 20 times)."""

    #: the jobs-based interface of the asynchronous loop
    asynchronous = True

    def __init__(self, ga_cfg, genomes: np.ndarray, low: float, up: float, rng: np.random.Generator,
                 budgets: Sequence[float] | None = None, eta: float = 3.0, brackets: int = 1,
                 key: Callable[[Sequence[float]], Any] | None = None):
        self.cfg = ga_cfg
        self.rng = rng
        self.low, self.up = float(low), float(up)
        self.P = int(ga_cfg.population)
        sel = ga_cfg.selection or {}
        self.S = int(sel.get("tournsize", 2)) if sel.get("name") == "tournament" else 2
        self.S = max(1, min(self.S, self.P))
        self.cxpb = float(ga_cfg.cxpb)
        self.budgets = None if budgets is None else [float(b) for b in budgets]
        self.eta = float(eta)
        self.brackets = max(1, min(int(brackets), len(self.budgets) if self.budgets else 1))
        self.key = key or (lambda g: tuple(float(x) for x in g))
        self.toolbox = base.Toolbox()
        register_operators(self.toolbox, {"name": "random"}, ga_cfg.crossover, ga_cfg.mutation, low, up)
        self.Individual = individual_class()
        self.warmup = np.asarray(genomes, dtype=np.float64)
        self.members: list[_Member] = []
        self.queue: list[int] = []  # the population: member ids, oldest first
        self.tables: dict[tuple[int, int], list[tuple[float, int]]] = {}  # (bracket, rung) -> [(fitness, member)]
        self.pending: dict[int, Job] = {}  # handed out, not told
        self.next_id = 0
        self.told = 0
        self.promotions = 0
        self.seen: set = set()
        self.generation = -1  # the loop's reporting period, from 0 (checkpoints are named by it)
        self.hof_size = int(ga_cfg.hall_of_fame)

    # ------------------------------------------------------------------ rungs

    @property
    def top(self) -> int:
        return len(self.budgets) - 1 if self.budgets else 0

    def budget_of(self, rung: int) -> float | None:
        return None if self.budgets is None else self.budgets[rung]

    # ------------------------------------------------------------------ jobs

    def next_job(self) -> Job:
        """The next job: a promotion if one is due (highest rung first), else a new member."""
        job = self._promotion()
        if job is None:
            member = self._new_member()
            job = Job(self.next_id, member.id, member.genome, member.bracket, self.budget_of(member.bracket), None)
        self.next_id += 1
        self.pending[job.id] = job
        return job

    def _promotion(self) -> Job | None:
        if self.budgets is None:
            return None
        for rung in range(self.top - 1, -1, -1):
            for bracket in range(min(self.brackets, rung + 1)):
                table = self.tables.get((bracket, rung))
                if not table:
                    continue
                k = int(math.floor(len(table) / self.eta + 1e-9))
                if k < 1:
                    continue
                for fit, mid in sorted(table, key=lambda t: (-t[0], t[1]))[:k]:
                    m = self.members[mid]
                    if rung in m.promoted or fit <= WORST / 2:
                        continue
                    m.promoted.add(rung)
                    self.promotions += 1
                    return Job(self.next_id, mid, m.genome, rung + 1, self.budget_of(rung + 1), m.last_job)
        return None

    def _new_member(self) -> _Member:
        mid = len(self.members)
        if mid < len(self.warmup) and len(self.queue) < self.P:  # warm-up: random members
            genome = self.warmup[mid]
        else:
            genome = self._child()
        m = _Member(mid, genome, mid % self.brackets, self.key(genome))
        self.seen.add(m.key)
        self.members.append(m)
        return m

    def _tournament(self) -> _Member:
        # the population: every member in it has a result (it enters with its first one)
        pool = self.queue if self.queue else [m.id for m in self.members[-self.P:]]
        pick = self.rng.choice(len(pool), size=min(self.S, len(pool)), replace=False)
        return max((self.members[pool[int(i)]] for i in pick), key=lambda m: (m.rank(), -m.id))

    def _child(self) -> np.ndarray:
        genome = None
        for _ in range(20):
            a = self._tournament()
            child = self.Individual(a.genome.tolist())
            with deap_random(self.rng):
                if self.rng.random() < self.cxpb:
                    b = self._tournament()
                    child, _ = self.toolbox.mate(child, self.Individual(b.genome.tolist()))
                (child,) = self.toolbox.mutate(child)
            genome = np.clip(np.asarray(child, dtype=np.float64), self.low, self.up)
            if self.key(genome) not in self.seen:
                return genome
        # a crowded space: a fresh uniform point if the last child is a duplicate
        fresh = self.rng.uniform(self.low, self.up, len(genome))
        return fresh if self.key(fresh) not in self.seen else genome

    def tell_job(self, job: Job, result: EvalResult) -> None:
        """Record a job's result: the member's fitness at the job's rung, its rung table, the
        population (a member enters when its first result is told; the oldest leaves)."""
        self.pending.pop(job.id, None)
        m = self.members[job.member]
        ok = result.error is None and math.isfinite(result.fitness)
        fit = float(result.fitness) if ok else WORST
        first = not m.results
        m.results[job.rung] = fit
        if not ok:
            m.errors[job.rung] = str(result.error or "non-finite fitness")
        m.last_job = job.id
        m.seconds += float(result.seconds or 0.0)
        self.tables.setdefault((m.bracket, job.rung), []).append((fit, m.id))
        if first:
            self.queue.append(m.id)
            if len(self.queue) > self.P:
                self.queue.pop(0)
        self.told += 1

    # ------------------------------------------------------------------ the Strategy view

    def _individual(self, m: _Member):
        ind = self.Individual(m.genome.tolist())
        ind.fitness.values = (m.rank()[1],)
        ind.games = 1
        ind.member = m.id
        ind.rung = m.rank()[0]
        ind.seconds = m.seconds
        return ind

    @property
    def population(self) -> list:
        return [self._individual(self.members[i]) for i in self.queue if self.members[i].results]

    def reached(self) -> int:
        """The highest rung with a successful result (the top one once any member got there)."""
        rungs = [r for m in self.members for r, f in m.results.items() if f > WORST / 2]
        return max(rungs) if rungs else self.top

    @property
    def hof(self) -> list:
        """The best members of the top rung (of the highest rung reached, while none got to the
        top: a search stopped early), best first, one per genome key."""
        top = self.reached()
        done = [m for m in self.members if m.results.get(top, WORST) > WORST / 2]
        done.sort(key=lambda m: (-m.results[top], m.id))
        out, keys = [], set()
        for m in done:
            if m.key in keys:
                continue
            keys.add(m.key)
            out.append(self._individual(m))
            if len(out) == self.hof_size:
                break
        return out

    def fitnesses(self) -> np.ndarray:
        fit = np.array([self.members[i].rank()[1] for i in self.queue if self.members[i].results])
        return fit if len(fit) else np.array([WORST])

    def best_top(self) -> float:
        """The best fitness at the highest rung reached so far (``WORST``: none yet)."""
        top = self.reached()
        vals = [m.results[top] for m in self.members if top in m.results]
        return max(vals) if vals else WORST

    def rung_counts(self) -> list[int]:
        """Results told per rung."""
        n = [0] * (self.top + 1)
        for m in self.members:
            for r in m.results:
                n[r] += 1
        return n

    def ask(self):
        raise TypeError("AgingEvolution is asynchronous: use next_job / tell_job (evonet.core.async_loop)")

    def tell(self, individuals, results):
        raise TypeError("AgingEvolution is asynchronous: use next_job / tell_job (evonet.core.async_loop)")

    # ------------------------------------------------------------------ state

    def get_state(self) -> dict:
        members = self.members
        n = self.warmup.shape[1] if self.warmup.ndim == 2 else 0
        return {
            "kind": "aging",
            "population": {"genomes": self.warmup},  # the warm-up genomes (resume checks their width)
            "member_genomes": np.array([m.genome for m in members], dtype=np.float64).reshape(len(members), n),
            "members": [{"bracket": m.bracket, "results": [[r, f] for r, f in sorted(m.results.items())],
                         "errors": [[r, e] for r, e in sorted(m.errors.items())], "last_job": m.last_job,
                         "promoted": sorted(m.promoted), "seconds": m.seconds} for m in members],
            "queue": list(self.queue),
            "tables": [[b, r, [[f, i] for f, i in t]] for (b, r), t in self.tables.items()],
            "pending": [j.to_dict() for j in sorted(self.pending.values(), key=lambda j: j.id)],
            "next_id": self.next_id, "told": self.told, "promotions": self.promotions,
            "generation": self.generation,
            "budgets": self.budgets, "eta": self.eta, "brackets": self.brackets,
            "rng": _jsonable_state(self.rng.bit_generator.state),
        }

    def set_state(self, state: dict) -> None:
        if state.get("kind") != "aging":
            raise ValueError("not the state of an aging evolution")
        budgets = state["budgets"]
        if (budgets is None) != (self.budgets is None) or (budgets is not None and [float(b) for b in budgets] != self.budgets) \
                or float(state["eta"]) != self.eta or int(state["brackets"]) != self.brackets:
            raise ValueError(f"the rung schedule differs from the run's (budgets {budgets}, reduction factor "
                             f"{state['eta']}, brackets {state['brackets']})")
        self.warmup = np.asarray(state["population"]["genomes"], dtype=np.float64)
        genomes = np.asarray(state["member_genomes"], dtype=np.float64)
        self.members = []
        for i, d in enumerate(state["members"]):
            m = _Member(i, genomes[i], int(d["bracket"]), self.key(genomes[i]))
            m.results = {int(r): float(f) for r, f in d["results"]}
            m.errors = {int(r): str(e) for r, e in d["errors"]}
            m.last_job = None if d["last_job"] is None else int(d["last_job"])
            m.promoted = {int(r) for r in d["promoted"]}
            m.seconds = float(d.get("seconds", 0.0))  # checkpoints before it was kept: 0
            self.members.append(m)
        self.seen = {m.key for m in self.members}
        self.queue = [int(i) for i in state["queue"]]
        self.tables = {(int(b), int(r)): [(float(f), int(i)) for f, i in t] for b, r, t in state["tables"]}
        self.pending = {int(d["id"]): Job.from_dict(d) for d in state["pending"]}
        self.next_id = int(state["next_id"])
        self.told = int(state["told"])
        self.promotions = int(state["promotions"])
        self.generation = int(state["generation"])
        self.rng.bit_generator.state = state["rng"]

