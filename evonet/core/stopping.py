"""Stopping rules: end a run early on a target fitness, stagnation, or a time or
evaluation budget (the ``stop`` section of an experiment).

The rules are checked after every generation, once the generation's record is complete.
Their state (best fitness so far and when it last improved) is part of every checkpoint,
so a resumed run stops exactly where the uninterrupted one would have; the wall-clock
budget counts the evolution time of all sessions of a run together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Stop:
    """Why a run ended: ``rule`` is ``generations``, ``target_fitness``, ``stagnation``,
    ``max_seconds`` or ``max_evaluations``; ``reason`` is the sentence for people."""

    rule: str
    reason: str
    generation: int

    def to_dict(self) -> dict:
        return {"rule": self.rule, "reason": self.reason, "generation": self.generation}


class StoppingRules:
    """The ``stop`` section as a checker; any rule may be ``None`` (off)."""

    def __init__(self, target_fitness: float | None = None, stagnation: int | None = None,
                 max_seconds: float | None = None, max_evaluations: int | None = None,
                 include_final: bool = False):
        self.target_fitness = target_fitness
        self.include_final = bool(include_final)  # max_seconds covers the final choice (a reserve)
        self.stagnation = stagnation
        self.max_seconds = max_seconds
        self.max_evaluations = max_evaluations
        self.best: float | None = None
        self.best_generation: int = -1

    @classmethod
    def from_config(cls, stop_cfg) -> "StoppingRules":
        if stop_cfg is None:
            return cls()
        return cls(stop_cfg.target_fitness, stop_cfg.stagnation, stop_cfg.max_seconds, stop_cfg.max_evaluations,
                   stop_cfg.include_final)

    def update(self, record: dict) -> None:
        """Fold in a generation's record (tracks the best fitness and its generation)."""
        best = float(record["best"])
        if self.best is None or best > self.best:
            self.best = best
            self.best_generation = int(record["gen"])

    def check(self, record: dict, evaluations: int, elapsed: float, reserve: float = 0.0) -> Stop | None:
        """The rule that ends the run after ``record``'s generation, if any (pure). ``reserve``:
        seconds the final choice is estimated to take (``include_final``), kept out of the budget."""
        gen = int(record["gen"])
        if self.target_fitness is not None and float(record["best"]) >= self.target_fitness:
            return Stop("target_fitness",
                        f"target fitness (best {record['best']:.4g} >= {self.target_fitness:g})", gen)
        if self.stagnation is not None and self.best is not None and gen - self.best_generation >= self.stagnation:
            return Stop("stagnation",
                        f"stagnation (no improvement of best for {gen - self.best_generation} generations, "
                        f"since generation {self.best_generation})", gen)
        if self.max_evaluations is not None and evaluations >= self.max_evaluations:
            return Stop("max_evaluations",
                        f"evaluation budget ({evaluations} evaluations >= {self.max_evaluations})", gen)
        if self.max_seconds is not None and elapsed + reserve >= self.max_seconds:
            if reserve > 0:
                return Stop("max_seconds", f"wall-clock budget ({elapsed:.1f} s + {reserve:.1f} s estimated for the "
                                           f"final choice >= {self.max_seconds:g} s)", gen)
            return Stop("max_seconds", f"wall-clock budget ({elapsed:.1f} s >= {self.max_seconds:g} s)", gen)
        return None

    def get_state(self) -> dict:
        return {"best": self.best, "best_generation": self.best_generation}

    def set_state(self, state: dict) -> None:
        self.best = None if state.get("best") is None else float(state["best"])
        self.best_generation = int(state.get("best_generation", -1))
