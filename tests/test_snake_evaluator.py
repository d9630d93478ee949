"""The snake evaluator, both engines: equal to one game at a time, whatever the batching."""

import numpy as np
import pytest

from evonet import nn
from evonet.bench.snake import BLOG_SPEC, bench_snake, heuristic_like_weights
from evonet.envs.snake import SnakeGame, heuristic_action, make_rules, observe
from evonet.envs.snake.heuristic import _avoid, _wanted
from evonet.evaluators.snake import evaluate_weights, format_summary, play_policy, random_policy, summarize


def population(spec, n, rng, n_heuristic=0):
    """Random networks, the first n_heuristic near the heuristic-like one (long games)."""
    w = rng.normal(0.0, 1.0, size=(n, spec.n_params)).astype(np.float32)
    if n_heuristic:
        base = heuristic_like_weights()
        w[:n_heuristic] = base + rng.normal(0.0, 0.02, size=(n_heuristic, spec.n_params)).astype(np.float32)
    return w


def play_one_by_one(spec, flat, rules, observation, seed):
    """One game on the reference, greedy on nn.forward of one network; also returns the
    smallest gap between the two best outputs seen (a float-rounding tie if tiny)."""
    layers = nn.unflatten(spec, flat)
    game, margin = SnakeGame(rules, int(seed)), np.inf
    while not game.done:
        x = observe(observation, game.body, game.apple, game.heading, rules.width, rules.height)
        out = nn.forward(spec, layers, x[None])[0]
        top = np.sort(out)
        margin = min(margin, float(top[-1] - top[-2]))
        game.step(int(np.argmax(out)))
    return game, margin


ENGINES = pytest.mark.parametrize("engine", ["fused", "batched"])


def assert_equals_one_by_one(spec, weights, rules, observation, seeds, engine):
    res = evaluate_weights(spec, weights, rules, observation, seeds, engine=engine)
    assert res.scores.shape == res.steps.shape == res.won.shape == seeds.shape
    assert res.env_steps == int(res.steps.sum())
    near_ties = 0
    for p in range(seeds.shape[0]):
        for g in range(seeds.shape[1]):
            game, margin = play_one_by_one(spec, weights[p], rules, observation, seeds[p, g])
            same = (game.score, game.steps, game.won) == (res.scores[p, g], res.steps[p, g], res.won[p, g])
            if not same:
                # nn.forward (BLAS) and the evaluator's forward pass may round differently
                # in the last bit; that can only flip an argmax at a near-tie
                assert margin < 1e-4, f"individual {p} game {g} differs without a near-tie"
                near_ties += 1
    assert near_ties <= 1
    return res


@ENGINES
def test_equals_one_by_one_classic_blog7(engine):
    rng = np.random.default_rng(0)
    weights = population(BLOG_SPEC, 40, rng, n_heuristic=6)
    seeds = rng.integers(0, 2**64 - 1, size=(40, 6), dtype=np.uint64, endpoint=True)
    res = assert_equals_one_by_one(BLOG_SPEC, weights, make_rules("classic"), "blog7", seeds, engine)
    assert res.scores[:6].mean() > 5  # the long-playing ones really were in there


@ENGINES
def test_equals_one_by_one_vision_and_other_boards(engine):
    rng = np.random.default_rng(1)
    spec = nn.MLPSpec(35, (16,), 3)
    seeds = rng.integers(0, 2**63, size=(12, 4), dtype=np.uint64)
    assert_equals_one_by_one(spec, population(spec, 12, rng), make_rules("classic", 7, 12), "vision", seeds, engine)
    seeds = rng.integers(0, 2**63, size=(6, 3), dtype=np.uint64)
    weights = population(BLOG_SPEC, 6, rng, n_heuristic=2)
    assert_equals_one_by_one(BLOG_SPEC, weights, make_rules("theailearner"), "blog7", seeds, engine)


@ENGINES
def test_results_do_not_depend_on_the_batch(engine):
    rng = np.random.default_rng(2)
    rules = make_rules("classic")
    weights = population(BLOG_SPEC, 24, rng, n_heuristic=4)
    seeds = rng.integers(0, 2**63, size=(24, 5), dtype=np.uint64)
    full = evaluate_weights(BLOG_SPEC, weights, rules, "blog7", seeds, engine=engine)
    order = rng.permutation(24)
    shuffled = evaluate_weights(BLOG_SPEC, weights[order], rules, "blog7", seeds[order], engine=engine)
    np.testing.assert_array_equal(shuffled.scores, full.scores[order])
    np.testing.assert_array_equal(shuffled.steps, full.steps[order])
    for p in (0, 3, 17):
        alone = evaluate_weights(BLOG_SPEC, weights[p:p + 1], rules, "blog7", seeds[p:p + 1], engine=engine)
        np.testing.assert_array_equal(alone.scores[0], full.scores[p])
        np.testing.assert_array_equal(alone.steps[0], full.steps[p])
    # among other company: the first 4 next to copies of a long-playing network
    mixed_w = np.concatenate([weights[:4], np.tile(heuristic_like_weights(), (9, 1))])
    mixed_s = np.concatenate([seeds[:4], rng.integers(0, 2**63, size=(9, 5), dtype=np.uint64)])
    mixed = evaluate_weights(BLOG_SPEC, mixed_w, rules, "blog7", mixed_s, engine=engine)
    np.testing.assert_array_equal(mixed.scores[:4], full.scores[:4])
    np.testing.assert_array_equal(mixed.steps[:4], full.steps[:4])
    again = evaluate_weights(BLOG_SPEC, weights, rules, "blog7", seeds, engine=engine)
    np.testing.assert_array_equal(again.scores, full.scores)


@ENGINES
def test_argument_checks(engine):
    rules = make_rules("classic")
    w = np.zeros((2, BLOG_SPEC.n_params), np.float32)
    seeds = np.zeros((2, 3), np.uint64)
    with pytest.raises(ValueError, match="features"):
        evaluate_weights(BLOG_SPEC, w, rules, "vision", seeds, engine=engine)
    with pytest.raises(ValueError, match="unknown snake observation"):
        evaluate_weights(BLOG_SPEC, w, rules, "pixels", seeds, engine=engine)
    with pytest.raises(ValueError, match="shape"):
        evaluate_weights(BLOG_SPEC, w[:, :5], rules, "blog7", seeds, engine=engine)
    with pytest.raises(ValueError, match="seeds"):
        evaluate_weights(BLOG_SPEC, w, rules, "blog7", seeds[:1], engine=engine)
    with pytest.raises(ValueError, match="3 outputs"):
        evaluate_weights(nn.MLPSpec(7, (4,), 2), np.zeros((2, 42), np.float32), rules, "blog7", seeds,
                         engine=engine)
    with pytest.raises(ValueError, match="threads"):
        evaluate_weights(BLOG_SPEC, w, rules, "blog7", seeds, engine=engine, threads=0)
    empty = evaluate_weights(BLOG_SPEC, w[:0], rules, "blog7", seeds[:0], engine=engine)
    assert empty.scores.shape == (0, 3) and empty.env_steps == 0


def test_engine_choice():
    from evonet.envs.snake.fused import FusedUnsupported
    from evonet.problems.snake.evaluate import pick_engine

    rules = make_rules("classic")
    seeds = np.arange(6, dtype=np.uint64).reshape(2, 3)
    hidden_softmax = nn.MLPSpec(7, (5,), 3, activation="softmax")
    assert pick_engine(BLOG_SPEC) == "fused" and pick_engine(BLOG_SPEC, "batched") == "batched"
    assert pick_engine(hidden_softmax) == "batched"
    with pytest.raises(FusedUnsupported, match="network.activation"):
        pick_engine(hidden_softmax, "fused")
    with pytest.raises(ValueError, match="engine: expected one of auto, fused, batched"):
        evaluate_weights(BLOG_SPEC, np.zeros((2, BLOG_SPEC.n_params), np.float32), rules, "blog7", seeds,
                         engine="gpu")
    w = np.random.default_rng(3).normal(size=(2, hidden_softmax.n_params)).astype(np.float32)
    auto = evaluate_weights(hidden_softmax, w, rules, "blog7", seeds)  # falls back to the batched path
    batched = evaluate_weights(hidden_softmax, w, rules, "blog7", seeds, engine="batched")
    np.testing.assert_array_equal(auto.steps, batched.steps)


@ENGINES
def test_all_zero_network_goes_left_into_the_wall(engine):
    # all outputs 0: argmax ties go to index 0, turn left, every step: a circle, starved
    rules = make_rules("classic")
    res = evaluate_weights(BLOG_SPEC, np.zeros((1, BLOG_SPEC.n_params), np.float32), rules, "blog7",
                           np.arange(4, dtype=np.uint64)[None])
    game = SnakeGame(rules, 0)
    while not game.step(0):
        pass
    assert res.steps[0, 0] == game.steps and res.scores[0, 0] == game.score


# -- play_policy ------------------------------------------------------------------------


def heuristic_from_blog7(obs, active):
    """The blog's heuristic computed from its 7 inputs alone."""
    return np.array([_avoid(_wanted(float(o[3]), float(o[4]), float(o[5]), float(o[6])), o[0] > 0, o[1] > 0, o[2] > 0)
                     for o in obs])


@pytest.mark.parametrize("name", ["classic", "theailearner"])
def test_play_policy_heuristic_paths_agree(name):
    rules = make_rules(name)
    seeds = np.arange(100, dtype=np.uint64)
    fast = play_policy(rules, seeds, "heuristic")
    slow = play_policy(rules, seeds, heuristic_from_blog7, "blog7")
    np.testing.assert_array_equal(fast.scores, slow.scores)
    np.testing.assert_array_equal(fast.steps, slow.steps)
    for s in seeds[:5]:
        game = SnakeGame(rules, int(s))
        while not game.done:
            game.step(heuristic_action(game.body, game.apple, game.heading, rules.width, rules.height))
        assert (game.score, game.steps) == (fast.scores[s], fast.steps[s])


def test_random_policy_is_reproducible_and_weak():
    rules = make_rules("classic")
    seeds = np.arange(500, dtype=np.uint64)
    a = play_policy(rules, seeds, random_policy(np.random.default_rng(9)), "vision")
    b = play_policy(rules, seeds, random_policy(np.random.default_rng(9)), "vision")
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.steps, b.steps)
    assert a.scores.mean() < 1.0  # the benchmark doc: about 0-1 apples
    with pytest.raises(ValueError):
        play_policy(rules, seeds, "greedy")


def test_heuristic_like_network_plays_like_the_heuristic():
    rules = make_rules("classic")
    seeds = np.arange(300, dtype=np.uint64)
    res = evaluate_weights(BLOG_SPEC, heuristic_like_weights()[None], rules, "blog7", seeds[None])
    assert 15 < res.scores.mean() < 22


# -- summaries ------------------------------------------------------------------------


def test_summarize_classic():
    rules = make_rules("classic")
    scores = np.array([[10, 20], [30, 97]])
    steps = np.array([[100, 200], [300, 2400]])
    won = scores == 97
    s = summarize(scores, steps, won, rules)
    assert s["games"] == 4 and s["mean"] == pytest.approx(39.25)
    sd = np.std([10, 20, 30, 97], ddof=1)
    assert s["ci95"] == pytest.approx(1.96 * sd / 2)
    assert s["median"] == 25 and s["max"] == 97 and s["win_rate"] == 0.25
    assert s["steps_per_apple"] == pytest.approx(3000 / 157)
    assert s["fill_fraction"] == pytest.approx(39.25 / 97)
    text = format_summary(s, rules, "0..3")
    for word in ("classic", "10x10", "0..3", "apples", "39.250", "25.0%"):
        assert word in text


def test_summarize_theailearner_counts_apples_beyond_length_3():
    rules = make_rules("theailearner")
    s = summarize([3, 5], [10, 30], [False, False], rules)
    assert s["apples_mean"] == 1 and s["steps_per_apple"] == 20 and s["fill_fraction"] is None
    text = format_summary(s, rules, "eval 0..1")
    assert "theailearner" in text and "50x50" in text and "length" in text
    assert summarize([3], [10], [False], rules)["steps_per_apple"] is None


# -- the benchmark --------------------------------------------------------------------


def test_bench_snake_smoke():
    out = bench_snake(seconds_seed_style=0.05, population=8, games=2, seconds_vectorized=0.05,
                      min_seed_style_steps=20, flagship_population=2)
    for key in ("seed_style_steps_per_s", "vectorized_steps_per_s", "ratio", "peak_rss_mb",
                "vectorized_long_steps_per_s", "single_core_steps_per_s", "batched_steps_per_s",
                "batched_long_steps_per_s", "flagship_steps_per_s", "flagship_batched_steps_per_s",
                "flagship_single_core_steps_per_s"):
        assert out[key] > 0
    assert out["ratio"] == pytest.approx(out["vectorized_steps_per_s"] / out["seed_style_steps_per_s"])
    assert out["rules"] == "classic 10x10"


def test_config_picks_the_engine_and_threads():
    from evonet.core.config import load as load_config
    from evonet.problems.snake.problem import SnakeWeightsProblem

    def problem(*overrides):
        return SnakeWeightsProblem.from_config(load_config(None, list(overrides)))

    default = problem()
    assert (default.engine, default.threads) == ("fused", None) and "fused engine, all threads" in default.banner()
    assert problem("snake.threads=1").threads == 1
    assert problem("executor.kind=ray", "executor.cpus_per_eval=2").threads == 2  # what a Ray task reserved
    assert problem("executor.kind=ray", "executor.cpus_per_eval=0.5").threads == 1
    hidden_softmax = nn.MLPSpec(7, (5,), 3, activation="softmax")  # the Python API can build one, a config cannot
    fallback = SnakeWeightsProblem(hidden_softmax, "classic", 10, "blog7", 2, 1.0)
    assert fallback.engine == "batched" and "auto: the fused engine runs softmax only as the output" in fallback.banner()
    assert problem("snake.engine=batched").describe()["engine"] == "batched"
    # every task carries the engine and its threads
    task = problem("snake.threads=1").make_tasks(np.zeros((3, default.n_genes)), 0, np.arange(3), 2)[0]
    assert (task.engine, task.threads, len(task.weights)) == ("fused", 1, 2)
