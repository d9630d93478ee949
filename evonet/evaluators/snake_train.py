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
    from evonet import seeding
    from evonet.problems.snake_weights import make_snake_rules

    seeds = seeding.training_game_seeds(seed, 0, [0], games, purpose=seeding.PURPOSE_GAMES + 100)[0]
    return heuristic_dataset(make_snake_rules(rules_name, board), observation, seeds)


def to_mlp(model, n_inputs: int):
    """(MLPSpec, flat weights) of a trained mlp-genome model (Dense layers only)."""
    from evonet import nn
    from evonet.models import dense_layers

    layers = dense_layers(model)
    hidden = [k.shape[1] for k, _, _ in layers[:-1]]
    acts = {a for _, _, a in layers[:-1]} or {"relu"}
    if len(acts) != 1:
        raise ValueError(f"hidden layers must share one activation, got {sorted(acts)}")
    spec = nn.MLPSpec(n_inputs, tuple(hidden), layers[-1][0].shape[1], acts.pop(), "linear")
    flat = nn.flatten([(np.asarray(k, np.float32), np.zeros(k.shape[1], np.float32) if b is None else
                        np.asarray(b, np.float32)) for k, b, _ in layers])
    return spec, flat


def train_and_play(genome: dict, budget, seed: int, rules, observation: str, data: tuple[np.ndarray, np.ndarray],
                   game_seeds, keep_model: bool = False):
    """Train ``genome``'s network on ``data`` and play ``game_seeds``; (EvalResult, model|None).

    Never raises: failures come back as a failed result with the error."""
    from evonet.evaluators.accuracy import NonFiniteLoss, TooManyParameters, failed, fit_model
    from evonet.evaluators.snake import evaluate_weights
    from evonet.models import InputSpec

    start = time.perf_counter()
    try:
        from evonet.tf_utils import import_keras

        import_keras().backend.clear_session()
        x, y = data
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(y))
        n_val = max(1, len(y) // 10)
        val, tr = order[:n_val], order[n_val:]
        try:
            model, params, hist, epochs = fit_model(genome, "mlp", InputSpec((x.shape[1],), 1.0, 3), x[tr], y[tr],
                                                    (x[val], y[val]), budget, seed)
        except (NonFiniteLoss, TooManyParameters) as exc:
            return failed(str(exc), time.perf_counter() - start), None
        spec, flat = to_mlp(model, x.shape[1])
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
