"""The fused snake engine (evonet.envs.snake.fused): whole games of many networks in one
compiled call, equal game for game and step for step to the batched engine and to the
reference game driven by the same fixed-order forward pass; the same results on any number
of threads; its arithmetic (tanh, exp) from basic operations only; what it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from evonet import nn
from evonet.envs.snake import fused
from evonet.envs.snake.engine import BatchSnake
from evonet.envs.snake.observations import observe
from evonet.envs.snake.reference import SnakeGame
from evonet.envs.snake.rules import make_rules

SPECS = [
    (nn.MLPSpec(7, (9, 15), 3, activation="tanh"), "blog7"),
    (nn.MLPSpec(35, (16,), 3, activation="tanh"), "vision"),
    (nn.MLPSpec(7, (6,), 3, activation="relu", output_activation="softmax"), "blog7"),
    (nn.MLPSpec(35, (5, 4), 3, activation="sigmoid"), "vision"),
    (nn.MLPSpec(7, (8,), 3, activation="elu", output_activation="tanh"), "blog7"),
    (nn.MLPSpec(7, (8,), 3, activation="selu"), "blog7"),
    (nn.MLPSpec(7, (8,), 3, activation="leaky_relu", output_activation="relu"), "blog7"),
    (nn.MLPSpec(7, (), 3), "blog7"),
    (nn.MLPSpec(7, (8,), 3, activation="tanh"), "cycle"),
    (nn.MLPSpec(5, (8,), 3, activation="tanh"), "lookahead"),
]


def stepped(spec, weights, rules, observation, seeds):
    """The batched engine, one step at a time from Python, actions from forward_fixed."""
    n_nets, n_games = seeds.shape
    engine = BatchSnake(rules, seeds.reshape(-1))
    while not engine.all_done:
        live = np.flatnonzero(~engine.done)
        obs = engine.observe(observation, live)
        actions = np.empty(live.size, dtype=np.int64)
        for p in np.unique(live // n_games):
            mine = live // n_games == p
            actions[mine] = np.argmax(fused.forward_fixed(spec, weights[p], obs[mine]), axis=-1)
        engine.step(actions, live)
    shape = (n_nets, n_games)
    return engine.score.reshape(shape), engine.steps.reshape(shape), engine.death.reshape(shape)


def weights_for(spec, n, seed, scale):
    return np.random.default_rng(seed).normal(0.0, scale, size=(n, spec.n_params)).astype(np.float32)


@pytest.mark.parametrize("rules_name", ["classic", "theailearner"])
@pytest.mark.parametrize("spec, observation", SPECS, ids=lambda v: getattr(v, "sizes", v))
def test_the_fused_games_equal_the_batched_engine_step_by_step(spec, observation, rules_name):
    rules = make_rules(rules_name, 8 if rules_name == "classic" else 12)
    weights = weights_for(spec, 12, 1, 0.8)
    seeds = np.arange(12 * 9, dtype=np.uint64).reshape(12, 9) + np.uint64(1000)
    got = fused.play_mlp(spec, weights, rules, observation, seeds)
    scores, steps, deaths = stepped(spec, weights, rules, observation, seeds)
    np.testing.assert_array_equal(got.scores, scores)
    np.testing.assert_array_equal(got.steps, steps)
    np.testing.assert_array_equal(got.deaths, deaths)
    assert got.env_steps == int(steps.sum()) and got.env_steps > 12 * 9


@pytest.mark.parametrize("name,board,overlap", [("classic", (10, 10), False), ("classic", (7, 12), False),
                                                ("theailearner", (12, 15), True), ("theailearner", (50, 50), True),
                                                ("classic", (fused.LINES_MAX, 5), False)])
def test_vision_rays_from_line_masks_equal_the_walked_rays(name, board, overlap):
    """The fused engine reads `vision`'s rays from bit masks of the body, one per row, column
    and diagonal of the board; the batched engine walks them. On random states (both rule
    sets, overlapping segments under theailearner, the widest board with masks) every
    feature is the same bits."""
    from tests.test_observations import random_snake

    rules = make_rules(name, *board)
    w, h = board
    rng = np.random.default_rng([7, w, h])
    n = 300
    eng = BatchSnake(rules, np.arange(n, dtype=np.uint64))
    for i in range(n):
        body, heading = random_snake(rng, w, h, int(rng.integers(2, min(w * h // 2, 60))), overlap)
        if i % 3 == 0:  # heads on the board's edges and corners too
            x, y = [w - 1, 0][i % 2], [h - 1, 0][(i // 2) % 2]
            body = [(x, y), (x - 1, y) if x else (x + 1, y)]
            heading = (body[0][0] - body[1][0], 0)
        free = [(x, y) for y in range(h) for x in range(w) if (x, y) not in body]
        apple = None if rng.random() < 0.1 else free[rng.integers(len(free))]
        eng.set_game(i, body, apple, heading)
    got = fused.observe_vision_lines(eng)
    np.testing.assert_array_equal(got.view(np.uint32), eng.observe("vision").view(np.uint32))
    assert (got[:, 1:24:3] > 0).any()  # bodies were seen


def test_vision_beyond_the_line_masks_walks_the_rays():
    """A board wider than LINES_MAX keeps no masks: the fused engine walks the rays there,
    and its games still equal the batched engine's."""
    spec = nn.MLPSpec(35, (6,), 3, activation="tanh")
    rules = make_rules("classic", fused.LINES_MAX + 1, 6)
    weights = weights_for(spec, 4, 3, 0.8)
    seeds = np.arange(4 * 5, dtype=np.uint64).reshape(4, 5) + np.uint64(50)
    got = fused.play_mlp(spec, weights, rules, "vision", seeds)
    scores, steps, deaths = stepped(spec, weights, rules, "vision", seeds)
    np.testing.assert_array_equal(got.steps, steps)
    np.testing.assert_array_equal(got.scores, scores)
    np.testing.assert_array_equal(got.deaths, deaths)
    with pytest.raises(ValueError, match="board: line masks cover boards up to 63x63, got 64x6"):
        fused.observe_vision_lines(BatchSnake(rules, np.arange(2, dtype=np.uint64)))


def test_long_games_equal_the_reference_game_and_the_batched_evaluator():
    from evonet.bench.snake import BLOG_SPEC, heuristic_like_weights
    from evonet.problems.snake.evaluate import evaluate_weights

    rules = make_rules("classic")
    weights = np.tile(heuristic_like_weights(), (40, 1))
    seeds = np.arange(40 * 7, dtype=np.uint64).reshape(40, 7)
    got = fused.play_mlp(BLOG_SPEC, weights, rules, "blog7", seeds)
    assert got.scores.mean() > 10  # long games: lanes refill and drain many times
    # the population path of today (BLAS) plays the same games with this saturated network
    batched = evaluate_weights(BLOG_SPEC, weights, rules, "blog7", seeds)
    np.testing.assert_array_equal(got.scores, batched.scores)
    np.testing.assert_array_equal(got.steps, batched.steps)
    # and the pure-Python reference game, move by move, for a few of them
    for g in range(6):
        game = SnakeGame(rules, int(seeds.reshape(-1)[g]))
        while not game.done:
            x = observe("blog7", game.body, game.apple, game.heading, rules.width, rules.height)
            game.step(int(np.argmax(fused.forward_fixed(BLOG_SPEC, weights[0], x[None])[0])))
        assert (game.score, game.steps) == (got.scores.reshape(-1)[g], got.steps.reshape(-1)[g])


def onward_rule_weights() -> np.ndarray:
    """A 7-3 linear network on the cycle set: 2 * onward - apple distance per move."""
    kernel = np.zeros((7, 3), dtype=np.float32)
    for k in range(3):
        kernel[k, k], kernel[3 + k, k] = 2.0, -1.0
    return np.concatenate([kernel.ravel(), np.zeros(3, dtype=np.float32)])


def test_won_games_on_the_cycle_set_equal_the_reference_and_the_batched_evaluator():
    """Full boards: every game of the onward rule is won (97 apples, about 2,300 steps), on
    the fused engine, the batched evaluator and the reference game alike."""
    from evonet.problems.snake.evaluate import evaluate_weights

    spec = nn.MLPSpec(7, (), 3)
    rules = make_rules("classic")
    weights = np.tile(onward_rule_weights(), (3, 1))
    seeds = np.arange(3 * 4, dtype=np.uint64).reshape(3, 4) + np.uint64(500)
    got = fused.play_mlp(spec, weights, rules, "cycle", seeds)
    assert np.all(got.scores == 97) and got.won.all()
    batched = evaluate_weights(spec, weights, rules, "cycle", seeds, engine="batched")
    np.testing.assert_array_equal(got.steps, batched.steps)
    for g in range(2):
        game = SnakeGame(rules, int(seeds.reshape(-1)[g]))
        while not game.done:
            x = observe("cycle", game.body, game.apple, game.heading, rules.width, rules.height)
            game.step(int(np.argmax(fused.forward_fixed(spec, weights[0], x[None])[0])))
        assert (game.score, game.steps, game.won) == (97, got.steps.reshape(-1)[g], True)


def test_the_results_do_not_depend_on_the_threads_or_the_chunks(monkeypatch):
    import numba

    spec = nn.MLPSpec(35, (16,), 3, activation="tanh")
    rules = make_rules("classic", 10)
    weights = weights_for(spec, 20, 3, 0.6)
    seeds = np.arange(20 * 8, dtype=np.uint64).reshape(20, 8)
    one = fused.play_mlp(spec, weights, rules, "vision", seeds, threads=1)
    many = fused.play_mlp(spec, weights, rules, "vision", seeds, threads=max(2, numba.get_num_threads()))
    np.testing.assert_array_equal(one.scores, many.scores)
    np.testing.assert_array_equal(one.steps, many.steps)
    # one network alone, its games in other chunks and lanes, plays the same games
    alone = fused.play_mlp(spec, weights[7:8], rules, "vision", seeds[7:8], threads=1)
    np.testing.assert_array_equal(alone.steps[0], one.steps[7])
    # games are dealt round-robin into the chunks: each chunk holds a share of every network
    chunks, order = fused.game_chunks(10, 1, per_thread=4)
    assert chunks.tolist() == [[0, 3], [3, 6], [6, 8], [8, 10]]
    assert order.tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 3, 7]
    chunks, order = fused.game_chunks(3, 2)
    assert sorted(order.tolist()) == [0, 1, 2] and chunks[-1, 1] == 3
    monkeypatch.setattr(fused, "CHUNKS_PER_THREAD", 5)
    other = fused.play_mlp(spec, weights, rules, "vision", seeds, threads=2)
    np.testing.assert_array_equal(one.scores, other.scores)
    np.testing.assert_array_equal(one.steps, other.steps)


def test_tanh_and_exp_are_close_to_the_c_library_and_equal_in_numpy_and_numba():
    x = np.concatenate([np.linspace(-12, 12, 4001), [0.0, 1e-5, -3e-4, 5e-4, 7.9, 8.5, -40.0]]).astype(np.float32)
    compiled = np.array([fused.tanh32(v) for v in x], dtype=np.float32)
    exact = np.tanh(x.astype(np.float64))
    assert np.max(np.abs(compiled - exact) / np.maximum(np.spacing(np.abs(exact).astype(np.float32)), 1e-45)) < 8
    np.testing.assert_array_equal(compiled, fused._tanh32_np(x))
    z = np.linspace(-60, 60, 2001)
    e = np.array([fused.exp64(v) for v in z])
    np.testing.assert_allclose(e, np.exp(z), rtol=2e-15)
    np.testing.assert_array_equal(e, fused._exp64_np(z))
    for name, code in fused.ACT_CODES.items():
        if name == "softmax":
            continue
        got = np.array([fused.activate(code, v) for v in x], dtype=np.float32)
        np.testing.assert_array_equal(got, fused._activate_np(name, x))
        want = nn._activate(name, x.astype(np.float64).copy())
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_what_the_fused_engine_refuses():
    rules = make_rules("classic")
    seeds = np.zeros((1, 2), dtype=np.uint64)
    bad = nn.MLPSpec(7, (4,), 3, activation="softmax")
    with pytest.raises(fused.FusedUnsupported, match="network.activation: softmax is only an output activation"):
        fused.play_mlp(bad, np.zeros((1, bad.n_params), np.float32), rules, "blog7", seeds)
    spec = nn.MLPSpec(7, (4,), 3)
    w = np.zeros((1, spec.n_params), np.float32)
    with pytest.raises(ValueError, match="threads: expected an integer >= 1, got 0"):
        fused.play_mlp(spec, w, rules, "blog7", seeds, threads=0)
    with pytest.raises(ValueError, match="observation 'vision' has 35 features but the network takes 7"):
        fused.play_mlp(spec, w, rules, "vision", seeds)
    empty = fused.play_mlp(spec, w[:0], rules, "blog7", seeds[:0])
    assert empty.scores.shape == (0, 2) and empty.env_steps == 0
