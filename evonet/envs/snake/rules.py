"""The two snake rule sets of the benchmark (``/work/shared/docs/snake-benchmark.md``).

``classic`` (the main one)
    W x H board (default 10 x 10, each side >= 5); start length 3 with the head at
    (W//2, H//2), the body to its west, heading east. A move dies on a wall or on a body
    cell; the cell the tail leaves in the same step is free unless the snake eats. Eating
    grows the snake by one and places the next apple uniformly on a free cell; with no
    free cell left the game is won (score W*H - 3). W*H consecutive steps without eating
    starve the snake. Score: apples eaten.

``theailearner`` (only to compare with the seed blog)
    50 x 50 board by default (each side >= 11), start body [(10,10), (9,10), (8,10)] heading
    east. Apples: x and y each uniform in 1..W-1 / 1..H-1, possibly on the body. Before each
    move the game ends if the head is off the board or the cell straight ahead in the
    current heading is a body cell; a turn into the body is not checked. At most 2000 steps,
    no starvation. Score: the snake's length (initial 3 included).

How each rule becomes code, step by step, is written out in :mod:`.reference`.
"""

from __future__ import annotations

from dataclasses import dataclass

RULE_SETS = ("classic", "theailearner")

#: the engine stores cells of the board plus a one-cell wall border as uint16
MAX_PADDED_CELLS = 65535

Cell = tuple[int, int]


@dataclass(frozen=True)
class Rules:
    """One rule set on one board. Build it with :func:`make_rules`.

    Attributes:
        name: ``"classic"`` or ``"theailearner"``; selects the collision, apple and
            score semantics (see the module docstring).
        width, height: board size in cells; x grows east, y grows south.
        start_body: the initial body, head first.
        start_heading: the initial heading as a unit step ``(dx, dy)``.
        max_steps: the game ends after this many steps (``None``: no limit).
        starvation_steps: the game ends after this many consecutive steps without eating
            (``None``: never).
    """

    name: str
    width: int
    height: int
    start_body: tuple[Cell, ...]
    start_heading: Cell
    max_steps: int | None
    starvation_steps: int | None

    def __post_init__(self):
        if self.name not in RULE_SETS:
            raise ValueError(f"unknown snake rule set {self.name!r}; choose from {', '.join(RULE_SETS)}")
        object.__setattr__(self, "start_body", tuple((int(x), int(y)) for x, y in self.start_body))
        object.__setattr__(self, "start_heading", (int(self.start_heading[0]), int(self.start_heading[1])))
        body, (dx, dy) = self.start_body, self.start_heading
        if len(body) < 2:
            raise ValueError("the start body needs at least 2 cells")
        if abs(dx) + abs(dy) != 1:
            raise ValueError(f"the start heading must be a unit step, got {self.start_heading}")
        for x, y in body:
            if not (0 <= x < self.width and 0 <= y < self.height):
                raise ValueError(f"start body cell {(x, y)} lies off the {self.board} board")
        if len(set(body)) != len(body):
            raise ValueError("the start body must not overlap itself")
        for (x0, y0), (x1, y1) in zip(body[:-1], body[1:], strict=True):
            if abs(x0 - x1) + abs(y0 - y1) != 1:
                raise ValueError("consecutive start body cells must be neighbours")
        if (body[0][0] - body[1][0], body[0][1] - body[1][1]) != self.start_heading:
            raise ValueError("the start heading must point from the neck to the head")
        if len(body) >= self.width * self.height:
            raise ValueError("the start body fills the board")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.starvation_steps is not None and self.starvation_steps < 1:
            raise ValueError(f"starvation_steps must be >= 1 or None, got {self.starvation_steps}")
        if (self.width + 2) * (self.height + 2) > MAX_PADDED_CELLS:
            raise ValueError(f"the board is too large ({self.board}); (W+2)*(H+2) must be <= {MAX_PADDED_CELLS}")
        if self.name == "theailearner" and (self.max_steps is None or self.max_steps > 30000):
            # apples may land on the body, so only the step limit bounds the length (and the
            # engine's per-cell segment counts, 15 bits)
            raise ValueError("theailearner rules need a step limit of at most 30000")

    @property
    def board(self) -> str:
        """``"WxH"``."""
        return f"{self.width}x{self.height}"

    @property
    def classic(self) -> bool:
        return self.name == "classic"

    @property
    def n_cells(self) -> int:
        return self.width * self.height

    @property
    def start_length(self) -> int:
        return len(self.start_body)

    @property
    def score_offset(self) -> int:
        """What the score counts beyond apples eaten: 0 (classic) or the start length."""
        return 0 if self.classic else self.start_length

    @property
    def max_score(self) -> int | None:
        """The score of a won game (classic), ``None`` where a game cannot be won."""
        return self.n_cells - self.start_length if self.classic else None

    def describe(self) -> str:
        """E.g. ``"classic 10x10"``: how every printed snake score names its rule set."""
        return f"{self.name} {self.board}"

    def to_dict(self) -> dict:
        return {"name": self.name, "width": self.width, "height": self.height}


def make_rules(name: str, width: int | None = None, height: int | None = None) -> Rules:
    """The rule set ``name`` on a ``width`` x ``height`` board.

    ``classic``: default 10 x 10, each side >= 5, starvation after W*H steps, no step limit.
    ``theailearner``: default 50 x 50, each side >= 11 (the fixed start body sits at x, y =
    8..10), 2000 steps at most, no starvation. A single size given makes a square board.
    """
    if name not in RULE_SETS:
        raise ValueError(f"unknown snake rule set {name!r}; choose from {', '.join(RULE_SETS)}")
    default = 10 if name == "classic" else 50
    if width is None and height is None:
        width = height = default
    elif width is None:
        width = height
    elif height is None:
        height = width
    width, height = int(width), int(height)
    if name == "classic":
        if width < 5 or height < 5:
            raise ValueError(f"the classic board needs at least 5 cells a side, got {width}x{height}")
        hx, hy = width // 2, height // 2
        return Rules("classic", width, height, ((hx, hy), (hx - 1, hy), (hx - 2, hy)), (1, 0),
                     max_steps=None, starvation_steps=width * height)
    if width < 11 or height < 11:
        raise ValueError(f"the theailearner board needs at least 11 cells a side, got {width}x{height}")
    return Rules("theailearner", width, height, ((10, 10), (9, 10), (8, 10)), (1, 0),
                 max_steps=2000, starvation_steps=None)
