"""Snake-score fitness for trained networks: the seed blog's own architecture search.

The blog trained a Keras network on games of its heuristic policy (angle to the apple,
with the blocked-direction fixes; :mod:`evonet.envs.snake.heuristic`) and scored it by
playing. Here:

1. :func:`heuristic_dataset` plays games with the heuristic on the engine and records
   each step's observation and the heuristic's action (supervised data);
2. :func:`train_and_play` trains a genome's dense network on it (cross-entropy, 10 % of
   the steps held out for early stopping), copies the trained Dense layers into an
   :class:`evonet.nn.MLPSpec` and plays ``seeds`` games greedily with the batched
   evaluator; fitness = mean score.

Both are pure functions of their arguments (seeded), no files, no printing.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from evonet.problems.base import EvalResult


def heuristic_dataset(rules, observation: str, seeds) -> tuple[np.ndarray, np.ndarray]:
    """(observations float32 (M, n_obs), actions int64 (M,)) of the heuristic playing ``seeds``."""
    from evonet.envs.snake.engine import BatchSnake
    from evonet.envs.snake.rng import as_seeds

    engine = BatchSnake(rules, as_seeds(np.asarray(seeds)))
    xs, ys = [], []
    active = np.flatnonzero(~engine.done).astype(np.int64)
    while active.size:
        xs.append(engine.observe(observation, active))
        acts = engine.heuristic_actions(active)
        ys.append(acts)
        engine.step(acts, active)
        active = active[~engine.done[active]]
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)


@functools.lru_cache(maxsize=2)
def cached_heuristic_dataset(rules_name: str, board: int, observation: str, games: int, seed: int):
    from evonet.core import seeding
    from evonet.problems.snake.problem import make_snake_rules

    seeds = seeding.training_game_seeds(seed, 0, [0], games, purpose=seeding.PURPOSE_GAMES + 100)[0]
    return heuristic_dataset(make_snake_rules(rules_name, board), observation, seeds)


def to_mlp(model, n_inputs: int):
    """(MLPSpec, flat weights) of a trained mlp-genome model (Dense layers only)."""
    from evonet import nn
    from evonet.problems.nas.models import dense_layers

    layers = dense_layers(model)
    hidden = [k.shape[1] for k, _, _ in layers[:-1]]
    acts = {a for _, _, a in layers[:-1]} or {"relu"}
    if len(acts) != 1:
        raise ValueError(f"hidden layers must share one activation, got {sorted(acts)}")
    spec = nn.MLPSpec(n_inputs, tuple(hidden), layers[-1][0].shape[1], acts.pop(), "linear")
    flat = nn.flatten([(np.asarray(k, np.float32), np.zeros(k.shape[1], np.float32) if b is None else
                        np.asarray(b, np.float32)) for k, b, _ in layers])
    return spec, flat


def train_imitation(genome: dict, budget, seed: int, data: tuple[np.ndarray, np.ndarray]):
    """Train ``genome``'s mlp on ``data`` = (observations, heuristic actions), 3 classes.

    A seeded permutation (``seed``) holds out 10 % of the steps (at least one)
    for early stopping / the imitation accuracy; Keras is seeded with ``seed`` too.
    Returns ``fit_model``'s (model, params, history, epochs run); raises its
    ``NonFiniteLoss`` / ``TooManyParameters``.
    """
    from evonet.problems.nas.accuracy import fit_model
    from evonet.problems.nas.models import InputSpec
    from evonet.tf_utils import import_keras

    import_keras().backend.clear_session()
    x, y = data
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_val = max(1, len(y) // 10)
    val, tr = order[:n_val], order[n_val:]
    return fit_model(genome, "mlp", InputSpec((x.shape[1],), 1.0, 3), x[tr], y[tr], (x[val], y[val]), budget, seed)


def train_and_play(genome: dict, budget, seed: int, rules, observation: str, data: tuple[np.ndarray, np.ndarray],
                   game_seeds, keep_model: bool = False):
    """Train ``genome``'s network on ``data`` and play ``game_seeds``; (EvalResult, model|None).

    Never raises: failures come back as a failed result with the error."""
    from evonet.problems.nas.accuracy import NonFiniteLoss, TooManyParameters, failed
    from evonet.problems.snake.evaluate import evaluate_weights

    start = time.perf_counter()
    try:
        try:
            model, params, hist, epochs = train_imitation(genome, budget, seed, data)
        except (NonFiniteLoss, TooManyParameters) as exc:
            return failed(str(exc), time.perf_counter() - start), None
        spec, flat = to_mlp(model, data[0].shape[1])
        res = evaluate_weights(spec, flat[None], rules, observation, np.asarray(game_seeds)[None])
        scores = np.asarray(res.scores[0], np.float64)
        result = EvalResult(
            fitness=float(scores.mean()), weight=int(scores.size),
            metrics={"params": float(params), "epochs": float(epochs), "max_score": float(scores.max()),
                     "steps": float(np.sum(res.steps[0])), "imitation_accuracy": float(max(hist["val_accuracy"])),
                     },
            seconds=time.perf_counter() - start,
        )
        return result, (model if keep_model else None)
    except Exception as exc:  # noqa: BLE001
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return failed(msg, time.perf_counter() - start), None


#: The seed blog's supervised network: hidden Dense layers 9 and 15, relu, Adam,
#: softmax over the 3 actions (``evonet eval supervised``).
BLOG_HIDDEN = (9, 15)
#: Defaults of :func:`supervised_baseline`, tuned so the blog's 9-15 network reproduces
#: the blog's 23.091 under the theailearner rules in about half a minute on one core.
SUPERVISED_DEFAULTS = {"data_games": 200, "epochs": 20, "batch_size": 256, "learning_rate": 3e-3, "patience": 5}


def supervised_baseline(rules_name: str, board: int, eval_seeds, *, hidden=BLOG_HIDDEN, activation: str = "relu",
                        observation: str = "blog7", data_games: int = SUPERVISED_DEFAULTS["data_games"],
                        epochs: int = SUPERVISED_DEFAULTS["epochs"],
                        batch_size: int = SUPERVISED_DEFAULTS["batch_size"],
                        learning_rate: float = SUPERVISED_DEFAULTS["learning_rate"],
                        patience: int = SUPERVISED_DEFAULTS["patience"], seed: int = 0) -> dict:
    """The seed blog's supervised baseline: imitate the heuristic, then play.

    The heuristic plays ``data_games`` games on *training* seeds (derived from ``seed``,
    all >= 2**63, so never an evaluation seed; :func:`cached_heuristic_dataset`) under
    ``rules_name`` on a ``board`` x ``board`` board; an Adam-trained softmax network with
    ``hidden`` layers learns its actions from the ``observation`` vectors (cross-entropy;
    10 % of the steps held out, early stopping on their accuracy with ``patience``, best
    weights kept; Keras seeded from ``seed``); then it plays ``eval_seeds`` greedily on the
    batched engine. Raises :class:`ValueError` for a failed training (non-finite loss).

    Returns a dict: ``rules``, ``spec`` and ``weights`` (the network as
    :mod:`evonet.nn` plays it, softmax dropped: same argmax), ``model`` (Keras),
    ``results`` (:class:`~evonet.evaluators.snake.SnakeResults` of one individual) and
    ``training`` (JSON-ready: the settings, ``data_seeds``, ``training_steps``,
    ``class_fractions``, ``epochs_run``, ``imitation_accuracy`` (held-out, best epoch),
    ``params``, ``data_seconds``, ``train_seconds``).
    """
    from evonet.problems.nas.accuracy import NonFiniteLoss, TrainBudget
    from evonet.problems.snake.evaluate import evaluate_weights
    from evonet.problems.snake.problem import make_snake_rules

    rules = make_snake_rules(rules_name, board)
    hidden = tuple(int(h) for h in hidden)
    t0 = time.perf_counter()
    x, y = cached_heuristic_dataset(rules_name, board, observation, int(data_games), int(seed))
    t1 = time.perf_counter()
    genome = {"n_layers": len(hidden), **{f"units_{i}": h for i, h in enumerate(hidden, start=1)},
              "activation": activation, "optimizer": "adam", "learning_rate": float(learning_rate),
              "batch_size": int(batch_size)}
    budget = TrainBudget(epochs=int(epochs), patience=int(patience), max_params=10**9)
    try:
        model, params, hist, epochs_run = train_imitation(genome, budget, int(seed), (x, y))
    except NonFiniteLoss as exc:
        raise ValueError(f"training failed: {exc}") from None
    t2 = time.perf_counter()
    spec, flat = to_mlp(model, x.shape[1])
    res = evaluate_weights(spec, flat[None], rules, observation, np.asarray(eval_seeds, np.uint64)[None])
    counts = np.bincount(y, minlength=3) / max(1, len(y))
    training = {
        "network": f"{x.shape[1]}-{'-'.join(map(str, hidden))}-3", "hidden": list(hidden), "activation": activation,
        "output": "softmax", "optimizer": "adam", "learning_rate": float(learning_rate),
        "batch_size": int(batch_size), "epochs": int(epochs), "patience": int(patience), "seed": int(seed),
        "observation": observation, "data_games": int(data_games),
        "data_seeds": f"{int(data_games)} training seeds (>= 2**63) from seed {int(seed)}",
        "training_steps": int(len(y)), "class_fractions": [round(float(c), 4) for c in counts],
        "epochs_run": int(epochs_run), "imitation_accuracy": float(max(hist["val_accuracy"])),
        "params": int(params), "data_seconds": round(t1 - t0, 2), "train_seconds": round(t2 - t1, 2),
    }
    return {"rules": rules, "spec": spec, "weights": flat, "model": model, "results": res, "training": training}
