"""The rule sets, the game's PRNG and the reference game (plain Python)."""

import pytest

from evonet.envs.snake import SnakeGame, SplitMix64, make_rules, turn
from evonet.envs.snake.heuristic import heuristic_action
from evonet.envs.snake.rules import Rules

# -- rules ----------------------------------------------------------------------------


def test_make_rules_defaults():
    classic = make_rules("classic")
    assert (classic.width, classic.height) == (10, 10)
    assert classic.start_body == ((5, 5), (4, 5), (3, 5))
    assert classic.start_heading == (1, 0)
    assert classic.max_steps is None and classic.starvation_steps == 100
    assert classic.max_score == 97 and classic.score_offset == 0
    assert classic.describe() == "classic 10x10"

    blog = make_rules("theailearner")
    assert (blog.width, blog.height) == (50, 50)
    assert blog.start_body == ((10, 10), (9, 10), (8, 10))
    assert blog.max_steps == 2000 and blog.starvation_steps is None
    assert blog.score_offset == 3 and blog.max_score is None

    rect = make_rules("classic", 7, 12)
    assert rect.start_body == ((3, 6), (2, 6), (1, 6)) and rect.starvation_steps == 84
    assert make_rules("classic", 20).board == "20x20"


def test_make_rules_errors_are_one_line():
    with pytest.raises(ValueError) as err:
        make_rules("tron")
    assert "classic" in str(err.value) and "theailearner" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="at least 5"):
        make_rules("classic", 4, 10)
    with pytest.raises(ValueError, match="at least 11"):
        make_rules("theailearner", 10)


def test_rules_validate_their_fields():
    with pytest.raises(ValueError, match="off the"):
        Rules("classic", 5, 5, ((5, 2), (4, 2), (3, 2)), (1, 0), None, 25)
    with pytest.raises(ValueError, match="neck to the head"):
        Rules("classic", 5, 5, ((2, 2), (1, 2), (0, 2)), (-1, 0), None, 25)
    with pytest.raises(ValueError, match="step limit"):
        Rules("theailearner", 50, 50, ((10, 10), (9, 10), (8, 10)), (1, 0), None, None)
    with pytest.raises(AttributeError):
        make_rules("classic").width = 3  # frozen


# -- the PRNG -------------------------------------------------------------------------


def test_splitmix64_known_values():
    rng = SplitMix64(0)
    assert [rng.next() for _ in range(3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    rng = SplitMix64(1234567)
    assert [rng.next() for _ in range(3)] == [6457827717110365317, 3203168211198807973, 9817491932198370423]


def test_randbelow_range_and_formula():
    a, b = SplitMix64(2**64 - 1), SplitMix64(2**64 - 1)
    for n in (1, 2, 3, 97, 2500, 2**32 - 1):
        assert a.randbelow(n) == ((b.next() >> 32) * n) >> 32
    rng = SplitMix64(7)
    draws = [rng.randbelow(5) for _ in range(5000)]
    assert set(draws) == {0, 1, 2, 3, 4}
    with pytest.raises(ValueError):
        SplitMix64(-1)
    with pytest.raises(ValueError):
        SplitMix64(2**64)
    with pytest.raises(ValueError):
        rng.randbelow(0)


# -- the classic game -----------------------------------------------------------------


def test_turns():
    assert turn((1, 0), 0) == (0, -1)  # east, left: north (y grows south)
    assert turn((1, 0), 2) == (0, 1)
    assert turn((0, 1), 1) == (0, 1)
    with pytest.raises(ValueError):
        turn((1, 0), 3)


def test_classic_start_and_first_apple():
    rules = make_rules("classic")
    game = SnakeGame(rules, 0)
    assert game.body == [(5, 5), (4, 5), (3, 5)]
    assert game.heading == (1, 0) and game.score == 0 and game.steps == 0 and not game.done
    # the first apple: the k-th free cell in row-major order, k = randbelow(97)
    k = SplitMix64(0).randbelow(97)
    free = [(x, y) for y in range(10) for x in range(10) if (x, y) not in game.body]
    assert game.apple == free[k]


@pytest.mark.parametrize("size", [(10, 10), (5, 5), (7, 12)])
def test_classic_straight_into_the_wall(size):
    rules = make_rules("classic", *size)
    for seed in range(20):
        game = SnakeGame(rules, seed)
        while not game.step(1):
            pass
        # the head walks east from W//2 and dies on the wall, apples eaten or not
        assert game.death == "wall" and not game.won
        assert game.steps == rules.width - rules.width // 2
        assert game.head == (rules.width - 1, rules.height // 2)
        assert game.score == game.apples == len(game.body) - 3


def test_classic_circling_starves():
    rules = make_rules("classic")
    for seed in range(20):
        game = SnakeGame(rules, seed)
        last_apple_step = 0
        while not game.step(2):  # always right: a 2x2 circle
            if game.steps_since_apple == 0:
                last_apple_step = game.steps
        assert game.death == "starved"
        assert game.steps_since_apple == 100
        assert game.steps == last_apple_step + 100


def test_classic_tail_cell_is_free_unless_eating():
    rules = make_rules("classic")
    game = SnakeGame(rules, 0)
    game.body = [(5, 5), (5, 6), (4, 6), (4, 5)]  # a 2x2 square, heading north
    game.heading = (0, -1)
    game.apple = (0, 0)
    assert not game.step(0)  # left: west onto the tail's cell, which it leaves
    assert game.body == [(4, 5), (5, 5), (5, 6), (4, 6)]
    game = SnakeGame(rules, 0)
    game.body = [(5, 5), (5, 6), (4, 6), (4, 5), (3, 5)]
    game.heading = (0, -1)
    game.apple = (0, 0)
    assert game.step(0) and game.death == "body"
    assert game.body == [(5, 5), (5, 6), (4, 6), (4, 5), (3, 5)]  # a fatal move moves nothing
    assert game.heading == (-1, 0) and game.steps == 1


def test_classic_eating_grows_and_wins_on_a_full_board():
    rules = make_rules("classic", 5, 5)
    game = SnakeGame(rules, 3)
    # fill the board but one cell, then eat the last apple
    cells = [(x, y) for y in range(5) for x in (range(5) if y % 2 == 0 else range(4, -1, -1))]
    game.body = list(reversed(cells[:-1]))  # head at (3, 4), heading east
    assert game.body[0] == (3, 4) and cells[-1] == (4, 4)
    game.heading = (1, 0)
    game.apple = (4, 4)
    game.score = game.apples = 21
    assert game.step(1)
    assert game.won and game.death == "won" and game.apple is None
    assert game.score == 22 == rules.max_score and len(game.body) == 25


def test_finished_game_ignores_actions():
    game = SnakeGame(make_rules("classic", 5, 5), 0)
    while not game.step(1):
        pass
    snap = game.snapshot()
    assert game.step(0) and game.snapshot() == snap
    with pytest.raises(ValueError):
        SnakeGame(make_rules("classic"), 0).step(5)


def test_snapshot_is_immutable_and_complete():
    game = SnakeGame(make_rules("classic"), 11)
    snap = game.snapshot()
    assert snap.body == tuple(game.body) and snap.apple == game.apple and snap.heading == (1, 0)
    assert (snap.width, snap.height, snap.score, snap.steps, snap.done) == (10, 10, 0, 0, False)
    with pytest.raises(AttributeError):
        snap.score = 3
    game.step(1)
    assert snap.steps == 0 and snap.body != tuple(game.body)


# -- the theailearner game ------------------------------------------------------------


def test_theailearner_apples_and_score():
    rules = make_rules("theailearner")
    game = SnakeGame(rules, 5)
    rng = SplitMix64(5)
    assert game.apple == (1 + rng.randbelow(49), 1 + rng.randbelow(49))
    assert game.score == 3 and game.body == [(10, 10), (9, 10), (8, 10)]


def test_theailearner_straight_dies_after_leaving_the_board():
    rules = make_rules("theailearner")
    for seed in range(10):
        game = SnakeGame(rules, seed)
        while not game.step(1):
            pass
        # 40 moves reach x = 50, off the board; the check ends the game there
        assert game.death == "wall" and game.steps == 40 and game.head == (50, 10)
        assert game.score == len(game.body)


def test_theailearner_turn_into_body_is_not_checked_but_ahead_is():
    rules = make_rules("theailearner")
    body = [(10, 10), (9, 10), (9, 11), (10, 11), (11, 11), (12, 11)]
    game = SnakeGame(rules, 0)
    game.body, game.heading, game.apple = list(body), (1, 0), (40, 40)
    assert not game.step(2)  # right: south onto (10, 11), a body cell: legal here
    assert game.head == (10, 11) and not game.done
    classic = SnakeGame(make_rules("classic", 20), 0)
    classic.body, classic.heading, classic.apple = list(body), (1, 0), (19, 19)
    assert classic.step(2) and classic.death == "body"
    # a move that leaves a body cell straight ahead ends the game, whatever comes next
    body = [(10, 10), (9, 10), (9, 11), (10, 11), (11, 11), (12, 11), (12, 10), (12, 9)]
    game = SnakeGame(rules, 0)
    game.body, game.heading, game.apple = list(body), (1, 0), (40, 40)
    assert game.step(1) and game.death == "body" and game.head == (11, 10) and game.steps == 1
    classic = SnakeGame(make_rules("classic", 20), 0)
    classic.body, classic.heading, classic.apple = list(body), (1, 0), (19, 19)
    assert not classic.step(1)


def test_theailearner_circling_hits_the_step_limit():
    rules = make_rules("theailearner")
    game = SnakeGame(rules, 1)
    while not game.step(2):
        pass
    assert game.death == "step_limit" and game.steps == 2000


# -- the heuristic on the reference ---------------------------------------------------


def test_heuristic_eats_on_the_reference():
    for name in ("classic", "theailearner"):
        rules = make_rules(name)
        scores = []
        for seed in range(20):
            game = SnakeGame(rules, seed)
            while not game.done:
                game.step(heuristic_action(game.body, game.apple, game.heading, rules.width, rules.height))
            scores.append(game.apples)
        assert sum(scores) / len(scores) > 8


def test_heuristic_action_rules():
    # apple to the right (south of an east-heading head): turn right
    assert heuristic_action([(5, 5), (4, 5), (3, 5)], (5, 8), (1, 0), 10, 10) == 2
    assert heuristic_action([(5, 5), (4, 5), (3, 5)], (5, 1), (1, 0), 10, 10) == 0
    assert heuristic_action([(5, 5), (4, 5), (3, 5)], (8, 5), (1, 0), 10, 10) == 1
    assert heuristic_action([(9, 5), (8, 5), (7, 5)], (9, 4), (1, 0), 10, 10) == 0
    # straight wanted, front (the tail: it counts) and left blocked: right
    assert heuristic_action([(5, 5), (4, 5), (4, 4), (5, 4), (6, 4), (6, 5)], (8, 5), (1, 0), 10, 10) == 2
    # left wanted and blocked, front and right free: right
    assert heuristic_action([(5, 5), (4, 5), (4, 4), (5, 4)], (5, 1), (1, 0), 10, 10) == 2
    # right wanted and blocked, left and front free: left
    assert heuristic_action([(5, 5), (4, 5), (4, 6), (5, 6)], (5, 8), (1, 0), 10, 10) == 0
    # straight wanted, front blocked by the wall, left free, right free: right
    assert heuristic_action([(9, 5), (8, 5), (7, 5)], (9, 5), (1, 0), 10, 10) == 2
    # an apple straight behind: atan2(+0.0, -1) = +pi heading east -> right,
    # atan2(-0.0, -1) = -pi heading west -> left (the blog's float arithmetic)
    assert heuristic_action([(5, 5), (4, 5), (3, 5)], (1, 5), (1, 0), 10, 10) == 2
    assert heuristic_action([(5, 5), (6, 5), (7, 5)], (8, 5), (-1, 0), 10, 10) == 0
