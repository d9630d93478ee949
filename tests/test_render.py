"""The pygame renderer and ``play``, headless: PNG frames, GIFs, pixels where the state says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np
import pytest
from PIL import Image

from evonet.envs.snake import render
from evonet.envs.snake.reference import SnakeGame
from evonet.envs.snake.render import APPLE, BOARD, HEAD, SnakeRenderer, body_colour, play
from evonet.envs.snake.rules import make_rules
from evonet.errors import DependencyNotInstalled


def greedy(body, apple, heading, width, height) -> int:
    """Turn towards the apple, avoiding walls and the body; straight on ties."""
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


def hamiltonian(width: int, height: int):
    """A policy that walks one Hamiltonian cycle of an even-height board (always wins)."""
    cycle = []
    for y in range(height):  # serpentine over columns 1.., back up column 0; walked reversed
        xs = range(1, width) if y % 2 == 0 else range(width - 1, 0, -1)
        cycle += [(x, y) for x in xs]
    cycle += [(0, y) for y in range(height - 1, -1, -1)]
    cycle.reverse()
    successor = {c: cycle[(i + 1) % len(cycle)] for i, c in enumerate(cycle)}

    def act(body, apple, heading, w, h) -> int:
        (x, y), (dx, dy) = body[0], heading
        tx, ty = successor[(x, y)]
        move = (tx - x, ty - y)
        return 1 if move == (dx, dy) else 0 if move == (dy, -dx) else 2

    return act


RULES = make_rules("classic", 8, 8)
SEED = 4


def reference_states(agent, rules, seed):
    """Every state of the game the agent plays, start included."""
    game = SnakeGame(rules, seed)
    states = [game.snapshot()]
    while not game.done:
        game.step(agent(game.body, game.apple, game.heading, rules.width, rules.height))
        states.append(game.snapshot())
    return states


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    out = tmp_path_factory.mktemp("play")
    result = play(greedy, RULES, SEED, window=False, frames_dir=out / "frames", gif=out / "game.gif",
                  label="greedy   |   seed 4")
    return out, result, reference_states(greedy, RULES, SEED)


def test_play_returns_the_reference_result(played):
    _, result, states = played
    last = states[-1]
    assert result == {"score": last.score, "steps": last.steps, "won": last.won, "death": last.death,
                      "frames": len(states), "stopped": False}
    assert result["steps"] > 20 and result["score"] >= 3  # a real game, not a 2-step death


def test_one_png_and_one_gif_frame_per_state(played):
    out, result, _ = played
    pngs = sorted((out / "frames").glob("*.png"))
    assert [p.name for p in pngs] == [f"frame_{k:06d}.png" for k in range(result["steps"] + 1)]
    with Image.open(out / "game.gif") as gif:
        assert gif.n_frames == result["steps"] + 1
        assert gif.info["loop"] == 0
        assert gif.info["duration"] == 70  # 15 fps, in whole 1/100 s


def _png(out, k) -> np.ndarray:
    return np.asarray(Image.open(out / "frames" / f"frame_{k:06d}.png").convert("RGB"))


def test_pixels_show_the_state(played):
    out, _, states = played
    r = SnakeRenderer(RULES.width, RULES.height)  # same geometry as play's
    previous = None
    for k in sorted({0, 1, 2, len(states) // 2, len(states) - 2, len(states) - 1}):
        frame, state = _png(out, k), states[k]
        assert frame.shape == (r.size[1], r.size[0], 3)

        def at(cell):
            px, py = r.cell_center(*cell)
            return tuple(int(v) for v in frame[py, px])

        assert at(state.body[0]) == HEAD
        assert state.apple is not None and at(state.apple) == APPLE
        n = len(state.body)
        for i in range(1, n):
            assert at(state.body[i]) == body_colour(i, n)
        occupied = set(state.body) | {state.apple}
        empty = [(x, y) for x in range(RULES.width) for y in range(RULES.height) if (x, y) not in occupied]
        assert all(at(c) == BOARD for c in empty)
        if previous is not None:
            assert not np.array_equal(previous, frame)
        previous = frame


def test_consecutive_frames_differ(played):
    out, result, _ = played
    frames = [_png(out, k) for k in range(min(6, result["steps"] + 1))]
    assert all(not np.array_equal(a, b) for a, b in zip(frames, frames[1:]))


def test_gif_frames_show_head_and_apple(played):
    out, _, states = played
    r = SnakeRenderer(RULES.width, RULES.height)
    with Image.open(out / "game.gif") as gif:
        for k in (0, len(states) // 2):
            gif.seek(k)
            frame = np.asarray(gif.convert("RGB")).astype(int)
            for cell, colour in ((states[k].body[0], HEAD), (states[k].apple, APPLE)):
                px, py = r.cell_center(*cell)
                assert np.abs(frame[py, px] - colour).max() <= 4  # palette quantization


def _has_colour(region: np.ndarray, colour) -> bool:
    return bool((region == np.array(colour, dtype=region.dtype)).all(axis=-1).any())


def test_the_last_frame_says_how_the_game_ended(played, tmp_path):
    out, result, _ = played
    r = SnakeRenderer(RULES.width, RULES.height)
    bar = slice(0, r.cell_rect(0, 0)[1])
    assert result["death"] in ("wall", "body", "starved")
    assert _has_colour(_png(out, result["steps"])[bar], render.DEAD)  # "DEAD: ..." in the bar
    assert not _has_colour(_png(out, result["steps"] - 1)[bar], render.DEAD)

    rules = make_rules("classic", 6, 6)
    won = play(hamiltonian(6, 6), rules, 1, window=False, gif=tmp_path / "won.gif")
    assert won == {"score": 33, "steps": won["steps"], "won": True, "death": "won",
                   "frames": won["steps"] + 1, "stopped": False}
    with Image.open(tmp_path / "won.gif") as gif:
        assert gif.n_frames == won["frames"]
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("RGB"))
    r6 = SnakeRenderer(6, 6)
    top = r6.cell_rect(0, 0)[1]
    assert _has_colour(last[:top], render.WON)  # "WON" in the bar
    assert not _has_colour(last[top:], APPLE)  # no apple is left


def test_max_frames_stops_early(tmp_path):
    result = play(greedy, RULES, SEED, window=False, frames_dir=tmp_path, max_frames=5)
    assert result["steps"] == 5 and result["frames"] == 6 and result["stopped"]
    assert len(list(tmp_path.glob("*.png"))) == 6


def test_long_games_are_thinned_in_the_gif(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "GIF_MAX_FRAMES", 16)
    result = play(greedy, RULES, SEED, window=False, gif=tmp_path / "g.gif", frames_dir=tmp_path / "f")
    assert result["frames"] > 32
    with Image.open(tmp_path / "g.gif") as gif:
        assert 8 <= gif.n_frames <= 16
        gif.seek(gif.n_frames - 1)  # the last frame is the final state
        last = np.asarray(gif.convert("RGB")).astype(int)
    final = np.asarray(Image.open(tmp_path / "f" / f"frame_{result['frames'] - 1:06d}.png").convert("RGB"))
    top = SnakeRenderer(RULES.width, RULES.height).cell_rect(0, 0)[1]
    assert np.array_equal(last[top:], final[top:])  # the board's colours are in the GIF palette
    assert np.abs(last[:top] - final[:top].astype(int)).max() <= 16  # anti-aliased text: nearly


def test_window_mode_stops_on_quit_event():
    import pygame

    def agent(body, apple, heading, width, height):
        agent.calls += 1
        if agent.calls == 4:
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
        return greedy(body, apple, heading, width, height)

    agent.calls = 0
    result = play(agent, "classic", 0, window=True, fps=1000, linger=0)
    assert result["stopped"] and result["steps"] == 4 and result["frames"] == 5


def test_renderer_api():
    r = SnakeRenderer(10, 10, cell=12, ruleset="classic")
    state = SnakeGame(make_rules("classic"), 0).snapshot()
    r.draw(state, "label")
    a = r.to_array()
    assert a.shape == (r.size[1], r.size[0], 3) and a.dtype == np.uint8
    assert r.size[0] == 400  # at least 400 px wide, so the status bar fits
    with pytest.raises(ValueError, match="board"):
        r.draw(SnakeGame(make_rules("classic", 12, 12), 0).snapshot())
    r.close()
    r.close()
    with pytest.raises(RuntimeError):
        r.draw(state)


ROOT = Path(__file__).resolve().parents[1]


def test_pygame_is_imported_lazily():
    code = "import sys, evonet.envs.snake.render, evonet.envs.snake.env; print('pygame' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_missing_pygame_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # makes `import pygame` fail
    with pytest.raises(DependencyNotInstalled, match="pip install"):
        SnakeRenderer(10, 10)


@pytest.mark.skipif(bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
                    reason="a screen is attached: a window would open")
def test_window_without_a_screen_is_a_one_line_error():
    code = (
        "from evonet.envs.snake.render import play\n"
        "from evonet.errors import EvonetError\n"
        "try:\n"
        "    play(lambda *state: 1, 'classic', 0, window=True)\n"
        "except EvonetError as exc:\n"
        "    print('EvonetError:', exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "SDL_AUDIODRIVER")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                         cwd=ROOT)
    assert "EvonetError: no screen" in out.stdout or "EvonetError: cannot open a window" in out.stdout, out
    assert "--gif" in out.stdout
