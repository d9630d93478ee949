"""The reference snake game: one game, plain Python, written to be read.

This is the executable statement of the two rule sets of ``docs/snake.md`` (from
``/work/shared/docs/snake-benchmark.md``). The batched engine (:mod:`.engine`) must play
exactly the same games: the same moves, apples, deaths, scores and step counts for the
same seed and actions; the tests compare them step by step.

Conventions shared with the engine:

* Cells are ``(x, y)``; x grows east, y grows south. Outside the board is wall.
* Actions are relative to the heading: 0 = turn left, 1 = straight, 2 = turn right.
  With heading ``(dx, dy)``, left is ``(dy, -dx)`` and right is ``(-dy, dx)``.
* ``steps`` counts the actions the game has taken, the last (fatal) one included.
* A fatal move under ``classic`` turns the heading but leaves the body where it was.
* Apples come from the game's own SplitMix64 stream (:mod:`.rng`) seeded with the game
  seed; the initial apple is drawn at reset, the same way as every later one.
* ``theailearner`` checks "before each move" whether the head is off the board or the cell
  straight ahead is a body cell, whatever the action. That check depends only on the state
  a move leaves behind, so this implementation runs it right after each move (and at
  reset) and ends the game there: the score is the same, and no action is asked for a
  game that is already lost. When the step limit is reached on that same move, the step
  limit is the reason (the blog's loop ended before its check ran).
"""

from __future__ import annotations

from dataclasses import dataclass

from .rng import SplitMix64
from .rules import Cell, Rules

#: ``death`` values, in the order of the engine's death codes 1..5 (0: still playing).
DEATHS = ("wall", "body", "starved", "won", "step_limit")

ACTIONS = ("left", "straight", "right")


def turn(heading: Cell, action: int) -> Cell:
    """The heading after a relative action (0 left, 1 straight, 2 right)."""
    dx, dy = heading
    if action == 0:
        return (dy, -dx)
    if action == 1:
        return (dx, dy)
    if action == 2:
        return (-dy, dx)
    raise ValueError(f"a snake action is 0 (left), 1 (straight) or 2 (right), got {action!r}")


@dataclass(frozen=True)
class SnakeState:
    """An immutable picture of one game, for renderers and comparisons."""

    body: tuple[Cell, ...]
    apple: Cell | None
    heading: Cell
    width: int
    height: int
    score: int
    steps: int
    done: bool
    won: bool = False
    death: str | None = None


class SnakeGame:
    """One snake game under ``rules``, its apples drawn from ``seed`` (a uint64).

    Attributes:
        body: list of cells, head first.
        apple: the apple's cell, ``None`` once the game is won.
        heading: the last move's direction as a unit step ``(dx, dy)``.
        score: classic: apples eaten; theailearner: the snake's length (3 + apples).
        apples: apples eaten.
        steps: actions taken so far.
        steps_since_apple: steps since the last apple (or since the start).
        done, won: whether the game is over / was won.
        death: ``None`` while playing, else one of :data:`DEATHS`.
    """

    def __init__(self, rules: Rules, seed: int):
        self.rules = rules
        self.rng = SplitMix64(seed)
        self.body: list[Cell] = list(rules.start_body)
        self.heading: Cell = rules.start_heading
        self.apples = 0
        self.score = rules.score_offset
        self.steps = 0
        self.steps_since_apple = 0
        self.done = False
        self.won = False
        self.death: str | None = None
        self.apple: Cell | None = self._new_apple()
        if not rules.classic:
            self._check_ahead()

    # -- the rules ---------------------------------------------------------------------

    def on_board(self, cell: Cell) -> bool:
        x, y = cell
        return 0 <= x < self.rules.width and 0 <= y < self.rules.height

    def _new_apple(self) -> Cell:
        """Draw the next apple's cell from the game's RNG."""
        w, h = self.rules.width, self.rules.height
        if self.rules.classic:
            # uniform on the free cells: the k-th free cell in row-major order (y*W + x)
            occupied = set(self.body)
            free = [(x, y) for y in range(h) for x in range(w) if (x, y) not in occupied]
            return free[self.rng.randbelow(len(free))]
        # theailearner: x and y each uniform in 1..W-1 / 1..H-1, possibly on the body
        x = 1 + self.rng.randbelow(w - 1)
        y = 1 + self.rng.randbelow(h - 1)
        return (x, y)

    def _end(self, death: str) -> None:
        self.done = True
        self.death = death
        self.won = death == "won"

    def step(self, action: int) -> bool:
        """Play one action (0 left, 1 straight, 2 right); return whether the game is over.

        A finished game ignores further actions.
        """
        if self.done:
            return True
        self.heading = turn(self.heading, int(action))
        self.steps += 1
        if self.rules.classic:
            self._step_classic()
        else:
            self._step_theailearner()
        return self.done

    def _step_classic(self) -> None:
        (x, y), (dx, dy) = self.body[0], self.heading
        new_head = (x + dx, y + dy)
        if not self.on_board(new_head):
            self._end("wall")
            return
        eats = new_head == self.apple
        # the cell the tail leaves in this step is free, unless the snake eats
        blocking = self.body if eats else self.body[:-1]
        if new_head in blocking:
            self._end("body")
            return
        self.body.insert(0, new_head)
        if eats:
            self.apples += 1
            self.score += 1
            self.steps_since_apple = 0
            if len(self.body) == self.rules.n_cells:  # no free cell left
                self.apple = None
                self._end("won")
                return
            self.apple = self._new_apple()
        else:
            self.body.pop()
            self.steps_since_apple += 1
            starve = self.rules.starvation_steps
            if starve is not None and self.steps_since_apple >= starve:
                self._end("starved")
                return
        if self.rules.max_steps is not None and self.steps >= self.rules.max_steps:
            self._end("step_limit")

    def _step_theailearner(self) -> None:
        (x, y), (dx, dy) = self.body[0], self.heading
        new_head = (x + dx, y + dy)  # a turn into the body is not checked
        self.body.insert(0, new_head)
        if new_head == self.apple:
            self.apples += 1
            self.score += 1
            self.steps_since_apple = 0
            self.apple = self._new_apple()
        else:
            self.body.pop()
            self.steps_since_apple += 1
        if self.rules.max_steps is not None and self.steps >= self.rules.max_steps:
            self._end("step_limit")
            return
        self._check_ahead()

    def _check_ahead(self) -> None:
        """theailearner's check before a move: head off the board, or body straight ahead."""
        head = self.body[0]
        if not self.on_board(head):
            self._end("wall")
            return
        ahead = (head[0] + self.heading[0], head[1] + self.heading[1])
        if ahead in self.body:
            self._end("body")

    # -- views -------------------------------------------------------------------------

    @property
    def head(self) -> Cell:
        return self.body[0]

    def snapshot(self) -> SnakeState:
        """The current state as an immutable :class:`SnakeState`."""
        return SnakeState(
            body=tuple(self.body),
            apple=self.apple,
            heading=self.heading,
            width=self.rules.width,
            height=self.rules.height,
            score=self.score,
            steps=self.steps,
            done=self.done,
            won=self.won,
            death=self.death,
        )
