"""Observation sets: hand-checked values, and the engine computes the same vectors."""

import numpy as np
import pytest

from evonet.envs.snake import OBSERVATIONS, BatchSnake, make_rules, n_features, observe
from evonet.envs.snake.observations import LOOKAHEAD_DEPTH


def test_registry():
    assert OBSERVATIONS == {"blog7": 7, "vision": 35, "cycle": 7, "lookahead": 5}
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
                                                ("classic", (7, 12), False), ("classic", (6, 5), False),
                                                ("theailearner", (12, 15), True),
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
    for obs in OBSERVATIONS:
        if obs == "cycle" and w * h % 2:
            continue  # no Hamiltonian cycle (refused: test_cycle_needs_an_even_number_of_cells)
        rows = eng.observe(obs)
        for i, (body, apple, heading) in enumerate(states):
            np.testing.assert_array_equal(rows[i], observe(obs, body, apple, heading, w, h, rules=name),
                                          err_msg=f"{obs} {i}")


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


# -- cycle ------------------------------------------------------------------------------


@pytest.mark.parametrize("board", [(10, 10), (20, 20), (8, 8), (5, 6), (6, 5), (7, 10), (12, 15), (50, 50), (2, 2)])
def test_cycle_index_is_a_hamiltonian_cycle(board):
    from evonet.envs.snake.observations import cycle_index

    w, h = board
    at = {cycle_index(x, y, w, h): (x, y) for y in range(h) for x in range(w)}
    assert sorted(at) == list(range(w * h))  # every cell once
    for i in range(w * h):
        (x0, y0), (x1, y1) = at[i], at[(i + 1) % (w * h)]
        assert abs(x0 - x1) + abs(y0 - y1) == 1, f"cells {i} and {i + 1} are not neighbours"


@pytest.mark.parametrize("board", [(10, 10), (20, 20), (8, 8), (12, 6), (7, 10)])
def test_the_classic_start_lies_in_cycle_order(board):
    """On boards with an even number of rows the cycle runs east through the start body."""
    from evonet.envs.snake.observations import cycle_index

    rules = make_rules("classic", *board)
    order = [cycle_index(x, y, *board) for x, y in reversed(rules.start_body)]  # tail to head
    assert [(i - order[0]) % (board[0] * board[1]) for i in order] == [0, 1, 2]


def test_cycle_hand_checked():
    # 10x10 start: the cycle runs westwards along row 5 of the serpentine, so reversed:
    # i(3,5) = 47 (tail), i(5,5) = 49 (head); left (5,4) = 58, front (6,5) = 50, right (5,6) = 40;
    # the apple (5,9) = 13
    x = observe("cycle", [(5, 5), (4, 5), (3, 5)], (5, 9), (1, 0), 10, 10)
    assert x.dtype == np.float32 and x.shape == (7,)
    np.testing.assert_array_equal(x, np.array([1, 1, 1, 0.55, 0.63, 0.73, 0.03], dtype=np.float32))
    # heading north in the top-left corner, the body to the south: left and front are off
    # the board (not onward, distance 1)
    body = [(0, 0), (0, 1), (0, 2)]
    x = observe("cycle", body, (5, 5), (0, -1), 10, 10)
    assert list(x[:2]) == [0, 0] and list(x[3:5]) == [1, 1]
    # no apple: every distance 0
    x = observe("cycle", [(5, 5), (4, 5), (3, 5)], None, (1, 0), 10, 10)
    assert list(x[3:6]) == [0, 0, 0]


def test_cycle_onward_excludes_the_body_and_moves_behind_the_head():
    from evonet.envs.snake.observations import cycle_index

    # a body folded back on itself (head (5,4), neck (5,5), ..., tail (3,5)): a move onto
    # the body is never onward, and a free cell behind the head in cycle order is not either
    body = [(4, 4), (5, 4), (5, 5), (4, 5), (3, 5)]
    x = observe("cycle", body, (0, 0), (-1, 0), 10, 10)
    tail = cycle_index(3, 5, 10, 10)
    rel = [(cycle_index(cx, cy, 10, 10) - tail) % 100 for cx, cy in [(4, 5), (3, 4), (4, 3)]]
    head = (cycle_index(4, 4, 10, 10) - tail) % 100
    assert x[0] == 0  # left (heading west): (4, 5), a body cell
    assert x[1] == (1.0 if rel[1] > head else 0.0) and x[2] == (1.0 if rel[2] > head else 0.0)


def test_cycle_needs_an_even_number_of_cells():
    with pytest.raises(ValueError, match="even number of cells.*5 x 5") as err:
        observe("cycle", [(2, 2), (1, 2), (0, 2)], (4, 4), (1, 0), 5, 5)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="even number of cells"):
        BatchSnake(make_rules("classic", 7, 7), np.arange(2, dtype=np.uint64)).observe("cycle")


@pytest.mark.parametrize("board", [(10, 10), (8, 8), (6, 12)])
def test_only_onward_moves_win_every_game(board):
    """The rule the cycle set is built for: among the onward moves, the one nearest the apple
    along the cycle. It never dies and never starves: every game is won."""
    from evonet.evaluators.snake import play_policy

    def policy(obs, active):
        return np.argmax(2 * obs[:, 0:3] - obs[:, 3:6], axis=1)

    res = play_policy(make_rules("classic", *board), np.arange(12, dtype=np.uint64), policy, "cycle")
    assert res.won.all(), np.unique(res.deaths, return_counts=True)
    assert np.all(res.scores == board[0] * board[1] - 3)


def test_lookahead_hand_checked_under_both_rule_sets():
    """Heading north at (1, 0) of an 8x8 board, a wall of body along row 1 and down column 7,
    the tail far away at (0, 7): front leaves the board; left leads into the open board;
    right runs along row 0 into the corner, 6 moves under the classic rules, while under
    theailearner's a turn into the body at (6, 1) is legal (the cell ahead of it is free)."""
    body = [(1, 0)] + [(x, 1) for x in range(1, 8)] + [(7, y) for y in range(2, 8)] + [(x, 7) for x in range(6, -1, -1)]
    assert LOOKAHEAD_DEPTH == 8
    classic = observe("lookahead", body, (4, 4), (0, -1), 8, 8, rules="classic")
    ailearner = observe("lookahead", body, (4, 4), (0, -1), 8, 8, rules="theailearner")
    np.testing.assert_array_equal(classic[:3], [1.0, 0.0, 6 / 8])
    np.testing.assert_array_equal(ailearner[:3], [1.0, 0.0, 1.0])
    # the apple at (+3, +4) from the head: forward is north (-0.8), right is east (0.6)
    np.testing.assert_allclose(classic[3:], [-0.8, 0.6], rtol=1e-6)
    np.testing.assert_array_equal(observe("lookahead", body, None, (0, -1), 8, 8)[3:], [0.0, 0.0])
    with pytest.raises(ValueError, match="unknown snake rules 'blog'"):
        observe("lookahead", body, None, (0, -1), 8, 8, rules="blog")


def test_lookahead_under_theailearner_sees_the_body_ahead_after_a_turn():
    """A left turn to (5, 4) puts the body cell (5, 3) straight ahead: fatal under
    theailearner's rules, an ordinary move under the classic ones."""
    body = [(5, 5), (4, 5), (4, 4), (4, 3), (5, 3), (6, 3), (7, 3)]
    assert observe("lookahead", body, (9, 9), (1, 0), 12, 12, rules="theailearner")[0] == 0.0
    assert observe("lookahead", body, (9, 9), (1, 0), 12, 12, rules="classic")[0] == 1.0


@pytest.mark.parametrize("name,board", [("classic", (6, 6)), ("classic", (10, 10)), ("theailearner", (12, 12))])
def test_lookahead_reach_is_zero_exactly_for_the_moves_the_game_ends_on(name, board):
    """On states of played games, a move's reach is 0 if and only if the game, stepped with
    that move, ends on the wall or the body (the apple eaten or not)."""
    import copy

    from evonet.envs.snake import SnakeGame
    from evonet.envs.snake.heuristic import heuristic_action

    rules = make_rules(name, *board)
    rng = np.random.default_rng(7)
    checked = fatal = 0
    for seed in range(40):
        game = SnakeGame(rules, seed)
        while not game.done and checked < 40 * 60:
            x = observe("lookahead", game.body, game.apple, game.heading, *board, rules=name)
            for action in range(3):
                trial = copy.deepcopy(game)
                trial.step(action)
                ends = trial.done and trial.death in ("wall", "body")
                assert (x[action] == 0.0) == ends, (seed, game.steps, action, trial.death)
                fatal += ends
            checked += 1
            heur = heuristic_action(game.body, game.apple, game.heading, *board)
            game.step(int(heur if rng.random() < 0.7 else rng.integers(3)))
    assert fatal > 100  # the states include plenty of fatal moves


def lookahead_rule_weights() -> np.ndarray:
    """A 5-3 linear network on the lookahead set: 4 * reach per move, plus the apple's
    direction (forward for the front move, right / minus right for the turns)."""
    kernel = np.zeros((5, 3), dtype=np.float32)
    for k in range(3):
        kernel[k, k] = 4.0
    kernel[3, 1], kernel[4, 0], kernel[4, 2] = 1.0, -1.0, 1.0
    return np.concatenate([kernel.ravel(), np.zeros(3, dtype=np.float32)])


def test_lookahead_carries_enough_to_pass_58_under_theailearner():
    """A linear rule on the lookahead features (keep to moves with the longest reach, then
    head for the apple) plays theailearner 50x50 at about 59 (1000 games: 59.46); the
    vision agent of snake_theailearner.yaml plays 54.64."""
    from evonet import nn
    from evonet.envs.snake import fused
    from evonet.envs.snake.engine import DEATH_CODES

    res = fused.play_mlp(nn.MLPSpec(5, (), 3), lookahead_rule_weights()[None], make_rules("theailearner"),
                         "lookahead", np.arange(10000, 10048, dtype=np.uint64)[None])
    assert res.scores.mean() > 57
    assert (res.deaths == DEATH_CODES["step_limit"]).mean() > 0.75  # most games last to the step limit
