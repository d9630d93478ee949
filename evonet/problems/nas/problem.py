"""Hyperparameter genomes: DEAP evolves Keras architectures and training settings.

A genome is a float vector in [0, 1]^n decoded by a :class:`~evonet.space.SearchSpace`
(see :mod:`evonet.problems.nas.space`), so the ordinary :class:`~evonet.strategy.GeneticAlgorithm` and
its operators evolve it with ``low, up = 0, 1``. Every genome is trained and scored:

* ``fitness: accuracy``: validation accuracy of the model trained on the training split
  (:mod:`evonet.problems.nas.accuracy`); the test split is used once, in :meth:`finalize`;
* ``fitness: snake``: mean score of the network trained on the heuristic's games
  (:mod:`evonet.problems.snake.train`).

``objectives: accuracy+params`` adds the parameter count as a second objective
(minimised) for NSGA-II: results then carry ``objectives = (fitness, params)``.

Evaluation cache: results are kept by the genome's canonical hash (inactive genes dropped,
values typed). :meth:`plan_evaluations` (called by the loop before dispatch) sends only
genomes never trained before, once each, and fills the others from the cache: a duplicate
genome is never trained twice. Hits are counted in the logbook (``cache_hits``) and count
against the budget like any evaluation. The training seed of a genome derives from (run
seed, canonical hash), so a genome's result does not depend on when it was first seen.

The final best: with ``search.final_folds`` the loop's final choice among the hall of fame
(``PURPOSE_FINAL``) cross-validates every distinct member on train + validation, one task
per (genome, fold) (:func:`evonet.evaluators.accuracy.cross_validate_fold`), and the winner
is refit for its full schedule; otherwise it is the best validation accuracy, refit for its
best epoch. ``search.include_defaults`` puts the space's default point in the first generation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from evonet.data.datasets import DataRef
from evonet.problems.nas.accuracy import TrainBudget
from evonet.executors import resolve
from evonet.problems.base import EvalResult, GameMetrics, Problem
from evonet.problems.nas.space import SearchSpace, resolve_space_path


@dataclass(frozen=True)
class SnakeFitness:
    """Snake-score fitness settings (picklable)."""

    rules: str
    board: int
    observation: str
    games: int
    data_games: int
    run_seed: int


@dataclass(frozen=True)
class TrainTask:
    """Canonical genomes to train, with their seeds and everything needed (picklable)."""

    model: str
    genomes: tuple
    seeds: tuple
    #: what to train on: a DataRef (each worker loads it once), a handle from
    #: ``executor.share`` (the data sent once, through Ray's object store), or None
    #: (snake fitness: the heuristic's games, recorded by the worker)
    data: Any
    budget: TrainBudget
    snake: SnakeFitness | None = None
    multi: bool = False
    #: cross-validation (the final choice among the hall of fame): (folds, fold, split seed,
    #: by epoch: score the held-out fold every epoch, ``search.cv_epochs: best``);
    #: None: train on the training split, score on the validation split
    fold: tuple | None = None
    #: multi-fidelity: train up to this epoch (no early stopping), continuing ``state``
    #: (bytes of a rung's saved training; None: from the first epoch); None: the full schedule
    to_epoch: int | None = None
    state: bytes | None = field(default=None, repr=False)
    #: the Keras backend to train on (``search.backend``, resolved in the driver): a worker puts it
    #: in force before its first Keras import (:func:`evonet.keras_backend.use_backend`); None:
    #: the worker's own ``KERAS_BACKEND``
    backend: str | None = None


def budget_key(h: str, budget: float) -> str:
    """The cache key of genome hash ``h`` trained for ``budget`` epochs (multi-fidelity)."""
    return f"{h}@{float(budget):g}"


def _result_to_dict(res: EvalResult) -> dict:
    return {"fitness": float(res.fitness), "weight": int(res.weight),
            "metrics": {str(k): [float(x) for x in v] if isinstance(v, (list, tuple)) else float(v)
                        for k, v in res.metrics.items()}, "error": res.error,
            "seconds": float(res.seconds),
            "objectives": None if res.objectives is None else [float(v) for v in res.objectives]}


def _result_from_dict(d: dict) -> EvalResult:
    obj = d.get("objectives")
    return EvalResult(fitness=float(d["fitness"]), weight=int(d["weight"]), metrics=dict(d["metrics"]),
                      error=d["error"], seconds=float(d["seconds"]),
                      objectives=None if obj is None else tuple(float(v) for v in obj))


def _with_objectives(res: EvalResult, multi: bool) -> EvalResult:
    if multi and res.error is None:
        res.objectives = (float(res.fitness), float(res.metrics.get("params", math.nan)))
    return res


def snake_game_seeds(snake: SnakeFitness) -> np.ndarray:
    from evonet.core import seeding

    return seeding.training_game_seeds(snake.run_seed, 0, [1], snake.games, purpose=seeding.PURPOSE_GAMES + 101)[0]


def evaluate_train_task(task: TrainTask) -> list[EvalResult]:
    """Train and score every genome of the task. Pure (given the data); raises only
    :class:`~evonet.keras_backend.BackendMismatch` (this process's Keras runs another backend
    than the task's), a failed training is a failed result."""
    backend = getattr(task, "backend", None)  # a task pickled before the field existed: None
    if backend is not None:
        from evonet.keras_backend import use_backend

        use_backend(backend)
    out = []
    if task.snake is not None:
        from evonet.problems.snake.train import cached_heuristic_dataset, train_and_play
        from evonet.problems.snake.problem import make_snake_rules

        s = task.snake
        if task.data is not None:
            data = resolve(task.data)
        else:
            data = cached_heuristic_dataset(s.rules, s.board, s.observation, s.data_games, s.run_seed)
        rules = make_snake_rules(s.rules, s.board)
        seeds = snake_game_seeds(s)
        for genome, seed in zip(task.genomes, task.seeds):
            res, _ = train_and_play(genome, task.budget, seed, rules, s.observation, data, seeds)
            out.append(_with_objectives(res, task.multi))
        return out
    from evonet.data.datasets import cached_dataset
    from evonet.problems.nas.accuracy import train_genome

    data = cached_dataset(task.data) if isinstance(task.data, DataRef) else resolve(task.data)
    for genome, seed in zip(task.genomes, task.seeds):
        if task.to_epoch is not None:
            from evonet.problems.nas.accuracy import train_genome_rung

            res, state = train_genome_rung(genome, task.model, data, task.budget, seed, task.to_epoch, task.state)
            res.state = state
            out.append(res)
            continue
        if task.fold is not None:
            from evonet.problems.nas.accuracy import cross_validate_fold

            folds, fold, split_seed, by_epoch = task.fold
            out.append(cross_validate_fold(genome, task.model, data, task.budget, seed, folds, fold, split_seed,
                                           by_epoch=by_epoch))
            continue
        res, _ = train_genome(genome, task.model, data, task.budget, seed)
        out.append(_with_objectives(res, task.multi))
    return out


@dataclass
class Plan:
    """Which genomes of a batch need training, and how to rebuild the full result list."""

    todo: list[int]
    problem: "HyperparamProblem"
    hashes: list[str]
    #: > 0: a cross-validation plan (``folds`` results per genome of ``todo``)
    folds: int = 0

    def merge(self, results: Sequence[EvalResult]) -> list[EvalResult]:
        if self.folds:
            return self.problem._merge_folds(self, list(results))
        return self.problem._merge(self, list(results))


class HyperparamProblem(Problem):
    """Keras architectures and hyperparameters from a search space; see the module doc."""

    low, up = 0.0, 1.0
    #: the Keras backend the trainings run on (a problem pickled before this field: None, the
    #: workers' own ``KERAS_BACKEND``)
    backend: str | None = None
    #: ``search.ensemble`` (a problem pickled before this field: 1, the best genome alone)
    ensemble: int = 1

    def __init__(self, space: SearchSpace, data: DataRef | None, budget: TrainBudget, run_seed: int = 0,
                 objectives: str = "accuracy", snake: SnakeFitness | None = None, eval_games: int = 1000,
                 baseline: dict | None = None, dataset=None, final_folds: int = 0,
                 include_defaults: bool = False, cv_epochs: str = "full", backend: str | None = None,
                 ensemble: int = 1):
        from evonet.keras_backend import check_backend, use_backend

        self.backend = use_backend(check_backend(backend, "search.backend"))  # before any Keras import
        self.space = space
        self.n_genes = space.n_genes
        self.data = data
        self.budget = budget
        self.run_seed = int(run_seed)
        self.objectives = objectives
        self.multi = objectives == "accuracy+params"
        self.snake = snake
        self.eval_games = int(eval_games)
        self.baseline = space.canonical(baseline) if baseline else None
        self.dataset = dataset  # loaded in the driver (validation before training; finalize)
        self.shared = None  # the training data handed to the executor once (share_data)
        self.final_folds = int(final_folds)  # k-fold cross-validation picks the final best (0: off)
        if cv_epochs not in ("full", "best"):
            from evonet.core.errors import ConfigError

            raise ConfigError(f"search.cv_epochs: expected full or best, got {cv_epochs!r}")
        self.cv_epochs = cv_epochs  # best: the folds also cross-validate the epoch count
        self.include_defaults = bool(include_defaults)  # the space's default point starts the search
        if isinstance(ensemble, bool) or not isinstance(ensemble, (int, np.integer)) or ensemble < 1:
            from evonet.core.errors import ConfigError

            raise ConfigError(f"search.ensemble: expected a number of members >= 1, got {ensemble!r}")
        self.ensemble = int(ensemble)  # the exported model averages the best N candidates (1: the best alone)
        self.cv: dict[str, EvalResult] = {}  # cross-validation results of the final choice, by hash
        self.cache: dict[str, EvalResult] = {}
        self.genomes_by_hash: dict[str, dict] = {}
        self.first_seen: dict[str, int] = {}
        self.trainings = 0
        self.cv_trainings = 0
        self.cache_hits = 0
        self._generation = 0
        self.final_model = None  # the refit best model, once finalize has run (the Python API returns it)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, cfg) -> "HyperparamProblem":
        from evonet.data.datasets import load_dataset

        s = cfg.search
        space = SearchSpace.load(resolve_space_path(s.space))
        budget = TrainBudget(epochs=s.epochs, patience=s.patience, max_params=s.max_params)
        baseline = None
        if s.baseline is not None:
            baseline = space.complete(s.baseline, "search.baseline")
        if s.fitness == "snake":
            if space.model != "mlp":
                from evonet.core.errors import ConfigError

                raise ConfigError(f"search.space: snake fitness needs an mlp space, {s.space} is a {space.model} space")
            snake = SnakeFitness(cfg.snake.rules, cfg.snake.board, cfg.snake.observation, cfg.snake.games,
                                 s.snake_data_games, cfg.seed)
            return cls(space, None, budget, cfg.seed, s.objectives, snake, cfg.eval_games, baseline,
                       include_defaults=s.include_defaults, backend=s.backend)
        from evonet.keras_backend import check_backend, use_backend

        use_backend(check_backend(s.backend, "search.backend"))  # before load_dataset's Keras import
        ref = DataRef(s.dataset, s.data_path, s.validation)
        dataset = load_dataset(ref)  # bad files fail here, before any training
        return cls(space, ref, budget, cfg.seed, s.objectives, None, cfg.eval_games, baseline, dataset,
                   final_folds=s.final_folds, include_defaults=s.include_defaults, cv_epochs=s.cv_epochs,
                   backend=s.backend, ensemble=s.ensemble)

    @property
    def model_kind(self):
        """What the trainer builds a genome's model with: the space's builder name (mlp, cnn)."""
        return self.space.model

    # ------------------------------------------------------------------ checkpoint state

    def get_state(self) -> dict:
        """The evaluation cache, the cross-validation cache, the genomes seen and the counters,
        as JSON values (saved in every checkpoint; ``evonet resume`` restores them with
        :meth:`set_state`, so a resumed search trains nothing twice and reports the same
        cache hits, trainings, archive and Pareto front as an uninterrupted one). Genomes are
        lists of ``[name, value]`` pairs (names may hold any character)."""
        return {
            "cache": [[h, _result_to_dict(r)] for h, r in self.cache.items()],
            "cv": [[h, _result_to_dict(r)] for h, r in self.cv.items()],
            "genomes_by_hash": [[h, [[k, v] for k, v in g.items()]] for h, g in self.genomes_by_hash.items()],
            "first_seen": [[h, int(g)] for h, g in self.first_seen.items()],
            "trainings": int(self.trainings), "cv_trainings": int(self.cv_trainings),
            "cache_hits": int(self.cache_hits), "generation": int(self._generation),
            "backend": self.backend,
        }

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`; a run resumed on another Keras backend than it trained on
        is a one-line ConfigError (its cached results would mix two backends' figures)."""
        saved = state.get("backend")
        if saved is not None and saved != self.backend:
            from evonet.core.errors import ConfigError

            raise ConfigError(f"search.backend: this run trained on the {saved} backend, the resume would train on "
                              f"{self.backend}; resume it with KERAS_BACKEND={saved}")
        self.cache = {str(h): _result_from_dict(r) for h, r in state["cache"]}
        self.cv = {str(h): _result_from_dict(r) for h, r in state["cv"]}
        self.genomes_by_hash = {str(h): {str(k): v for k, v in pairs} for h, pairs in state["genomes_by_hash"]}
        self.first_seen = {str(h): int(g) for h, g in state["first_seen"]}
        self.trainings = int(state["trainings"])
        self.cv_trainings = int(state["cv_trainings"])
        self.cache_hits = int(state["cache_hits"])
        self._generation = int(state["generation"])

    # ------------------------------------------------------------------ Problem protocol

    @property
    def weights(self) -> tuple[float, ...]:
        """DEAP fitness weights: maximise accuracy (and minimise parameters)."""
        return (1.0, -1.0) if self.multi else (1.0,)

    def init_genomes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random genomes; with ``include_defaults`` the first is the space's default
        point (the others are drawn as without it: the same rng draws)."""
        genomes = self.space.sample(rng, n)
        if self.include_defaults and n > 0:
            genomes[0] = self.space.encode(self.space.defaults())
        return genomes

    def same_genome(self, a, b) -> bool:
        """Two genomes train the same network (one canonical hash): the hall of fame keeps one."""
        return self.genome_hash_of(a) == self.genome_hash_of(b)

    def genome_hash_of(self, genome) -> str:
        return self.space.genome_hash(self.space.canonical(np.asarray(genome, dtype=np.float64)))

    def seed_of(self, h: str) -> int:
        return int(np.random.SeedSequence([self.run_seed, int(h, 16)]).generate_state(1)[0])

    def final_seconds(self, genomes, seconds) -> float:
        """With ``search.final_folds`` K: each member trains K times on (K-1)/K of training +
        validation data; a fold's training is estimated from what the member's search
        trainings took, scaled by the examples (0 for a member answered by the CV cache)."""
        if not self.final_folds or self.dataset is None:
            return 0.0
        k = self.final_folds
        n_train = max(1, len(self.dataset.x_train))
        pool = n_train + len(self.dataset.x_val)
        total = 0.0
        for g, s in zip(np.asarray(genomes, dtype=np.float64), seconds):
            if self.space.genome_hash(self.space.canonical(g)) in self.cv:
                continue
            total += k * float(s) * (pool * (k - 1) / k) / n_train
        return total

    def cross_validates(self, purpose: int | None) -> bool:
        """Whether an evaluation for ``purpose`` is the final k-fold cross-validation."""
        from evonet.core import seeding

        return self.final_folds > 0 and purpose == seeding.PURPOSE_FINAL

    def plan_evaluations(self, genomes: np.ndarray, purpose: int | None = None, budget: float | None = None,
                         **_) -> Plan:
        """Dedupe a batch against the cache and itself; only ``todo`` rows are trained.

        For the final choice among the hall of fame (``purpose`` ``PURPOSE_FINAL``) with
        ``final_folds``, each distinct genome is cross-validated instead (its own cache);
        without, a genome trained only at multi-fidelity budgets is answered by its largest.
        ``budget`` (epochs, multi-fidelity): the cache knows (genome, budget)."""
        from evonet.core import seeding

        cv = self.cross_validates(purpose)
        cache = self.cv if cv else self.cache
        hashes, todo, batch = [], [], set()
        for i, g in enumerate(np.asarray(genomes, dtype=np.float64)):
            canon = self.space.canonical(g)
            h = self.space.genome_hash(canon)
            self.genomes_by_hash.setdefault(h, canon)
            if budget is not None:
                h = budget_key(h, budget)
            elif not cv and purpose == seeding.PURPOSE_FINAL and h not in cache:
                h = self.largest_budget(h) or h
            hashes.append(h)
            if h not in cache and h not in batch:
                batch.add(h)
                todo.append(i)
        return Plan(todo, self, hashes, folds=self.final_folds if cv else 0)

    def largest_budget(self, h: str) -> str | None:
        """The cache key of genome ``h``'s result at its largest multi-fidelity budget (a
        successful one), if any."""
        best = None
        for key, res in self.cache.items():
            base, _, b = key.partition("@")
            if base == h and b and res.error is None and (best is None or float(b) > best[0]):
                best = (float(b), key)
        return None if best is None else best[1]

    # ------------------------------------------------------------------ multi-fidelity

    @property
    def fidelity_unit(self) -> str | None:
        """Budgets are epochs (validation accuracy only: snake fitness replays its games)."""
        return None if self.snake is not None else "epochs"

    fidelity_limit_field = "search.epochs"

    def fidelity_limit(self) -> float:
        return float(self.budget.epochs)

    def genome_key(self, genome) -> str:
        return self.genome_hash_of(genome)

    def make_budget_task(self, genome, job: int, budget: float, state: bytes | None) -> TrainTask:
        """Train ``genome`` up to epoch ``budget``, continuing ``state`` (see
        :func:`evonet.problems.nas.accuracy.train_genome_rung`)."""
        canon = self.space.canonical(np.asarray(genome, dtype=np.float64))
        h = self.space.genome_hash(canon)
        data = self.data if self.shared is None else self.shared
        return TrainTask(self.model_kind, (canon,), (self.seed_of(h),), data, self.budget, None, self.multi,
                         to_epoch=int(round(budget)), state=state, backend=self.backend)

    def _merge_folds(self, plan: Plan, results: list[EvalResult]) -> list[EvalResult]:
        """Pool each genome's ``plan.folds`` fold results (in task order) into one."""
        from evonet.problems.nas.accuracy import pool_folds

        k = plan.folds
        fresh = {}
        for j, i in enumerate(plan.todo):
            part = results[j * k:(j + 1) * k]
            h = plan.hashes[i]
            fresh[h] = pool_folds(part, by_epoch=self.cv_epochs == "best")
            self.cv_trainings += k
            if not any(r.metrics.get("lost") for r in part):  # a lost worker is not a result
                self.cv[h] = fresh[h]
        return [fresh.get(h) or self.cv[h] for h in plan.hashes]

    def _merge(self, plan: Plan, results: list[EvalResult]) -> list[EvalResult]:
        fresh = {}
        for i, res in zip(plan.todo, results):
            h = plan.hashes[i]
            fresh[i] = res
            self.trainings += 1
            if not res.metrics.get("lost"):
                self.cache[h] = res
                self.first_seen.setdefault(h, self._generation)
        out = []
        for i, h in enumerate(plan.hashes):
            if i in fresh:
                out.append(fresh[i])
                continue
            hit = self.cache.get(h)
            if hit is None:  # a duplicate of a genome of this batch whose worker was lost
                hit = next(fresh[j] for j in plan.todo if plan.hashes[j] == h)
            self.cache_hits += 1
            out.append(dataclasses.replace(hit, metrics={**hit.metrics, "cached": 1.0}, seconds=0.0))
        return out

    def share_data(self, executor) -> None:
        """Hand the training data to ``executor`` once, before the first evaluation.

        Tasks then carry the handle instead of the data: with Ray the data goes into the
        object store once and each worker fetches it once (on another node too, where the
        dataset file may not exist). The test split stays in the driver: it is used once,
        for the final best, in :meth:`finalize`. Snake fitness shares the heuristic's
        recorded games, so the workers do not each play them again.
        """
        if self.snake is not None:
            from evonet.problems.snake.train import cached_heuristic_dataset

            s = self.snake
            data = cached_heuristic_dataset(s.rules, s.board, s.observation, s.data_games, s.run_seed)
        elif self.dataset is not None:
            empty_x = self.dataset.x_test[:0]
            data = dataclasses.replace(self.dataset, x_test=empty_x, y_test=self.dataset.y_test[:0])
        else:
            return
        self.shared = executor.share(data)

    def fold_seed(self, h: str, fold: int) -> int:
        """The training seed of fold ``fold`` of genome ``h``'s cross-validation (a stream of
        its own: not the search training's seed)."""
        from evonet.core import seeding

        ss = np.random.SeedSequence([self.run_seed, int(h, 16), seeding.PURPOSE_FINAL, int(fold)])
        return int(ss.generate_state(1)[0])

    def split_seed(self) -> int:
        """The seed of the cross-validation folds: one split for every genome of a run."""
        from evonet.core import seeding

        return int(seeding.seed_sequence(self.run_seed, seeding.PURPOSE_FINAL).generate_state(1)[0])

    def make_tasks(self, genomes, generation, indices, chunk, purpose=None, **_):
        """Tasks for the (already deduplicated) genomes; ``chunk`` genomes per task. For the
        final cross-validation: one task per (genome, fold), genome by genome."""
        canon = [self.space.canonical(g) for g in np.asarray(genomes, dtype=np.float64)]
        data = self.data if self.shared is None else self.shared
        if self.cross_validates(purpose):
            k, split = self.final_folds, self.split_seed()
            tasks = []
            for c in canon:
                h = self.space.genome_hash(c)
                tasks += [TrainTask(self.model_kind, (c,), (self.fold_seed(h, f),), data, self.budget,
                                    fold=(k, f, split, self.cv_epochs == "best"), backend=self.backend)
                          for f in range(k)]
            return tasks
        self._generation = int(generation)
        seeds = [self.seed_of(self.space.genome_hash(c)) for c in canon]
        chunk = max(1, int(chunk))
        return [TrainTask(self.model_kind, tuple(canon[i:i + chunk]), tuple(seeds[i:i + chunk]),
                          data, self.budget, self.snake, self.multi, backend=self.backend)
                for i in range(0, len(canon), chunk)]

    @property
    def evaluate_task(self):
        return evaluate_train_task

    @staticmethod
    def failed_results(task: TrainTask, error: str) -> list[EvalResult]:
        """A task that could not run (worker lost, timeout): failed, and not cached."""
        return [EvalResult(fitness=float("-inf"), weight=0, metrics={"lost": 1.0}, error=error)
                for _ in task.genomes]

    def describe(self) -> dict:
        out = {"genome": "hyperparameters", "space": self.space.to_dict(), "n_genes": self.n_genes,
               "objectives": self.objectives, "budget": dataclasses.asdict(self.budget),
               "fitness": "snake" if self.snake else "accuracy", "backend": self.backend}
        if self.snake:
            out["snake"] = dataclasses.asdict(self.snake)
        if self.dataset is not None:
            out["dataset"] = self.dataset.describe()
        return out

    def banner(self) -> str:
        if self.snake:
            what = (f"fitness = mean score over {self.snake.games} {self.snake.rules} {self.snake.board}x"
                    f"{self.snake.board} games of the network trained on {self.snake.data_games} heuristic games")
        else:
            d = self.dataset
            what = (f"dataset {d.name} ({len(d.y_train)} train / {len(d.y_val)} validation / {len(d.y_test)} test), "
                    f"fitness = validation accuracy")
        obj = ", NSGA-II on (accuracy, parameters)" if self.multi else ""
        return (f"hyperparameter genome of {self.n_genes} genes (space {self.space.name}, {self.space.model}), "
                f"{what}{obj}, at most {self.budget.epochs} epochs, patience {self.budget.patience}, "
                f"max {self.budget.max_params} parameters, Keras backend {self.backend}")

    def record_metrics(self, results, seconds: float) -> dict:
        """Cache hits of the generation; with snake fitness also its best game and env steps."""
        out = GameMetrics.record_metrics(self, results, seconds) if self.snake is not None else {}
        out["cache_hits"] = sum(1 for r in results if r.metrics.get("cached"))
        return out

    def progress_text(self, record: dict) -> str:
        games = GameMetrics.progress_text(self, record) if self.snake is not None else ""
        hits = f"cache hits {record['cache_hits']}" if record.get("cache_hits") else ""
        return "  ".join(t for t in (games, hits) if t)

    @property
    def fitness_digits(self) -> int:
        """Decimals of the fitness in progress lines: accuracies need 4, scores 2."""
        return 2 if self.snake else 4

    def final_choice(self, result) -> str:
        """How the final best was picked among the hall of fame (the run's closing line)."""
        if self.snake:
            return f"mean score {result.best_fitness:.2f} over {self.snake.games} training games (the search's)"
        n = len(result.candidates)
        if self.final_folds:
            best = self.cv.get(self.genome_hash_of(result.best_genome))
            where = (f" on {int(best.metrics['cv_examples'])} training + validation examples"
                     if best is not None and best.error is None else "")
            return (f"{self.final_folds}-fold cross-validation accuracy {result.best_fitness:.4f}{where} "
                    f"(best of {n} cross-validated)")
        return f"validation accuracy {result.best_fitness:.4f} (the search's; best of {n})"

    def title(self) -> str:
        return f"{self.space.name} on {'snake' if self.snake else self.dataset.name}"

    # ------------------------------------------------------------------ the end of a run

    def archive(self) -> list[dict]:
        """Every genome trained in this run: hash, genome, fitness, params, error (and, for
        multi-fidelity results, ``budget``: the epoch the training reached; one row per budget)."""
        rows = []
        for key, res in self.cache.items():
            h, _, budget = key.partition("@")
            row = {"hash": h, "first_generation": self.first_seen.get(key), "fitness": res.fitness,
                   "params": res.metrics.get("params"), "epochs": res.metrics.get("epochs"), "error": res.error,
                   "seconds": round(res.seconds, 3), "genome": self.genomes_by_hash.get(h)}
            if budget:
                row["budget"] = float(budget)
            rows.append(row)
        return rows

    def pareto_front(self) -> list[dict]:
        """Non-dominated successful genomes on (fitness max, params min), by params."""
        pts = [r for r in self.archive() if r["error"] is None and r["params"] is not None]
        front = []
        for r in pts:
            dominated = any((q["fitness"] >= r["fitness"] and q["params"] <= r["params"])
                            and (q["fitness"] > r["fitness"] or q["params"] < r["params"]) for q in pts)
            if not dominated:
                front.append(r)
        front.sort(key=lambda r: (r["params"], -r["fitness"]))
        return front

    def _plot_pareto(self, path: Path, front: list[dict]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        pts = [r for r in self.archive() if r["error"] is None and r["params"]]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter([r["params"] for r in pts], [r["fitness"] for r in pts], s=10, c="0.6", label="evaluated")
        ax.plot([r["params"] for r in front], [r["fitness"] for r in front], "o-", c="C3", label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("mean score" if self.snake else "validation accuracy")
        ax.set_title(f"{self.title()}: {len(pts)} genomes")
        ax.legend()
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)

    def finalize(self, store, result, stream) -> dict:
        """Retrain the best genome (same seed), export ``best/model.keras``, score the test
        split once (snake: play ``eval_games`` evaluation games), write ``best/summary.json``,
        the Pareto front (``best/pareto.json``, ``best/pareto.png``) and ``evaluations.jsonl``."""
        canon = self.space.canonical(np.asarray(result.best_genome, dtype=np.float64))
        h = self.space.genome_hash(canon)
        searched = self._searched(h)
        for row in self.archive():
            store.append_jsonl("evaluations.jsonl", row)
        front = self.pareto_front()
        store.write_json("best/pareto.json", front)
        try:
            self._plot_pareto(store.file("best/pareto.png"), front)
        except Exception as exc:  # noqa: BLE001 - a plot never fails a run
            stream.write(f"(no Pareto plot: {type(exc).__name__}: {exc})\n")
        summary: dict[str, Any] = {
            "space": self.space.name, "genome": canon, "hash": h, "backend": self.backend,
            "trainings": self.trainings,
            "cache_hits": int(sum(r.get("cache_hits", 0) for r in result.logbook)),
            "evaluations": int(sum(r.get("evals", 0) for r in result.logbook)),
            "search_fitness": None if searched is None else searched.fitness,
            "pareto_front_size": len(front),
        }
        t0 = time.perf_counter()
        if self.snake:
            summary.update(self._finalize_snake(store, canon, h, stream))
        else:
            summary.update(self._finalize_accuracy(store, canon, h, searched, stream, result))
        summary["finalize_seconds"] = round(time.perf_counter() - t0, 2)
        store.write_json("best/summary.json", summary)
        return {"best": summary}

    def _finalize_accuracy(self, store, canon, h, searched, stream, result) -> dict:
        """The search's final model: the best genome refit on training + validation data (for
        the best epoch of its search training, or, when cross-validation chose it, for the
        full schedule that the folds measured), then scored once on the test split."""
        from evonet.keras_backend import save_model
        from evonet.problems.nas.accuracy import accuracy

        d = self.dataset
        cv, epochs, val, refit, model = self._refit(canon, h, searched)
        if model is None:
            stream.write(f"best genome could not be retrained: {refit.error}\n")
            return {"error": refit.error}
        path = store.file("best/model.keras")
        path.parent.mkdir(parents=True, exist_ok=True)
        exported, ens = model, None
        if self.ensemble > 1:  # search.ensemble: the best N candidates, averaged
            best_entry = {"hash": h, "genome": canon, "params": int(refit.metrics["params"]),
                          "refit_epochs": int(refit.metrics["epochs"]), "validation_accuracy": val.fitness,
                          "cv_accuracy": None if cv is None else cv.fitness}
            exported, ens = self._ensemble(model, best_entry, result, stream)
        save_model(exported, path)  # loads and predicts under every Keras backend
        self.final_model = exported
        # the only use of the test split (none for a user's arrays: they keep their own); with an
        # ensemble the best genome alone is scored too, for comparison (neither score chooses anything)
        test_acc = accuracy(exported, d.x_test, d.y_test) if len(d.y_test) else None
        if ens is not None:
            ens["test_accuracy"] = test_acc
            ens["best_genome_test_accuracy"] = accuracy(model, d.x_test, d.y_test) if len(d.y_test) else None
        out = {"dataset": d.describe(), "params": int(refit.metrics["params"]), "epochs": int(val.metrics["epochs"]),
               "best_epoch": int(val.metrics["best_epoch"]), "val_accuracy": val.fitness,
               "refit": {"epochs": int(refit.metrics["epochs"]), "train_examples": int(refit.metrics["train_examples"]),
                         "seconds": round(refit.seconds, 2)},
               "test_accuracy": test_acc, "model": "best/model.keras",
               "input": {"shape": [None, *d.input_shape], "dtype": "float32", "raw_scale": d.scale}}
        if ens is not None:
            out["ensemble"] = ens
        cv_line = ""
        refit_why = ("the epochs of its best cross-validation accuracy" if epochs is not None
                     else "its full schedule" if cv is not None else "its best epoch")
        if cv is not None:
            out["cross_validation"] = {
                "folds": self.final_folds, "accuracy": cv.fitness, "examples": int(cv.metrics["cv_examples"]),
                "fold_accuracies": [cv.metrics[f"fold_{f}"] for f in range(self.final_folds)],
                "candidates": [{"rank": c["rank"], "validation_accuracy": c["train_fitness"],
                                "cv_accuracy": c["final_fitness"]} for c in result.candidates],
                "trainings": self.cv_trainings}
            if epochs is not None:
                out["cross_validation"]["best_epoch"] = epochs
                out["cross_validation"]["accuracy_by_epoch"] = cv.metrics["cv_accuracy_by_epoch"]
            cv_line = (f"  chosen by {self.final_folds}-fold cross-validation among {len(result.candidates)} hall-of-fame "
                       f"genomes: accuracy {cv.fitness:.4f} on {out['cross_validation']['examples']} training + "
                       f"validation images ({self.cv_trainings} trainings)\n")
        alone = test_acc if ens is None else ens["best_genome_test_accuracy"]  # this genome's own model
        refit_line = (f"  refit on {out['refit']['train_examples']} training + validation images for "
                      f"{out['refit']['epochs']} epochs ({refit_why})"
                      + (f"; test accuracy {alone:.4f} on {len(d.y_test)} test images\n" if alone is not None
                         else "; no test split\n"))
        if ens is not None:
            others = ", ".join(m["hash"] for m in ens["members"][1:])
            refit_line += (f"  exported: an ensemble of {ens['size']} (the best and {others}), {ens['params']} parameters"
                           + (f"; test accuracy {test_acc:.4f} (the best genome alone: {alone:.4f})\n"
                              if test_acc is not None else "\n"))
        stream.write(
            f"best genome {h}: {json.dumps(canon)}\n"
            f"  {out['params']} parameters, best epoch {out['best_epoch']} of {out['epochs']}; "
            f"validation accuracy {val.fitness:.4f}\n" + cv_line + refit_line +
            f"  {self.trainings} trainings, {sum(r.get('cache_hits', 0) for r in result.logbook)} cache hits "
            f"during the search; model: {path}\n"
            if searched is not None else
            f"best genome {h}: {json.dumps(canon)}\n" + refit_line + f"  model: {path}\n"
        )
        return out

    def _searched(self, h: str) -> EvalResult | None:
        """The search's result of genome ``h`` (a multi-fidelity search: at its largest budget)."""
        searched = self.cache.get(h)
        if searched is None and self.largest_budget(h):
            searched = self.cache[self.largest_budget(h)]
        return searched

    def _refit(self, canon: dict, h: str, searched: EvalResult | None):
        """Genome ``h`` refit on training + validation data as a final choice is: for the epoch
        count its cross-validation picked (``search.cv_epochs: best``), else for its full
        schedule when it was cross-validated, else for its best search epoch. Returns
        ``(cv, epochs, val, refit, model)``: its usable cross-validation result (or None), the
        cross-validated epoch count (or None) and :func:`train_and_refit`'s three values."""
        from evonet.problems.nas.accuracy import train_and_refit

        cv = self.cv.get(h)
        if cv is not None and cv.error is not None:
            cv = None
        epochs = None
        if cv is not None and "cv_best_epoch" in cv.metrics:  # search.cv_epochs: best
            epochs = int(cv.metrics["cv_best_epoch"])
        val, refit, model = train_and_refit(canon, self.model_kind, self.dataset, self.budget, self.seed_of(h),
                                            searched=searched, full_schedule=cv is not None, epochs=epochs)
        return cv, epochs, val, refit, model

    def _ensemble(self, best_model, best_entry: dict, result, stream) -> tuple[Any, dict]:
        """``search.ensemble`` N: the best model and the next N - 1 distinct candidates of the
        final choice (by its score: cross-validation accuracy with ``final_folds``, else the
        search's validation accuracy; failed ones are skipped), each refit on training +
        validation data as the best is (for its cross-validated epochs, its full schedule or
        its best epoch), combined into one Keras model that averages their outputs. Returns
        ``(model, info)``; a member whose refit fails is left out and named in ``info["failed"]``.
        The test split is not touched."""
        from evonet.core.strategy import WORST
        from evonet.tf_utils import import_keras

        d = self.dataset
        order = sorted(range(len(result.candidates)),
                       key=lambda i: (-result.candidates[i]["final_fitness"], result.candidates[i]["rank"]))
        seen, picked = {best_entry["hash"]}, []
        for i in order:
            if len(picked) + 1 >= self.ensemble:
                break
            if result.candidates[i]["final_fitness"] <= WORST / 2 or i >= len(result.candidate_genomes):
                continue  # a failed candidate
            canon = self.space.canonical(np.asarray(result.candidate_genomes[i], dtype=np.float64))
            mh = self.space.genome_hash(canon)
            if mh not in seen:
                seen.add(mh)
                picked.append((canon, mh))
        members, entries, failed = [best_model], [best_entry], []
        for canon, mh in picked:
            cv, _, val, refit, model = self._refit(canon, mh, self._searched(mh))
            if model is None:
                failed.append({"hash": mh, "error": refit.error})
                stream.write(f"ensemble member {mh} could not be retrained: {refit.error}\n")
                continue
            members.append(model)
            entries.append({"hash": mh, "genome": canon, "params": int(refit.metrics["params"]),
                            "refit_epochs": int(refit.metrics["epochs"]), "validation_accuracy": val.fitness,
                            "cv_accuracy": None if cv is None else cv.fitness})
        keras = import_keras()
        try:
            spec = best_model.inputs[0]
            shape, dtype = tuple(spec.shape[1:]), spec.dtype
        except (AttributeError, IndexError, TypeError, ValueError):  # a model without a symbolic input
            shape, dtype = tuple(d.input_shape), "float32"
        inp = keras.Input(shape=shape, dtype=dtype, name="ensemble_input")
        for k, m in enumerate(members):
            m.name = f"member_{k}"  # names are unique within the ensemble (Keras serializes by name)
        outputs = [m(inp) for m in members]
        out = outputs[0] if len(outputs) == 1 else keras.layers.Average(name="average")(outputs)
        model = keras.Model(inp, out, name=f"ensemble_of_{len(members)}")
        if getattr(best_model, "loss", None) is not None:  # compiled as the members are: evaluate() works
            # plain SGD, built: the saved optimizer state is what a load builds (no slot variables)
            model.compile(optimizer="sgd", loss=best_model.loss, metrics=["accuracy"])
            model.optimizer.build(model.trainable_variables)
        info = {"requested": self.ensemble, "size": len(members), "params": int(sum(e["params"] for e in entries)),
                "members": entries, "failed": failed}
        return model, info

    def _finalize_snake(self, store, canon, h, stream) -> dict:
        from evonet.core import seeding
        from evonet.keras_backend import save_model
        from evonet.problems.snake.train import cached_heuristic_dataset, to_mlp, train_and_play
        from evonet.problems.snake.problem import make_snake_rules
        from evonet.problems.snake.agent import save_agent

        s = self.snake
        rules = make_snake_rules(s.rules, s.board)
        data = cached_heuristic_dataset(s.rules, s.board, s.observation, s.data_games, s.run_seed)
        seeds = seeding.evaluation_game_seeds(max(1, self.eval_games))
        rules_meta = {"name": s.rules, "width": s.board, "height": s.board}
        out: dict[str, Any] = {"rules": rules_meta, "observation": s.observation,
                               "training_steps": int(len(data[1])), "eval_seeds": f"0..{len(seeds) - 1}"}
        entries = [("best", canon, h)]
        if self.baseline is not None:
            entries.append(("baseline", self.baseline, self.space.genome_hash(self.baseline)))
        for label, genome, gh in entries:
            res, model = train_and_play(genome, self.budget, self.seed_of(gh), rules, s.observation, data, seeds,
                                        keep_model=True)
            if model is None:
                out[label] = {"genome": genome, "error": res.error}
                stream.write(f"{label} {json.dumps(genome)}: failed: {res.error}\n")
                continue
            spec, flat = to_mlp(model, data[0].shape[1])
            folder = "best" if label == "best" else f"best/{label}"
            path = store.file(f"{folder}/model.keras")
            path.parent.mkdir(parents=True, exist_ok=True)
            save_model(model, path)
            save_agent(store.file(folder), spec, flat, s.observation, rules_meta,
                       extra={"genome": genome, "run_seed": self.run_seed})
            search = self.cache.get(gh)
            out[label] = {"genome": genome, "hash": gh, "params": int(res.metrics["params"]),
                          "imitation_accuracy": res.metrics["imitation_accuracy"],
                          "search_fitness": None if search is None else search.fitness,
                          "mean_score": res.fitness, "max_score": res.metrics["max_score"], "games": res.weight}
            stream.write(f"{label} {json.dumps(genome)}: {out[label]['params']} parameters, imitation accuracy "
                         f"{res.metrics['imitation_accuracy']:.3f}; mean score {res.fitness:.2f} (max "
                         f"{res.metrics['max_score']:.0f}) over {res.weight} evaluation games\n")
        return out


def make_hyperparam_problem(cfg) -> HyperparamProblem:
    return HyperparamProblem.from_config(cfg)
