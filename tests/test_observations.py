"""Observation sets: hand-checked values, and the engine computes the same vectors."""

import numpy as np
import pytest

from evonet.envs.snake import OBSERVATIONS, BatchSnake, make_rules, n_features, observe


def test_registry():
    assert OBSERVATIONS == {"blog7": 7, "vision": 35}
    assert n_features("vision") == 35
    with pytest.raises(ValueError) as err:
        observe("pixels", [(1, 1), (0, 1)], None, (1, 0), 5, 5)
    assert "blog7" in str(err.value) and "vision" in str(err.value)


def test_blog7_at_the_start():
    x = observe("blog7", [(5, 5), (4, 5), (3, 5)], (5, 9), (1, 0), 10, 10)
    assert x.dtype == np.float32 and x.shape == (7,)
    np.testing.assert_array_equal(x, [0, 0, 0, 0, 1, 1, 0])
    x = observe("blog7", [(5, 5), (4, 5), (3, 5)], (8, 1), (1, 0), 10, 10)
    np.testing.assert_allclose(x[3:5], [0.6, -0.8], rtol=1e-6)


def test_blog7_blocked_bits_walls_body_and_tail():
    # heading north at the top wall: front blocked; the tail to the right counts
    x = observe("blog7", [(1, 0), (1, 1), (2, 1), (2, 0)], (4, 4), (0, -1), 5, 5)
    np.testing.assert_array_equal(x[:3], [0, 1, 1])
    np.testing.assert_array_equal(x[5:], [0, -1])
    # apple on the head (theailearner allows it) or no apple: zero direction
    assert list(observe("blog7", [(1, 1), (0, 1)], (1, 1), (1, 0), 5, 5)[3:5]) == [0, 0]
    assert list(observe("blog7", [(1, 1), (0, 1)], None, (1, 0), 5, 5)[3:5]) == [0, 0]


def test_vision_hand_checked():
    x = observe("vision", [(2, 2), (1, 2), (0, 2)], (2, 0), (1, 0), 5, 5)
    assert x.dtype == np.float32 and x.shape == (35,)
    rays = x[:24].reshape(8, 3)
    np.testing.assert_allclose(rays[:, 0], [1 / 3] * 8, rtol=1e-6)  # every wall 3 steps away
    np.testing.assert_array_equal(rays[:, 1], [0, 0, 0, 0, 1, 0, 0, 0])  # the neck behind; tail ignored
    np.testing.assert_array_equal(rays[:, 2], [0, 0, 0, 0, 0, 0, 1, 0])  # apple on the left ray
    np.testing.assert_array_equal(x[24:27], [0, 0, 0])
    np.testing.assert_array_equal(x[27:30], [1, 1, 1])  # one region, and the tail in it
    np.testing.assert_array_equal(x[30:32], [0, -1])  # apple: straight left
    np.testing.assert_array_equal(x[32:34], [-1, 0])  # tail: straight behind
    assert x[34] == np.float32(3 / 25)


def test_vision_sees_a_dead_end_and_ignores_the_tail():
    body = [(2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (1, 4)]  # a wall of body down the middle
    x = observe("vision", body, (4, 4), (0, -1), 5, 5)
    np.testing.assert_array_equal(x[24:27], [0, 1, 0])  # front is the wall
    # left: the tail's side, safe; right: 10 of the 20 free cells and no way out
    np.testing.assert_array_equal(x[27:30], [1, 0, 0.5])
    body = [(2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (3, 4)]  # the same, tail on the right
    x = observe("vision", body, (4, 4), (0, -1), 5, 5)
    np.testing.assert_array_equal(x[27:30], [0.5, 0, 1])
    body = [(2, 0), (2, 1), (2, 2), (1, 2), (1, 1), (1, 0), (0, 0)]  # west side sealed off
    x = observe("vision", body, None, (0, -1), 5, 5)
    assert x[24] == 1 and x[26] == 0 and x[25] == 1
    assert x[29] == 1.0  # right: the one region with all free cells
    assert list(x[30:32]) == [0, 0]


def random_snake(rng, width, height, length, overlap=False):
    """A random body (head first) built by a random walk, and its heading."""
    for _ in range(1000):
        body = [(int(rng.integers(width)), int(rng.integers(height)))]
        heading = None
        while len(body) < length:
            x, y = body[-1]
            options = [(x + dx, y + dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))
                       if 0 <= x + dx < width and 0 <= y + dy < height and (overlap or (x + dx, y + dy) not in body)]
            if len(body) > 1:
                options = [c for c in options if c != body[-2]]
            if not options:
                break
            body.append(options[rng.integers(len(options))])
        if len(body) == length:
            heading = (body[0][0] - body[1][0], body[0][1] - body[1][1])
            return body, heading
    raise AssertionError("no snake")


@pytest.mark.parametrize("name,board,overlap", [("classic", (5, 5), False), ("classic", (10, 10), False),
                                                ("classic", (7, 12), False), ("theailearner", (12, 15), True),
                                                ("theailearner", (50, 50), True)])
def test_engine_observations_match_on_random_states(name, board, overlap):
    rules = make_rules(name, *board)
    w, h = board
    rng = np.random.default_rng(list(board))
    n = 150
    eng = BatchSnake(rules, np.arange(n, dtype=np.uint64))
    states = []
    for i in range(n):
        length = int(rng.integers(2, min(w * h - 1, 60)))
        body, heading = random_snake(rng, w, h, length, overlap)
        free = [(x, y) for y in range(h) for x in range(w) if (x, y) not in body]
        roll = rng.random()
        apple = None if roll < 0.1 else (body[0] if roll < 0.2 else free[rng.integers(len(free))])
        eng.set_game(i, body, apple, heading)
        states.append((body, apple, heading))
    for obs in ("blog7", "vision"):
        rows = eng.observe(obs)
        for i, (body, apple, heading) in enumerate(states):
            np.testing.assert_array_equal(rows[i], observe(obs, body, apple, heading, w, h), err_msg=f"{obs} {i}")


def test_vision_values_are_bounded():
    rng = np.random.default_rng(3)
    for _ in range(200):
        body, heading = random_snake(rng, 10, 10, int(rng.integers(3, 40)))
        x = observe("vision", body, (0, 0) if (0, 0) not in body else None, heading, 10, 10)
        assert np.all(np.abs(x) <= 1.0) and np.all(x[:30] >= 0)


def test_vision_carries_enough_to_play_well():
    """Three lines on the vision features (avoid blocked moves, prefer safe regions, then
    the apple) average about 60 of 97 apples on classic 10x10: the bar for evolved MLPs."""
    from evonet.evaluators.snake import play_policy

    def policy(obs, active):
        blocked = obs[:, 24:27] > 0
        safety = np.floor(obs[:, 27:30] * 20) / 20
        towards_apple = np.stack([-obs[:, 31], obs[:, 30], obs[:, 31]], axis=1)
        return np.argmax(np.where(blocked, -1e9, 10 * safety + towards_apple), axis=1)

    res = play_policy(make_rules("classic"), np.arange(200, dtype=np.uint64), policy, "vision")
    assert res.scores.mean() > 50
