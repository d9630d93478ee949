"""How fast snake games are played: the seed blog's loop against evonet's evaluator.

The seed blog plays one game at a time and calls its Keras model once per step
(``model.predict`` on a single observation). :func:`bench_snake` times that style with
the same 7-9-15-3 networks, then the evaluator evolution uses
(:func:`evonet.problems.snake.evaluate.evaluate_weights`: the fused engine, on every core
and on one) and the batched reference path on a population, and reports env-steps per
second for each, all in one run.

Two kinds of networks are measured: random ones (most die within a few steps or circle
until they starve: a typical early generation) and :func:`heuristic_like_weights`, a
hand-set 7-9-15-3 network that steers like the blog's heuristic and plays long games (a
typical late generation).
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np

from evonet import nn
from evonet.envs.snake.observations import observe
from evonet.envs.snake.reference import SnakeGame
from evonet.envs.snake.rules import Rules, make_rules
from evonet.problems.snake.evaluate import evaluate_weights

BLOG_SPEC = nn.MLPSpec(7, (9, 15), 3, activation="tanh", output_activation="linear")


def heuristic_like_weights(spec: nn.MLPSpec = BLOG_SPEC) -> np.ndarray:
    """A hand-set 7-9-15-3 tanh network (blog7 inputs) that steers like the heuristic.

    Hidden layer 1: four units ``tanh(50 * (±a_y ± 2 h_x - 2))`` and ``tanh(50 * (±a_x ±
    2 h_y - 2))`` that are about ``[h_x = 1] sign(a_y) ...``; their sum plus 3 is the sign
    of the apple's cross product with the heading (>0: apple to the right), and three units
    pass the blocked bits. Layer 2 passes those on (small, so tanh stays linear), and the
    outputs are ``-turn - 10 left_blocked``, ``0.5 - 10 front_blocked``, ``turn - 10
    right_blocked``: go towards the apple, avoid a blocked cell. Returns (n_params,) float32.
    """
    if spec.sizes != (7, 9, 15, 3) or spec.activation != "tanh" or spec.output_activation != "linear":
        raise ValueError("heuristic_like_weights builds a 7-9-15-3 tanh/linear network")
    k = 50.0
    w1 = np.zeros((7, 9), np.float32)
    b1 = np.zeros(9, np.float32)
    lb, fb, rb, ax, ay, hx, hy = range(7)
    # u1 ~ [hx=1](s(ay)+1)-1, u2 ~ [hx=-1](1-s(ay))-1, u3 ~ [hy=1](1-s(ax))-1, u4 ~ [hy=-1](1+s(ax))-1
    for unit, (a_idx, a_sign, h_idx, h_sign) in enumerate([(ay, 1, hx, 1), (ay, -1, hx, -1),
                                                           (ax, -1, hy, 1), (ax, 1, hy, -1)]):
        w1[a_idx, unit] = k * a_sign
        w1[h_idx, unit] = k * 2 * h_sign
        b1[unit] = -2 * k
    for unit, inp in zip((4, 5, 6), (lb, fb, rb), strict=True):
        w1[inp, unit] = 5.0  # tanh(5) ~ 1 when blocked
    w2 = np.zeros((9, 15), np.float32)
    b2 = np.zeros(15, np.float32)
    w2[0:4, 0] = 0.1  # turn = tanh(0.1 * (u1+u2+u3+u4+3)) ~ 0.1 * sign(cross)
    b2[0] = 0.3
    for unit in (4, 5, 6):
        w2[unit, unit - 3] = 1.0  # tanh(tanh(5 * blocked)) ~ 0.76 * blocked
    w3 = np.zeros((15, 3), np.float32)
    b3 = np.array([0.0, 0.5, 0.0], np.float32)
    w3[0, 0], w3[0, 2] = -20.0, 20.0
    w3[1, 0], w3[2, 1], w3[3, 2] = -10.0, -10.0, -10.0
    return nn.flatten([(w1, b1), (w2, b2), (w3, b3)])


def _random_weights(spec: nn.MLPSpec, population: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, size=(population, spec.n_params)).astype(np.float32)


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes vs KiB


def _seed_style(weights: np.ndarray, rules: Rules, seconds: float, min_steps: int, call: str) -> float:
    """The blog's loop: one game at a time, one Keras call per step. Returns steps/s."""
    from evonet.genomes.weights import to_keras  # configures TensorFlow: one thread, quiet

    model = to_keras(BLOG_SPEC, weights)
    if call == "predict_on_batch":
        predict = model.predict_on_batch
    elif call == "call":
        def predict(x):
            return np.asarray(model(x, training=False))
    elif call == "predict":
        def predict(x):
            return model.predict(x, verbose=0)
    else:
        raise ValueError(f"unknown Keras call {call!r}; choose from predict_on_batch, call, predict")
    predict(np.zeros((1, 7), np.float32))  # build / trace once, outside the timing
    steps, seed = 0, 0
    game = SnakeGame(rules, seed)
    start = time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < seconds:
        x = observe("blog7", game.body, game.apple, game.heading, rules.width, rules.height)
        action = int(np.argmax(predict(x.reshape(1, 7))[0]))
        steps += 1
        if game.step(action):
            seed += 1
            game = SnakeGame(rules, seed)
    return steps / (time.perf_counter() - start)


def _vectorized(weights: np.ndarray, rules: Rules, games: int, seconds: float, observation: str,
                spec: nn.MLPSpec = BLOG_SPEC, engine: str = "fused", threads: int | None = None) -> float:
    """evaluate_weights over the population on ``engine``, repeated (fresh seeds) for >= seconds."""
    population = weights.shape[0]
    seeds = np.arange(population * games, dtype=np.uint64).reshape(population, games)
    evaluate_weights(spec, weights, rules, observation, seeds, engine=engine, threads=threads)  # compile / warm up
    total, rep = 0, 0
    start = time.perf_counter()
    while rep == 0 or time.perf_counter() - start < seconds:
        rep += 1
        result = evaluate_weights(spec, weights, rules, observation, seeds + np.uint64(rep * seeds.size),
                                  engine=engine, threads=threads)
        total += result.env_steps
    return total / (time.perf_counter() - start)


#: the network of experiments/snake_classic10.yaml (vision, 35-16-3 tanh)
FLAGSHIP_SPEC = nn.MLPSpec(35, (16,), 3, activation="tanh", output_activation="linear")
#: a genome evolved by that experiment (its best/genome.npz), so the games are long
FLAGSHIP_GENOME = "snake_classic10_genome.npz"


def flagship_weights(population: int = 64) -> np.ndarray:
    """(population, n_params): the shipped snake_classic10 genome for every individual."""
    from importlib.resources import files

    with np.load(files("evonet.data").joinpath(FLAGSHIP_GENOME).open("rb"), allow_pickle=False) as data:
        genome = np.asarray(data["genome"], dtype=np.float32)
    if genome.shape != (FLAGSHIP_SPEC.n_params,):
        raise ValueError(f"{FLAGSHIP_GENOME}: expected {FLAGSHIP_SPEC.n_params} weights, got {genome.shape}")
    return np.tile(genome, (population, 1))


def bench_snake(seconds_seed_style: float = 3.0, population: int = 256, games: int = 8,
                seconds_vectorized: float = 3.0, rules: Rules | None = None, seed: int = 0,
                min_seed_style_steps: int = 300, keras_call: str = "predict_on_batch",
                flagship_population: int = 64) -> dict:
    """Env-steps per second of the seed blog's loop and of evonet's evaluator.

    Both play 7-9-15-3 networks on the blog7 observation under ``rules`` (default classic
    10 x 10). The seed-blog style plays the population's first random network, one game
    after another, one Keras call (``keras_call``: ``predict_on_batch``, ``call`` for
    ``model(x, training=False)``, or ``predict``, the blog's own and much slower) per step,
    for ``seconds_seed_style`` and at least ``min_seed_style_steps`` steps; TensorFlow runs
    on one intra- and one inter-op thread. The evaluator plays ``population`` random
    networks x ``games`` games, after a warm-up, repeated for ``seconds_vectorized``; then
    the same with the population all set to :func:`heuristic_like_weights` (long games).

    Returns ``seed_style_steps_per_s``; ``vectorized_steps_per_s`` (random networks, the
    fused engine on every core: ``threads``), ``ratio`` (its quotient by the seed style),
    ``vectorized_long_steps_per_s`` (heuristic-like networks), ``single_core_steps_per_s``
    (random networks, one thread); ``batched_steps_per_s`` / ``batched_long_steps_per_s``
    (the batched reference path on the same two workloads); ``flagship_steps_per_s`` /
    ``flagship_single_core_steps_per_s`` / ``flagship_batched_steps_per_s`` (the workload
    of ``snake_classic10.yaml``: ``flagship_population`` x 8 games, ``vision``, its 35-16-3
    network with the shipped evolved genome, :func:`flagship_weights`: every core, one
    thread, the batched path); ``peak_rss_mb`` (peak resident memory of this process,
    TensorFlow included), ``peak_rss_mb_before_keras`` (the same before TensorFlow is
    imported, if it was not already) and the settings.
    """
    import numba

    rules = rules or make_rules("classic")
    weights = _random_weights(BLOG_SPEC, population, seed)
    long_weights = np.tile(heuristic_like_weights(), (population, 1))
    vectorized = _vectorized(weights, rules, games, seconds_vectorized, "blog7")
    vectorized_long = _vectorized(long_weights, rules, games, seconds_vectorized, "blog7")
    single = _vectorized(weights, rules, games, seconds_vectorized, "blog7", threads=1)
    batched = _vectorized(weights, rules, games, seconds_vectorized, "blog7", engine="batched")
    batched_long = _vectorized(long_weights, rules, games, seconds_vectorized, "blog7", engine="batched")
    # the flagship: snake_classic10.yaml's workload (64 x 8 games, vision, 35-16-3) with its evolved genome
    flag = flagship_weights(flagship_population)
    flagship = _vectorized(flag, rules, 8, seconds_vectorized, "vision", spec=FLAGSHIP_SPEC)
    flagship_one = _vectorized(flag, rules, 8, seconds_vectorized, "vision", spec=FLAGSHIP_SPEC, threads=1)
    flagship_batched = _vectorized(flag, rules, 8, seconds_vectorized, "vision", spec=FLAGSHIP_SPEC,
                                   engine="batched")
    rss_before_keras = _peak_rss_mb()
    seed_style = _seed_style(weights[0], rules, seconds_seed_style, min_seed_style_steps, keras_call)
    from evonet.bench import machine

    return {
        "machine": machine(),
        "rules": rules.describe(),
        "network": "7-9-15-3 tanh, blog7",
        "population": population,
        "games": games,
        "keras_call": keras_call,
        "threads": numba.get_num_threads(),
        "seed_style_steps_per_s": seed_style,
        "vectorized_steps_per_s": vectorized,
        "ratio": vectorized / seed_style,
        "vectorized_long_steps_per_s": vectorized_long,
        "single_core_steps_per_s": single,
        "batched_steps_per_s": batched,
        "batched_long_steps_per_s": batched_long,
        "flagship_population": flagship_population,
        "flagship_steps_per_s": flagship,
        "flagship_single_core_steps_per_s": flagship_one,
        "flagship_batched_steps_per_s": flagship_batched,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_rss_mb_before_keras": rss_before_keras,
    }
