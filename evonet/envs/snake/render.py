"""Drawing the snake game with pygame, and :func:`play` to watch an agent play one game.

pygame is imported lazily, inside the functions that need it, so that importing this
module (and the rest of evonet) works on machines without pygame or without a screen.

* :class:`SnakeRenderer` draws a board state onto an off-screen surface (``headless=True``)
  or into a window (``headless=False``): the grid, the snake with a distinct head and a
  body gradient from neck to tail, the apple, and a status bar (score, steps, length, the
  rule set and board, a free label such as the agent and seed, and "WON" / "DEAD: ..."
  once the game is over).
* :func:`play` plays one game of the reference :class:`~evonet.envs.snake.reference.SnakeGame`
  with an agent and shows it in a window and/or writes one PNG per frame and/or an
  animated GIF.

Frame ``k`` always shows the state after ``k`` steps: a game of ``n`` steps has ``n + 1``
frames (frame 0 is the start position).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from evonet.core.errors import DependencyNotInstalled, EvonetError

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from evonet.envs.snake.rules import Rules

Cell = tuple[int, int]
Colour = tuple[int, int, int]

#: ``agent_act(body, apple, heading, width, height) -> action`` (0 left, 1 straight, 2 right).
AgentAct = Callable[[Sequence[Cell], "Cell | None", Cell, int, int], int]

# ---------------------------------------------------------------------------------------
# Look
# ---------------------------------------------------------------------------------------

BACKGROUND: Colour = (17, 19, 26)  # canvas and status bar
BOARD: Colour = (29, 32, 42)  # empty cell
GRID: Colour = (40, 44, 57)  # grid lines
FRAME: Colour = (74, 80, 99)  # line around the board
TEXT: Colour = (236, 239, 244)
TEXT_DIM: Colour = (146, 153, 170)
HEAD: Colour = (255, 202, 58)  # amber
BODY_NEAR: Colour = (84, 222, 132)  # the segment behind the head
BODY_FAR: Colour = (22, 107, 80)  # the tail end
EYE: Colour = (20, 22, 30)
APPLE: Colour = (236, 64, 98)
APPLE_SHINE: Colour = (255, 168, 186)
STEM: Colour = (132, 94, 52)
WON: Colour = (84, 222, 132)
DEAD: Colour = (236, 64, 98)
PAUSED: Colour = (110, 170, 255)

#: The body gradient has this many shades, so that every frame uses a fixed set of colours
#: (which lets GIF frames share one exact palette).
BODY_SHADES = 32

_MIN_CANVAS_WIDTH = 400
_TARGET_BOARD_PIXELS = 640


#: What the status bar says when a game ends, by ``death`` (see ``reference.DEATHS``).
_END_BANNERS = {"wall": "DEAD: wall", "body": "DEAD: body", "starved": "STARVED", "step_limit": "STEP LIMIT"}
#: Ends that count as a death (the head gets a red rim).
_FATAL = frozenset({"wall", "body", "starved"})


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


BODY_RAMP: tuple[Colour, ...] = tuple(
    _mix(BODY_NEAR, BODY_FAR, i / (BODY_SHADES - 1)) for i in range(BODY_SHADES)
)


def body_colour(index: int, length: int) -> Colour:
    """The colour of body segment ``index`` (1 = behind the head) of a snake of ``length``."""
    if length <= 2:
        return BODY_RAMP[0]
    t = (index - 1) / (length - 2)
    return BODY_RAMP[round(min(max(t, 0.0), 1.0) * (BODY_SHADES - 1))]


def default_cell(width: int, height: int) -> int:
    """The cell size in pixels used when none is given: about 640 px for the board, 8..40."""
    return max(8, min(40, _TARGET_BOARD_PIXELS // max(width, height, 1)))


# ---------------------------------------------------------------------------------------
# pygame, imported lazily
# ---------------------------------------------------------------------------------------

_dummy_drivers_set_by_us: set[str] = set()


def _use_dummy_drivers() -> None:
    """Make SDL work without a screen or sound card, unless the user chose drivers."""
    for var in ("SDL_VIDEODRIVER", "SDL_AUDIODRIVER"):
        if var not in os.environ:
            os.environ[var] = "dummy"
            _dummy_drivers_set_by_us.add(var)


def _undo_dummy_video_driver() -> None:
    """Before opening a real window, drop the dummy video driver if *we* set it."""
    if "SDL_VIDEODRIVER" in _dummy_drivers_set_by_us:
        if os.environ.get("SDL_VIDEODRIVER") == "dummy":
            del os.environ["SDL_VIDEODRIVER"]
        _dummy_drivers_set_by_us.discard("SDL_VIDEODRIVER")


def _import_pygame(headless: bool) -> ModuleType:
    """Import pygame (quietly); raise DependencyNotInstalled with an install hint."""
    if headless:
        _use_dummy_drivers()
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as exc:
        raise DependencyNotInstalled(
            "pygame is needed to draw the snake game: pip install 'pygame>=2.5'"
        ) from exc
    if not pygame.font.get_init():
        pygame.font.init()
    return pygame


def _import_pil() -> ModuleType:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is a declared dependency
        raise DependencyNotInstalled(
            "Pillow is needed to write GIFs: pip install 'pillow>=10'"
        ) from exc
    return Image


# ---------------------------------------------------------------------------------------
# Renderer
# ---------------------------------------------------------------------------------------


_NO_SCREEN_HINT = "draw without a window instead (evonet watch --gif FILE or --frames DIR)"


def _open_window(pg: ModuleType, size: tuple[int, int], caption: str) -> Any:
    """Open the pygame window; EvonetError (one line) if there is no screen for it."""
    _undo_dummy_video_driver()
    try:
        pg.display.init()
        window = pg.display.set_mode(size)
    except pg.error as exc:
        raise EvonetError(f"cannot open a window ({exc}); {_NO_SCREEN_HINT}") from exc
    driver = pg.display.get_driver()
    if driver in ("offscreen", "dummy") and "SDL_VIDEODRIVER" not in os.environ:
        # SDL fell back to an invisible window by itself: nobody would see the game
        pg.display.quit()
        raise EvonetError(f"no screen to open a window on (SDL video driver {driver!r}); {_NO_SCREEN_HINT}")
    pg.display.set_caption(caption)
    return window


class SnakeState(Protocol):
    """What the renderer reads from a state (``SnakeGame.snapshot()`` has all of it).

    ``done``, ``won`` and ``death`` are read with ``getattr`` and may be missing.
    """

    body: Sequence[Cell]
    apple: Cell | None
    heading: Cell
    width: int
    height: int
    score: int
    steps: int


class SnakeRenderer:
    """Draws snake states with pygame, off-screen or in a window.

    Args:
        width, height: the board in cells.
        cell: the size of a cell in pixels; by default :func:`default_cell` (40 px on
            10 x 10, 32 px on 20 x 20, 12 px on 50 x 50).
        headless: draw off-screen only (no display needed; SDL's dummy drivers are set
            unless the user chose drivers). With ``False`` a window opens and every
            :meth:`draw` shows the frame in it; the caller pumps the window's events.
        ruleset: the rule set's name, shown in the status bar (with the board size).
        caption: the window title.

    The canvas is the status bar on top of the board; it is at least 400 px wide (a
    narrower board is centred). :meth:`cell_center` gives the pixel at a cell's centre,
    which always has the colour of what is in the cell (:data:`HEAD`, :data:`APPLE`,
    :func:`body_colour` or :data:`BOARD`).
    """

    def __init__(
        self,
        width: int,
        height: int,
        cell: int | None = None,
        *,
        headless: bool = True,
        ruleset: str = "",
        caption: str = "evonet snake",
    ) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"board must be at least 1 x 1, got {width} x {height}")
        self.width = int(width)
        self.height = int(height)
        self.cell = int(cell) if cell is not None else default_cell(width, height)
        if self.cell < 2:
            raise ValueError(f"cell must be at least 2 pixels, got {self.cell}")
        self.headless = bool(headless)
        self.ruleset = ruleset

        pg = _import_pygame(self.headless)
        self._pg = pg
        self._font_big = pg.font.Font(None, 26)  # pygame's bundled font: same look everywhere
        self._font_big.set_bold(True)
        self._font = pg.font.Font(None, 22)
        pad = 8
        self._pad = pad
        line_big = self._font_big.get_linesize()
        line = self._font.get_linesize()
        self._bar_height = pad + line_big + 4 + line + pad
        self._line2_y = pad + line_big + 4

        board_w = self.width * self.cell
        board_h = self.height * self.cell
        self.size: tuple[int, int] = (max(board_w + 2, _MIN_CANVAS_WIDTH), self._bar_height + board_h + 1)
        self._x0 = (self.size[0] - board_w) // 2
        self._y0 = self._bar_height

        self._surface = pg.Surface(self.size)
        self._window: Any = None
        if not self.headless:
            self._window = _open_window(pg, self.size, caption)
        self._board_bg = self._make_board_background()
        self._clock: Any = None
        self._closed = False

    # -- geometry -------------------------------------------------------------------------

    def cell_rect(self, x: int, y: int) -> tuple[int, int, int, int]:
        """The pixel rectangle ``(left, top, w, h)`` of cell ``(x, y)``."""
        return (self._x0 + x * self.cell, self._y0 + y * self.cell, self.cell, self.cell)

    def cell_center(self, x: int, y: int) -> tuple[int, int]:
        """The pixel ``(px, py)`` at the centre of cell ``(x, y)`` (index ``[py, px]``)."""
        return (self._x0 + x * self.cell + self.cell // 2, self._y0 + y * self.cell + self.cell // 2)

    def _inside(self, c: Cell) -> bool:
        return 0 <= c[0] < self.width and 0 <= c[1] < self.height

    # -- drawing --------------------------------------------------------------------------

    def _make_board_background(self) -> Any:
        pg = self._pg
        bg = pg.Surface((self.width * self.cell + 2, self.height * self.cell + 2))
        bg.fill(FRAME)
        inner = pg.Rect(1, 1, self.width * self.cell, self.height * self.cell)
        bg.fill(BOARD, inner)
        if self.cell >= 6:
            for i in range(1, self.width):
                x = 1 + i * self.cell
                pg.draw.line(bg, GRID, (x, 1), (x, self.height * self.cell))
            for j in range(1, self.height):
                y = 1 + j * self.cell
                pg.draw.line(bg, GRID, (1, y), (self.width * self.cell, y))
        return bg

    def draw(self, state: SnakeState, label: str = "", *, banner: str | None = None) -> None:
        """Draw ``state``; in a window, show it too.

        Args:
            state: anything with body, apple, heading, width, height, score, steps
                (and optionally done, won, death).
            label: free text for the status bar, e.g. the agent and the seed.
            banner: a short word shown at the right of the status bar (e.g. "PAUSED");
                by default "WON" or "DEAD: <cause>" once the game is over.
        """
        if self._closed:
            raise RuntimeError("the renderer is closed")
        if (int(state.width), int(state.height)) != (self.width, self.height):
            raise ValueError(
                f"state board {state.width} x {state.height} != renderer board {self.width} x {self.height}"
            )
        surf = self._surface
        surf.fill(BACKGROUND)
        surf.blit(self._board_bg, (self._x0 - 1, self._y0 - 1))
        body = [(int(x), int(y)) for x, y in state.body]
        self._draw_body(body)
        if state.apple is not None:
            self._draw_apple((int(state.apple[0]), int(state.apple[1])))
        if body:
            heading = (int(state.heading[0]), int(state.heading[1]))
            dead = bool(getattr(state, "done", False)) and getattr(state, "death", None) in _FATAL
            self._draw_head(body[0], heading, dead)
        self._draw_status(state, len(body), label, banner)
        if self._window is not None:
            self._window.blit(surf, (0, 0))
            self._pg.display.flip()

    def _draw_body(self, body: list[Cell]) -> None:
        pg = self._pg
        c = self.cell
        inset = max(1, c // 10)
        radius = max(0, c // 5)
        n = len(body)
        surf = self._surface
        # tail first, so segments nearer the head are drawn on top
        for i in range(n - 1, 0, -1):
            seg = body[i]
            if not self._inside(seg):
                continue
            colour = body_colour(i, n)
            left, top, _, _ = self.cell_rect(*seg)
            pg.draw.rect(surf, colour, (left + inset, top + inset, c - 2 * inset, c - 2 * inset), border_radius=radius)
            # join it to the next segment (towards the head): a bar from centre to centre
            nxt = body[i - 1]
            dx, dy = nxt[0] - seg[0], nxt[1] - seg[1]
            if abs(dx) + abs(dy) == 1 and self._inside(nxt):
                if dx:
                    x = left + c // 2 if dx > 0 else left - c // 2
                    pg.draw.rect(surf, colour, (x, top + inset, c, c - 2 * inset))
                else:
                    y = top + c // 2 if dy > 0 else top - c // 2
                    pg.draw.rect(surf, colour, (left + inset, y, c - 2 * inset, c))

    def _draw_head(self, head: Cell, heading: Cell, dead: bool) -> None:
        if not self._inside(head):
            return
        pg = self._pg
        c = self.cell
        inset = max(1, c // 10)
        left, top, _, _ = self.cell_rect(*head)
        rect = pg.Rect(left + inset, top + inset, c - 2 * inset, c - 2 * inset)
        pg.draw.rect(self._surface, HEAD, rect, border_radius=max(0, c // 4))
        if dead:
            pg.draw.rect(self._surface, DEAD, rect, width=max(1, c // 12), border_radius=max(0, c // 4))
        if c >= 10:
            cx, cy = self.cell_center(*head)
            hx, hy = heading
            px, py = -hy, hx  # perpendicular
            fwd, side, r = 0.16 * c, 0.2 * c, max(1, round(0.08 * c))
            for s in (-1, 1):
                ex = round(cx + hx * fwd + px * side * s)
                ey = round(cy + hy * fwd + py * side * s)
                pg.draw.circle(self._surface, EYE, (ex, ey), r)

    def _draw_apple(self, apple: Cell) -> None:
        if not self._inside(apple):
            return
        pg = self._pg
        c = self.cell
        left, top, _, _ = self.cell_rect(*apple)
        if c < 8:
            inset = max(0, c // 6)
            pg.draw.rect(self._surface, APPLE, (left + inset, top + inset, c - 2 * inset, c - 2 * inset))
            return
        cx, cy = self.cell_center(*apple)
        r = max(2, round(0.36 * c))
        pg.draw.circle(self._surface, APPLE, (cx, cy + max(1, c // 20)), r)
        pg.draw.circle(self._surface, APPLE, (cx, cy), r)
        stem_w = max(1, c // 14)
        pg.draw.rect(self._surface, STEM, (cx - stem_w // 2, top + max(1, c // 14), stem_w, max(2, c // 6)))
        shine_r = max(1, round(0.08 * c))
        pg.draw.circle(self._surface, APPLE_SHINE, (round(cx - 0.17 * c), round(cy - 0.12 * c)), shine_r)

    def _draw_status(self, state: SnakeState, length: int, label: str, banner: str | None) -> None:
        surf = self._surface
        pad = self._pad
        right_edge = self.size[0] - pad

        # right: the banner (game over, paused, ...)
        banner_colour = PAUSED
        if banner is None and bool(getattr(state, "done", False)):
            if bool(getattr(state, "won", False)):
                banner, banner_colour = "WON", WON
            else:
                death = getattr(state, "death", None)
                banner = _END_BANNERS.get(death, f"OVER: {death}" if death else "GAME OVER")
                banner_colour = DEAD if death in _FATAL else PAUSED
        banner_w = 0
        if banner:
            img = self._font_big.render(banner, True, banner_colour, BACKGROUND)
            banner_w = img.get_width() + 12
            surf.blit(img, (right_edge - img.get_width(), pad))

        # line 1: score, steps, length
        x = pad
        for name, value in (("Score", state.score), ("Steps", state.steps), ("Length", length)):
            key = self._font.render(f"{name} ", True, TEXT_DIM, BACKGROUND)
            val = self._font_big.render(f"{int(value)}", True, TEXT, BACKGROUND)
            if x + key.get_width() + val.get_width() > right_edge - banner_w:
                break
            baseline = pad + self._font_big.get_ascent()
            surf.blit(key, (x, baseline - self._font.get_ascent()))
            x += key.get_width()
            surf.blit(val, (x, pad))
            x += val.get_width() + 16

        # line 2: rule set, board, label
        parts = [p for p in (f"{self.ruleset} {self.width}x{self.height}".strip(), label) if p]
        self._blit_fitting("   |   ".join(parts), (pad, self._line2_y), right_edge - pad)

    def _blit_fitting(self, text: str, pos: tuple[int, int], max_width: int) -> None:
        """Blit ``text`` in the small dim font, cut with an ellipsis to ``max_width`` pixels."""
        font = self._font
        if font.size(text)[0] > max_width:
            while text and font.size(text + "...")[0] > max_width:
                text = text[:-1]
            text += "..."
        self._surface.blit(font.render(text, True, TEXT_DIM, BACKGROUND), pos)

    # -- window -----------------------------------------------------------------------------

    def events(self) -> list[Any]:
        """The window's pending pygame events (which keeps it responsive); ``[]`` headless."""
        if self._window is None:
            return []
        return list(self._pg.event.get())

    def tick(self, fps: float) -> float:
        """Wait so that calls come at most ``fps`` times a second; seconds since the last call."""
        if self._clock is None:
            self._clock = self._pg.time.Clock()
        return float(self._clock.tick(fps)) / 1000.0

    # -- output ---------------------------------------------------------------------------

    def to_array(self) -> np.ndarray:
        """The last drawn frame as an ``(H, W, 3)`` uint8 RGB array (a copy)."""
        data = self._pg.image.tobytes(self._surface, "RGB")
        return np.frombuffer(data, dtype=np.uint8).reshape(self.size[1], self.size[0], 3).copy()

    def save_png(self, path: str | os.PathLike[str]) -> None:
        """Write the last drawn frame to ``path`` as PNG."""
        self._pg.image.save(self._surface, os.fspath(path))

    def close(self) -> None:
        """Close the window, if any. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._window is not None:
            self._window = None
            self._pg.display.quit()


# ---------------------------------------------------------------------------------------
# GIF
# ---------------------------------------------------------------------------------------

#: At most this many frames go into a GIF; longer games are thinned evenly (every 2nd,
#: 4th, ... frame kept) and so play faster. The last frame is always kept.
GIF_MAX_FRAMES = 600
#: How long the last GIF frame stays up before the animation loops, in ms.
GIF_HOLD_LAST_MS = 2000


def _gif_palette() -> list[Colour]:
    """One fixed palette for every frame: the drawing colours plus text anti-aliasing ramps."""
    colours: list[Colour] = [BACKGROUND, BOARD, GRID, FRAME, HEAD, EYE, APPLE, APPLE_SHINE, STEM]
    colours += list(BODY_RAMP)
    for fg in (TEXT, TEXT_DIM, WON, DEAD, PAUSED):
        colours += [_mix(BACKGROUND, fg, i / 15) for i in range(1, 16)]
    return list(dict.fromkeys(colours))[:256]


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


class _GifRecorder:
    """Keeps at most ``cap`` frames, evenly spaced, as palette images.

    Every frame is mapped onto one fixed palette (:func:`_gif_palette`): the drawing
    colours exactly, anything else (anti-aliased text) to the nearest palette colour.
    """

    def __init__(self, cap: int) -> None:
        self._pil = _import_pil()
        self._cap = max(2, int(cap))
        self._stride = 1
        self._seen = 0
        self._frames: list[PILImage.Image] = []
        self._last_kept = False
        colours = _gif_palette()
        self._palette_rgb = np.array(colours, dtype=np.int32)
        self._flat_palette = [v for c in colours for v in c]
        # a perfect hash of the palette colours: slot = packed colour % modulus
        keys = _pack(self._palette_rgb)
        modulus = len(keys)
        while len(np.unique(keys % modulus)) < len(keys):
            modulus += 1
        self._modulus = np.uint32(modulus)
        self._slot_key = np.full(modulus, 2**32 - 1, dtype=np.uint32)  # no colour packs to this
        self._slot_key[keys % modulus] = keys
        self._slot_index = np.zeros(modulus, dtype=np.uint8)
        self._slot_index[keys % modulus] = np.arange(len(keys), dtype=np.uint8)

    def _quantize(self, rgb: np.ndarray) -> PILImage.Image:
        packed = _pack(rgb)
        slot = packed % self._modulus
        index = self._slot_index[slot]
        miss = self._slot_key[slot] != packed
        if miss.any():
            colours, inverse = np.unique(packed[miss], return_inverse=True)
            unpacked = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=-1)
            dist = ((unpacked[:, None, :].astype(np.int32) - self._palette_rgb[None, :, :]) ** 2).sum(-1)
            index[miss] = dist.argmin(axis=1).astype(np.uint8)[inverse.reshape(-1)]
        img = self._pil.fromarray(index)  # mode "L"; putpalette makes it "P"
        img.putpalette(self._flat_palette)
        return img

    def add(self, frame: Callable[[], np.ndarray]) -> None:
        """Offer the next frame; ``frame()`` (the RGB array) is called only if it is kept."""
        index = self._seen
        self._seen += 1
        if index % self._stride == 0:
            self._frames.append(self._quantize(frame()))
            self._last_kept = True
            if len(self._frames) >= self._cap:  # keep room for a last frame
                self._frames = self._frames[::2]
                self._stride *= 2
        else:
            self._last_kept = False

    def finish(self, final: np.ndarray) -> None:
        """Make sure the final frame (the RGB array ``final``) ends the GIF."""
        if self._seen and not self._last_kept:
            self._frames.append(self._quantize(final))
            self._last_kept = True

    def frames(self) -> list[PILImage.Image]:
        return list(self._frames)

    def save(self, path: Path, fps: float) -> int:
        frames = self.frames()
        if not frames:
            return 0
        step_ms = max(20, 10 * round(100 / fps))  # GIF delays are in 1/100 s; < 20 ms is not honoured
        durations = [step_ms] * len(frames)
        durations[-1] = max(step_ms, GIF_HOLD_LAST_MS)
        path.parent.mkdir(parents=True, exist_ok=True)
        frames[0].save(
            path,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=durations if len(frames) > 1 else durations[0],
            loop=0,
        )
        return len(frames)


# ---------------------------------------------------------------------------------------
# play
# ---------------------------------------------------------------------------------------


@dataclass
class _Controls:
    stop: bool = False
    paused: bool = False
    single_step: bool = False


def _handle_events(pg: ModuleType, events: list[Any], controls: _Controls) -> None:
    for event in events:
        if event.type == pg.QUIT:
            controls.stop = True
        elif event.type == pg.KEYDOWN:
            if event.key in (pg.K_ESCAPE, pg.K_q):
                controls.stop = True
            elif event.key == pg.K_SPACE:
                controls.paused = not controls.paused
            elif event.key in (pg.K_RIGHT, pg.K_n) and controls.paused:
                controls.single_step = True


def play(
    agent_act: AgentAct,
    rules: Rules | str,
    seed: int,
    *,
    window: bool = True,
    fps: float = 15,
    frames_dir: str | os.PathLike[str] | None = None,
    gif: str | os.PathLike[str] | None = None,
    max_frames: int | None = None,
    label: str = "",
    cell: int | None = None,
    linger: float = 2.0,
) -> dict[str, Any]:
    """Play one game of the reference SnakeGame with ``agent_act`` and show or record it.

    Args:
        agent_act: ``agent_act(body, apple, heading, width, height) -> action`` with
            action 0 (turn left), 1 (straight) or 2 (turn right). ``body`` is the
            snapshot's body (head first); the agent cannot change the game through it.
        rules: a :class:`~evonet.envs.snake.rules.Rules` or a rule set name.
        seed: the game's seed.
        window: show the game in a window at ``fps`` steps per second. Esc, Q or
            closing the window stops; space pauses and resumes; while paused, the right
            arrow or N advances one step. At the end the last frame stays up for
            ``linger`` seconds (any key or closing the window ends it sooner).
            With ``window=False`` nothing needs a display (SDL dummy drivers are set)
            and the game runs as fast as it can.
        fps: steps per second in the window; also the GIF's frame rate.
        frames_dir: if given, frame ``k`` (the state after ``k`` steps) is written to
            ``frames_dir/frame_{k:06d}.png``. The folder is created if needed.
        gif: if given, an animated GIF (looping forever, the last frame held 2 s) is
            written there when the game ends or is stopped. It has one frame per frame
            drawn, at most :data:`GIF_MAX_FRAMES`; longer games are thinned evenly.
        max_frames: stop after this many steps (so at most ``max_frames + 1`` frames,
            the start included); ``None`` plays to the end of the game.
        label: the status bar's free text, e.g. the agent and the seed; by default
            ``"seed <seed>"``.
        cell: the cell size in pixels (default: :func:`default_cell`).
        linger: seconds the last frame stays in the window.

    Returns:
        ``{"score", "steps", "won", "death"}`` of the game as far as it was played, plus
        ``"frames"`` (frames drawn: steps + 1) and ``"stopped"`` (True if it ended before
        the game was over, by ``max_frames`` or by the viewer).
    """
    from evonet.envs.snake.reference import SnakeGame
    from evonet.envs.snake.rules import make_rules

    if isinstance(rules, str):
        rules = make_rules(rules)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")

    game = SnakeGame(rules, seed)
    renderer = SnakeRenderer(rules.width, rules.height, cell, headless=not window, ruleset=rules.name)
    pg = _import_pygame(headless=not window)  # already imported by the renderer
    text = label or f"seed {seed}"
    out_dir = Path(frames_dir) if frames_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    recorder = _GifRecorder(GIF_MAX_FRAMES) if gif is not None else None
    controls = _Controls()
    frames = 0

    def emit(banner: str | None = None) -> None:
        nonlocal frames
        renderer.draw(game.snapshot(), text, banner=banner)
        if out_dir is not None:
            renderer.save_png(out_dir / f"frame_{frames:06d}.png")
        if recorder is not None:
            recorder.add(renderer.to_array)
        frames += 1

    try:
        emit()
        while not game.done and (max_frames is None or game.steps < max_frames):
            if window:
                renderer.tick(fps)
                _handle_events(pg, renderer.events(), controls)
                if controls.paused and not controls.stop:
                    renderer.draw(game.snapshot(), text, banner="PAUSED")
                    while controls.paused and not controls.stop and not controls.single_step:
                        renderer.tick(30)
                        _handle_events(pg, renderer.events(), controls)
                    controls.single_step = False
                if controls.stop:
                    break
            snap = game.snapshot()
            action = agent_act(snap.body, snap.apple, snap.heading, snap.width, snap.height)
            action = int(action)
            if action not in (0, 1, 2):
                raise ValueError(f"agent_act returned {action!r}; actions are 0, 1, 2")
            game.step(action)
            emit()
        renderer.draw(game.snapshot(), text)  # the last frame again, without "PAUSED"
        if recorder is not None:
            recorder.finish(renderer.to_array())
        if window and not controls.stop and linger > 0:
            _linger(pg, renderer, linger)
    finally:
        renderer.close()
    if recorder is not None and gif is not None:
        recorder.save(Path(gif), fps)

    return {
        "score": int(game.score),
        "steps": int(game.steps),
        "won": bool(game.won),
        "death": game.death,
        "frames": frames,
        "stopped": not game.done,
    }


def _linger(pg: ModuleType, renderer: SnakeRenderer, seconds: float) -> None:
    """Keep the window up for ``seconds`` or until a key press or close."""
    waited = 0.0
    renderer.tick(30)
    while waited < seconds:
        if any(e.type in (pg.QUIT, pg.KEYDOWN) for e in renderer.events()):
            return
        waited += renderer.tick(30)
