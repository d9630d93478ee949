"""SnakeEnv: Gymnasium's checker, determinism, equality with the reference game, rendering."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from evonet.envs.snake.env import ENV_ID, SnakeEnv, observation_bounds, register_envs
from evonet.envs.snake.observations import observe
from evonet.envs.snake.reference import SnakeGame
from evonet.envs.snake.rules import Rules, make_rules

RULE_SETS = ("classic", "theailearner")
OBS_SETS = ("blog7", "vision", "cycle", "lookahead")


def greedy(body, apple, heading, width, height) -> int:
    """Turn towards the apple, avoiding walls and the body (classic rules); straight on ties."""
    (x, y), (dx, dy) = body[0], heading
    blocked = set(body[:-1])
    best, best_d = 1, None
    for a, (hx, hy) in ((1, (dx, dy)), (0, (dy, -dx)), (2, (-dy, dx))):
        nx, ny = x + hx, y + hy
        if not (0 <= nx < width and 0 <= ny < height) or (nx, ny) in blocked:
            continue
        d = 0 if apple is None else abs(apple[0] - nx) + abs(apple[1] - ny)
        if best_d is None or d < best_d:
            best, best_d = a, d
    return best


def mixed_actions(seed: int):
    """A policy: greedy, with a random action one step in eight (seeded)."""
    rng = np.random.default_rng(seed)

    def act(body, apple, heading, width, height) -> int:
        if rng.random() < 0.125:
            return int(rng.integers(3))
        return greedy(body, apple, heading, width, height)

    return act


@pytest.fixture(scope="module", autouse=True)
def _registered():
    register_envs()


@pytest.mark.parametrize("rules", RULE_SETS)
@pytest.mark.parametrize("observation", OBS_SETS)
def test_check_env_passes_without_warnings(rules, observation):
    env = gym.make(ENV_ID, rules=rules, observation=observation)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # the unwrapped env keeps its spec, so the checker also makes and renders the
        # "human" (dummy SDL window) and "rgb_array" modes
        check_env(env.unwrapped)
    env.close()
    assert [str(w.message) for w in caught] == []


def test_register_envs_is_idempotent_and_make_passes_kwargs():
    register_envs()
    register_envs()
    env = gym.make(ENV_ID, rules="classic", width=12, height=8, observation="vision")
    assert env.unwrapped.rules == make_rules("classic", 12, 8)
    assert env.observation_space.shape == (35,)
    assert env.action_space == gym.spaces.Discrete(3)
    env.close()


def test_defaults_follow_the_rule_set():
    assert SnakeEnv().rules == make_rules("classic", 10, 10)
    assert SnakeEnv(rules="theailearner").rules == make_rules("theailearner", 50, 50)
    with pytest.raises(ValueError, match="observation"):
        SnakeEnv(observation="pixels")
    with pytest.raises(ValueError, match="render_mode"):
        SnakeEnv(render_mode="ansi")


def test_observation_bounds():
    low, high = observation_bounds("blog7", make_rules("classic"))
    assert low.tolist() == [0, 0, 0, -1, -1, -1, -1] and high.tolist() == [1] * 7
    low, high = observation_bounds("vision", make_rules("classic"))
    assert low[30:34].tolist() == [-1] * 4 and (low[:30] == 0).all() and (high == 1).all()
    # theailearner on a small board: apples on the body let the snake outgrow the board
    _, high = observation_bounds("vision", make_rules("theailearner", 11, 11))
    assert high[34] == pytest.approx((3 + 2000) / 121)
    low, high = observation_bounds("lookahead", make_rules("theailearner"))
    assert low.tolist() == [0, 0, 0, -1, -1] and high.tolist() == [1] * 5


def _rollout(env: SnakeEnv, seed: int, policy, max_steps: int = 3000):
    obs, info = env.reset(seed=seed)
    traj = [(obs, info)]
    for _ in range(max_steps):
        g = env.game
        action = policy(list(g.body), g.apple, g.heading, env.rules.width, env.rules.height)
        obs, reward, terminated, truncated, info = env.step(action)
        traj.append((action, obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return traj


def _same(a, b) -> bool:
    return all(
        all(np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y for x, y in zip(s, t))
        for s, t in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("rules,observation", [("classic", "vision"), ("theailearner", "blog7")])
def test_same_seed_same_trajectory(rules, observation):
    a = _rollout(SnakeEnv(rules=rules, observation=observation), 5, mixed_actions(1))
    b = _rollout(SnakeEnv(rules=rules, observation=observation), 5, mixed_actions(1))
    assert len(a) > 10
    assert _same(a, b)
    c = _rollout(SnakeEnv(rules=rules, observation=observation), 6, mixed_actions(1))
    assert not _same(a[: len(c)], c[: len(a)])


def test_unseeded_resets_are_reproducible_from_a_seeded_one():
    env = SnakeEnv()
    env.reset(seed=123)
    seeds_1 = [env.reset()[1]["game_seed"] for _ in range(5)]
    env.reset(seed=123)
    seeds_2 = [env.reset()[1]["game_seed"] for _ in range(5)]
    assert seeds_1 == seeds_2
    assert len(set(seeds_1)) == 5 and all(0 <= s < 2**64 for s in seeds_1)
    # a seeded reset plays exactly that game seed (evaluation seed 7 = SnakeGame(rules, 7))
    _, info = env.reset(seed=np.uint64(7))
    assert info["game_seed"] == 7 and env.game.apple == SnakeGame(env.rules, 7).apple


@pytest.mark.parametrize("rules", RULE_SETS)
@pytest.mark.parametrize("observation", OBS_SETS)
@pytest.mark.parametrize("seed", [0, 3, 2**63 + 11])
def test_trajectory_equals_the_reference_game(rules, observation, seed):
    env = SnakeEnv(rules=rules, observation=observation)
    policy = mixed_actions(seed % 1000)
    cap = 400 if rules == "classic" else 100  # vision's flood fill on 50 x 50 is slow-ish
    traj = _rollout(env, seed, policy, max_steps=cap)
    game = SnakeGame(env.rules, seed)
    r = env.rules

    def expected_obs():
        return observe(observation, game.body, game.apple, game.heading, r.width, r.height, rules=r.name)

    obs, info = traj[0]
    assert np.array_equal(obs, expected_obs()) and obs in env.observation_space
    assert info["score"] == game.score and info["steps"] == 0 and info["death"] is None
    total = 0.0
    for action, obs, reward, terminated, truncated, info in traj[1:]:
        before = game.score
        game.step(action)
        assert np.array_equal(obs, expected_obs())
        assert obs.dtype == np.float32 and obs in env.observation_space
        assert reward == game.score - before
        assert (info["score"], info["steps"], info["death"], info["won"]) == (
            game.score, game.steps, game.death, game.won)
        assert terminated == (game.done and game.death in ("wall", "body", "won"))
        assert truncated == (game.done and game.death in ("starved", "step_limit"))
        total += reward
    assert game.done or len(traj) == cap + 1
    assert total == game.score - r.score_offset


def test_starvation_truncates():
    # always turning right circles on a 2 x 2 square; some seed's apple lies elsewhere
    for seed in range(20):
        env = SnakeEnv()
        env.reset(seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            _, _, terminated, truncated, info = env.step(2)
        if info["death"] == "starved":
            assert truncated and not terminated and info["steps"] == 100
            return
    pytest.fail("no seed in 0..19 starved")


def test_step_limit_truncates_and_finished_games_need_a_reset():
    base = make_rules("theailearner")
    rules = Rules(base.name, base.width, base.height, base.start_body, base.start_heading,
                  max_steps=5, starvation_steps=None)
    env = SnakeEnv(rules=rules)
    env.reset(seed=0)
    results = [env.step(1) for _ in range(5)]
    assert [terminated for _, _, terminated, _, _ in results] == [False] * 5
    assert [truncated for _, _, _, truncated, _ in results] == [False] * 4 + [True]
    assert results[-1][-1]["death"] == "step_limit" and results[-1][-1]["steps"] == 5
    with pytest.raises(RuntimeError, match="reset"):
        env.step(1)


def test_invalid_use():
    env = SnakeEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(3)
    env.step(np.int64(1))  # numpy integers are actions too


@pytest.mark.parametrize("rules,width", [("classic", 10), ("classic", 20), ("theailearner", None)])
def test_rgb_array_render(rules, width):
    env = SnakeEnv(rules=rules, width=width, render_mode="rgb_array")
    env.reset(seed=1)
    frame = env.render()
    from evonet.envs.snake.render import SnakeRenderer

    w, h = SnakeRenderer(env.rules.width, env.rules.height).size
    assert frame.shape == (h, w, 3) and frame.dtype == np.uint8
    env.step(1)
    assert not np.array_equal(frame, env.render())
    env.close()
    env.close()


def test_human_render_with_dummy_driver_returns_none():
    env = SnakeEnv(render_mode="human")
    env.metadata = {**env.metadata, "render_fps": 1000}  # don't wait in the test
    env.reset(seed=1)
    env.step(1)
    assert env.render() is None
    env.close()


def test_render_without_mode_warns_and_returns_none():
    env = SnakeEnv()
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None
