"""The batched engine plays exactly the reference's games, step by step."""

import numpy as np
import pytest

from evonet.envs.snake import DEATH_NAMES, OBSERVATIONS, BatchSnake, SnakeGame, make_rules, observe
from evonet.envs.snake.heuristic import heuristic_action


def assert_same(eng: BatchSnake, refs, games=None, where=""):
    for i in range(len(refs)) if games is None else games:
        a, b = refs[i].snapshot(), eng.snapshot(i)
        assert a == b, f"game {i} {where}:\nreference {a}\nengine    {b}"


def assert_same_observations(eng: BatchSnake, refs, games, where=""):
    w, h = eng.rules.width, eng.rules.height
    for name in OBSERVATIONS:
        if name == "cycle" and w * h % 2:
            continue  # no Hamiltonian cycle on this board
        rows = eng.observe(name, games)
        for row, i in zip(rows, games, strict=True):
            g = refs[i]
            expected = observe(name, g.body, g.apple, g.heading, w, h, rules=eng.rules.name)
            np.testing.assert_array_equal(row, expected, err_msg=f"{name} game {i} {where}")


def play_lockstep(rules, seeds, rng, p_heuristic, obs_games=0, obs_every=1):
    """Play reference and engine side by side with a mix of the heuristic and random
    actions; compare every game's full state after every step, the heuristic's actions,
    and every observation set of the first `obs_games` games every `obs_every` steps."""
    refs = [SnakeGame(rules, int(s)) for s in seeds]
    eng = BatchSnake(rules, seeds)
    assert_same(eng, refs, where="at reset")
    n, step = len(refs), 0
    while not eng.all_done:
        live = np.flatnonzero(~eng.done)
        heur = eng.heuristic_actions(live)
        for j, i in enumerate(live):
            g = refs[i]
            assert heur[j] == heuristic_action(g.body, g.apple, g.heading, rules.width, rules.height)
        if obs_games and step % obs_every == 0:
            assert_same_observations(eng, refs, live[live < obs_games], where=f"step {step}")
        actions = rng.integers(0, 3, n)
        actions[live] = np.where(rng.random(live.size) < p_heuristic, heur, actions[live])
        for i in live:
            refs[i].step(int(actions[i]))
        eng.step(actions)
        step += 1
        assert_same(eng, refs, live, where=f"after step {step}")
    assert all(g.done for g in refs)
    return eng, refs


CASES = [
    # rules, board, games, share of heuristic actions, games whose observations are checked, every
    ("classic", (10, 10), 500, 0.9, 100, 1),
    ("classic", (10, 10), 1000, 0.0, 100, 1),
    ("classic", (5, 5), 400, 0.8, 60, 1),
    ("classic", (7, 12), 300, 0.9, 40, 1),
    ("classic", (20, 20), 60, 0.95, 10, 3),
    ("theailearner", (50, 50), 100, 0.9, 8, 2),
    ("theailearner", (50, 50), 200, 0.0, 10, 2),
    ("theailearner", (12, 15), 300, 0.85, 40, 1),
]


@pytest.mark.parametrize("name,board,games,p_heuristic,obs_games,obs_every", CASES)
def test_engine_matches_reference(name, board, games, p_heuristic, obs_games, obs_every):
    rules = make_rules(name, *board)
    rng = np.random.default_rng([games, board[0], board[1], int(p_heuristic * 100)])
    seeds = rng.integers(0, 2**64 - 1, size=games, dtype=np.uint64, endpoint=True)
    eng, refs = play_lockstep(rules, seeds, rng, p_heuristic, obs_games, obs_every)
    deaths = {g.death for g in refs}
    assert "wall" in deaths
    if p_heuristic > 0.5:
        assert "body" in deaths  # long games end in the body too
        assert max(g.apples for g in refs) >= 10


def test_large_and_small_seeds_agree_with_reference():
    rules = make_rules("classic")
    seeds = np.array([0, 1, 2**32 - 1, 2**63, 2**64 - 1], dtype=np.uint64)
    eng = BatchSnake(rules, seeds)
    for i, s in enumerate(seeds):
        assert eng.apple(i) == SnakeGame(rules, int(s)).apple
    with pytest.raises(ValueError):
        BatchSnake(rules, [-1])
    with pytest.raises(ValueError):
        BatchSnake(rules, [1.5])


# -- scripted games -------------------------------------------------------------------


@pytest.mark.parametrize("name,board", [("classic", (10, 10)), ("classic", (5, 5)), ("classic", (7, 12)),
                                        ("theailearner", (50, 50))])
def test_always_straight_hits_the_wall(name, board):
    rules = make_rules(name, *board)
    seeds = np.arange(50, dtype=np.uint64)
    eng = BatchSnake(rules, seeds)
    refs = [SnakeGame(rules, int(s)) for s in seeds]
    while not eng.all_done:
        eng.step(np.ones(50, dtype=np.int64))
        for g in refs:
            g.step(1)
        assert_same(eng, refs)
    assert {DEATH_NAMES[d] for d in eng.death} == {"wall"}


@pytest.mark.parametrize("name,board,death", [("classic", (10, 10), "starved"), ("classic", (7, 12), "starved"),
                                              ("theailearner", (50, 50), "step_limit")])
def test_circling(name, board, death):
    rules = make_rules(name, *board)
    seeds = np.arange(30, dtype=np.uint64) + 1000
    eng = BatchSnake(rules, seeds)
    refs = [SnakeGame(rules, int(s)) for s in seeds]
    while not eng.all_done:
        eng.step(np.full(30, 2))
        for g in refs:
            g.step(2)
        assert_same(eng, refs)
    assert {DEATH_NAMES[d] for d in eng.death} == {death}


def test_set_game_then_play_like_the_reference():
    body = [(10, 10), (9, 10), (9, 11), (10, 11), (11, 11), (12, 11), (12, 10), (12, 9)]
    for name in ("classic", "theailearner"):
        rules = make_rules(name, 20)
        for actions in ([2, 1, 1], [1, 1, 0], [0, 0, 2, 2]):
            eng = BatchSnake(rules, [7])
            eng.set_game(0, body, (15, 15), (1, 0))
            ref = SnakeGame(rules, 7)
            ref.body, ref.heading, ref.apple = list(body), (1, 0), (15, 15)
            ref.score = 0 if rules.classic else len(body)
            assert eng.snapshot(0) == ref.snapshot()
            np.testing.assert_array_equal(eng.observe("vision")[0], observe("vision", body, (15, 15), (1, 0), 20, 20))
            for a in actions:
                ref.step(a)
                eng.step([a])
                assert eng.snapshot(0) == ref.snapshot()


def hamiltonian_successors(width, height, start_body):
    """A Hamiltonian cycle (height even) as a successor table, oriented so that the start
    body lies along it (tail -> neck -> head)."""
    assert height % 2 == 0
    order = [(x, 0) for x in range(width)]
    for y in range(1, height):
        xs = range(width - 1, 0, -1) if y % 2 else range(1, width)
        order += [(x, y) for x in xs]
    order += [(0, y) for y in range(height - 1, 0, -1)]
    assert len(set(order)) == width * height
    for cycle in (order, order[::-1]):
        succ = {cycle[i]: cycle[(i + 1) % len(cycle)] for i in range(len(cycle))}
        if all(succ[start_body[i + 1]] == start_body[i] for i in range(len(start_body) - 1)):
            nx = np.zeros((height, width), np.int64)
            ny = np.zeros((height, width), np.int64)
            for (x, y), (sx, sy) in succ.items():
                nx[y, x], ny[y, x] = sx, sy
            return nx, ny
    raise AssertionError("the start body does not lie along the cycle")


def follow(nx, ny, hx, hy, dx, dy):
    """Relative actions that move heads (hx, hy) with headings (dx, dy) to their successors."""
    tx, ty = nx[hy, hx] - hx, ny[hy, hx] - hy
    return np.where((tx == dx) & (ty == dy), 1, np.where((tx == dy) & (ty == -dx), 0, 2))


@pytest.mark.parametrize("board", [(10, 10), (7, 12)])
def test_hamiltonian_follower_wins_every_game(board):
    rules = make_rules("classic", *board)
    nx, ny = hamiltonian_successors(*board, rules.start_body)
    n = 300
    eng = BatchSnake(rules, np.arange(n, dtype=np.uint64))
    while not eng.all_done:
        eng.step(follow(nx, ny, eng.head_x, eng.head_y, eng.heading_x, eng.heading_y))
    assert eng.won.all() and (eng.score == rules.max_score).all()
    assert {DEATH_NAMES[d] for d in eng.death} == {"won"}
    if board == (10, 10):
        assert 2200 < eng.steps.mean() < 2600  # the benchmark doc: about 2,400 steps a game
    # and the same on the reference, step by step, for two games
    for seed in (0, 1):
        ref, one = SnakeGame(rules, seed), BatchSnake(rules, [seed])
        while not ref.done:
            a = follow(nx, ny, one.head_x, one.head_y, one.heading_x, one.heading_y)
            ref.step(int(a[0]))
            one.step(a)
            assert one.snapshot(0) == ref.snapshot()
        assert ref.won and ref.score == rules.max_score and ref.apple is None


# -- the heuristic validates the rules ------------------------------------------------


@pytest.mark.parametrize("name,board,low,high", [("theailearner", 50, 21.0, 24.5),
                                                 ("classic", 10, 16.5, 19.5),
                                                 ("classic", 20, 26.5, 31.0)])
def test_heuristic_scores_as_the_benchmark_doc_says(name, board, low, high):
    rules = make_rules(name, board)
    eng = BatchSnake(rules, np.arange(1000, dtype=np.uint64))
    eng.play_heuristic()
    assert low < eng.score.mean() < high


def test_play_heuristic_equals_stepwise_heuristic():
    for name in ("classic", "theailearner"):
        rules = make_rules(name)
        seeds = np.arange(40, dtype=np.uint64) + 77
        fast = BatchSnake(rules, seeds)
        fast.play_heuristic()
        slow = BatchSnake(rules, seeds)
        while not slow.all_done:
            slow.step(slow.heuristic_actions())
        for i in range(40):
            assert fast.snapshot(i) == slow.snapshot(i)


# -- API ------------------------------------------------------------------------------


def test_actions_are_checked_and_finished_games_ignore_theirs():
    rules = make_rules("classic", 5, 5)
    eng = BatchSnake(rules, [1, 2])
    with pytest.raises(ValueError):
        eng.step([1, 3])
    with pytest.raises(ValueError):
        eng.step([1])
    with pytest.raises(ValueError):
        eng.step([1.0, 1.0])
    with pytest.raises(IndexError):
        eng.step([1], games=[2])
    while not eng.done[0]:
        eng.step([1, 2], games=[0, 1])
    snap = eng.snapshot(0)
    eng.step([0, 2])
    assert eng.snapshot(0) == snap
    assert eng.steps[1] == snap.steps + 1


def test_subsets_of_games_step_independently():
    rules = make_rules("classic")
    eng = BatchSnake(rules, np.arange(6, dtype=np.uint64))
    eng.step([1, 1], games=[4, 1])
    assert list(eng.steps) == [0, 1, 0, 0, 1, 0]
    obs = eng.observe("blog7", [4, 1])
    np.testing.assert_array_equal(obs[0], eng.observe("blog7")[4])
