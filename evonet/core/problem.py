"""The Problem protocol: what the loop needs from a genome kind and its evaluator.

A problem makes genomes, cuts a batch of them into picklable evaluation tasks and runs
them through a pure module-level function (so any executor, in process or Ray, can run
it); it writes its own artefacts at the end. It knows nothing of executors or the loop.

Subclass :class:`Problem` and implement the six required members; every optional hook
has a default here, so the core calls them unconditionally (it never probes a problem
with ``hasattr``)::

    class Sphere(Problem):
        n_genes, low, up = 10, -5.0, 5.0
        def init_genomes(self, rng, n): return rng.uniform(-1, 1, (n, self.n_genes))
        def make_tasks(self, genomes, generation, indices, chunk, purpose=PURPOSE_GAMES, games=None):
            return [genomes[i:i + chunk] for i in range(0, len(genomes), chunk)]
        @property
        def evaluate_task(self): return sphere_task       # task -> [EvalResult, ...]
        def failed_results(self, task, error): return [EvalResult(float("-inf"), 0, error=error)] * len(task)

Seeds: ``make_tasks`` derives every random draw of an evaluation from (run seed,
``purpose``, ``generation``, index), so results do not depend on chunking or workers.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from evonet.core.types import EvalResult

#: the default ``purpose`` of evaluation seeds (training evaluations during evolution);
#: the final choice among the hall of fame passes ``PURPOSE_FINAL`` (see evonet.seeding)
PURPOSE_GAMES = 1
PURPOSE_FINAL = 4


class Problem:
    """Base class of every problem: required members raise, optional hooks have defaults."""

    #: genes per genome, and the box every gene stays in
    n_genes: int
    low: float
    up: float
    #: DEAP fitness weights of a multi-objective problem, e.g. ``(1.0, -1.0)`` for
    #: (accuracy, parameters) under NSGA-II; ``None``: one fitness, maximised
    weights: tuple[float, ...] | None = None
    #: whether the genes are real numbers a continuous search may move freely (network
    #: weights, a vector); ``ga.algorithm: auto`` then runs CMA-ES on genomes of up to
    #: ``evonet.config.CMA_ES_MAX_GENES`` genes, else the GA (``mu_plus_lambda``)
    continuous: bool = False
    #: decimals of the fitness on the progress line and in reports
    fitness_digits: int = 2
    #: multi-fidelity: the unit of an evaluation's budget (``"epochs"``: architecture search)
    #: and whether budgets must be whole numbers; ``None``: every evaluation is complete
    fidelity_unit: str | None = None
    fidelity_integer: bool = True
    #: the config field that sets :meth:`fidelity_limit` (for error messages)
    fidelity_limit_field: str | None = None

    # ------------------------------------------------------------------ required

    def init_genomes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random genomes, shape (n, n_genes), every draw from ``rng``."""
        raise NotImplementedError(f"{type(self).__name__}.init_genomes")

    def make_tasks(self, genomes: np.ndarray, generation: int, indices: Sequence[int], chunk: int,
                   purpose: int = PURPOSE_GAMES, games: int | None = None) -> list[Any]:
        """Picklable tasks covering ``genomes`` in order, ``chunk`` genomes each; seeds derive
        from (run seed, purpose, generation, indices). ``games``: samples per genome for
        the final choice (``purpose=PURPOSE_FINAL``); ``None``: the problem's own."""
        raise NotImplementedError(f"{type(self).__name__}.make_tasks")

    @property
    def evaluate_task(self) -> Callable[[Any], list[EvalResult]]:
        """A pure module-level function: task -> one EvalResult per genome of the task."""
        raise NotImplementedError(f"{type(self).__name__}.evaluate_task")

    def failed_results(self, task: Any, error: str) -> list[EvalResult]:
        """Failed results (worst fitness, ``error`` set) for every genome of a task that could not run."""
        raise NotImplementedError(f"{type(self).__name__}.failed_results")

    # ------------------------------------------------------------------ optional, with defaults

    def describe(self) -> dict:
        """What is evolved, as JSON (written to RUN_DIR/problem.json)."""
        return {"problem": type(self).__name__, "n_genes": int(self.n_genes), "bounds": [self.low, self.up]}

    def banner(self) -> str:
        """One line describing the problem at the start of a run."""
        return f"{type(self).__name__} genome of {self.n_genes} genes"

    def title(self) -> str:
        """A short title for plots."""
        return type(self).__name__

    def finalize(self, store, result, stream) -> dict:
        """Export the best genome's artefacts into the run store, print its report to
        ``stream``; returns figures for summary.json. Default: ``best/genome.npz``."""
        store.save_genome("best/genome.npz", result.best_genome, final_fitness=result.best_fitness,
                          final_games=result.best_games)
        return {}

    def final_choice(self, result) -> str:
        """How the final best was chosen, for the end-of-run line."""
        return f"fitness {result.best_fitness:.{self.fitness_digits}f} over {result.best_games} fresh evaluations"

    def plan_evaluations(self, genomes: np.ndarray, **task_kw):
        """A plan that answers some genomes without evaluating them (an evaluation cache):
        an object with ``todo`` (row indices to evaluate) and ``merge(results of todo) ->
        results of all rows``; ``None`` (the default): evaluate every genome."""
        return None

    def share_data(self, executor) -> None:
        """Hand data every evaluation needs to the executor once (``executor.share``)."""

    def get_state(self) -> dict:
        """The problem's own state (an evaluation cache) as JSON values and NumPy arrays,
        saved in every checkpoint; a stateless problem returns ``{}``."""
        return {}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state` when ``evonet resume`` continues the run."""

    def genome_key(self, genome: Sequence[float]):
        """A hashable identity of a genome (asynchronous strategies avoid duplicates by it);
        consistent with :meth:`same_genome`. Default: the genes."""
        return tuple(float(x) for x in genome)

    def fidelity_limit(self) -> float | None:
        """The largest budget an evaluation can take (``max_budget`` may not exceed it)."""
        return None

    def make_budget_task(self, genome: np.ndarray, job: int, budget: float, state: bytes | None) -> Any:
        """Multi-fidelity (``fidelity_unit`` set): a task evaluating ``genome`` at ``budget``,
        continuing the training ``state`` (bytes a result's ``state`` held; None: from the
        start). Its result carries the new state in ``EvalResult.state``."""
        raise NotImplementedError(f"{type(self).__name__} has no evaluation budget (fidelity_unit is None)")

    def final_seconds(self, genomes: np.ndarray, seconds: Sequence[float]) -> float:
        """The estimated seconds (one worker) of the final choice among these hall-of-fame
        ``genomes``, given what each one's evaluations cost during the search (``seconds``);
        ``stop.include_final`` stops the search that much before ``stop.max_seconds``.
        Default 0: the final choice is quick (an evaluation cache, a few fresh games)."""
        return 0.0

    def same_genome(self, a: Sequence[float], b: Sequence[float]) -> bool:
        """Whether two genomes are one entry for the hall of fame (default: equal genes)."""
        return len(a) == len(b) and all(x == y for x, y in zip(a, b))

    def record_metrics(self, results: Sequence[EvalResult], seconds: float) -> dict:
        """The problem's own fields of a generation's logbook record (best game, env steps
        per second, cache hits, ...)."""
        return {}

    def progress_text(self, record: dict) -> str:
        """Those fields as text for the generation line (``""``: none)."""
        return ""


class GameMetrics:
    """``record_metrics`` / ``progress_text`` of problems that play games or episodes:
    results carry ``metrics["steps"]`` and ``metrics["max_score"]``."""

    def record_metrics(self, results: Sequence[EvalResult], seconds: float) -> dict:
        steps = sum(r.metrics.get("steps", 0.0) for r in results)
        return {
            "best_game": float(max((r.metrics.get("max_score", r.fitness) for r in results), default=float("nan"))),
            "env_steps_per_s": round(steps / seconds, 1) if seconds > 0 else float("inf"),
        }

    def progress_text(self, record: dict) -> str:
        return (f"best game {record['best_game']:5.0f}  {record['env_steps_per_s'] / 1e6:5.2f} M steps/s"
                if "best_game" in record else "")
