"""The live progress line of a run on a terminal (``log.progress: bar``).

One line, rewritten in place (carriage return), shows the generation, the evaluations
done in it, the best and mean fitness of the last complete generation, the evaluation
rate and the estimated time to the end (the smallest of: the remaining generations at
the recent pace, the wall-clock budget, the evaluation budget). Off a terminal the run
prints one line per generation instead (``lines``), which logs and CI keep readable.
"""

from __future__ import annotations

import time

from evonet.core.hooks import Hook
from typing import TextIO


def choose_mode(mode: str, stream: TextIO) -> str:
    """``auto`` -> ``bar`` on a terminal, else ``lines``; other modes unchanged."""
    if mode != "auto":
        return mode
    isatty = getattr(stream, "isatty", None)
    try:
        return "bar" if isatty is not None and isatty() else "lines"
    except (ValueError, OSError):  # a closed stream
        return "lines"


def format_duration(seconds: float) -> str:
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "?"
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def _fit(value: float, digits: int = 2) -> str:
    return f"{value:7.{digits}f}" if value == value else f"{'-':>7}"


class ProgressBar(Hook):
    """Loop hook drawing the live line on ``stream`` (a terminal)."""

    WIDTH = 20

    def __init__(self, stream: TextIO, generations: int, max_seconds: float | None = None,
                 max_evaluations: int | None = None, min_interval: float = 0.1, clock=time.monotonic,
                 digits: int = 2):
        self.stream = stream
        self.digits = digits  # decimals of the fitness (accuracy: 4)
        self.generations = generations
        self.max_seconds = max_seconds
        self.max_evaluations = max_evaluations
        self.min_interval = min_interval
        self.clock = clock
        self.gen = 0
        self.done = 0
        self.total = 0
        self.best = float("nan")
        self.mean = float("nan")
        self.evaluations = 0  # of the run, before the current generation
        self.elapsed = 0.0  # evolution seconds of the run before this session
        self.gen_seconds: float | None = None  # recent seconds per generation (smoothed)
        self.evals_per_gen: float | None = None
        self.rate = 0.0
        self.t_gen = clock()
        self.t_session = clock()
        self.t_drawn = 0.0
        self.open = False  # a line is on screen without its newline

    # ------------------------------------------------------------------ hooks

    def on_start(self, info: dict) -> None:
        self.gen = int(info.get("start_generation", 0))
        self.evaluations = int(info.get("evaluations", 0))
        self.elapsed = float(info.get("elapsed", 0.0))
        self.t_session = self.clock()

    def on_generation_start(self, generation: int, n: int) -> None:
        self.gen, self.done, self.total = generation, 0, n
        self.t_gen = self.clock()
        self.draw(force=True)

    def on_evaluations(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        self.draw(force=done >= total)

    def on_generation(self, rec: dict, strategy) -> None:
        self.best, self.mean = rec["best"], rec["mean"]
        self.evaluations += int(rec["evals"])
        seconds = float(rec["seconds"])
        self.gen_seconds = seconds if self.gen_seconds is None else 0.7 * self.gen_seconds + 0.3 * seconds
        n = float(rec["evals"])
        self.evals_per_gen = n if self.evals_per_gen is None else 0.7 * self.evals_per_gen + 0.3 * n
        self.done = self.total
        self.draw(force=True)
        if rec.get("stop") or rec["gen"] >= self.generations:
            self.finish()

    def on_interrupt(self, state) -> None:
        self.finish()

    def on_end(self, result) -> None:
        self.finish()

    # ------------------------------------------------------------------ drawing

    def eta(self) -> float:
        """Seconds to the end of the run, or nan while unknown."""
        now = self.clock()
        in_gen = now - self.t_gen
        estimates = []
        if self.gen_seconds is not None:
            remaining_gens = max(0, self.generations - self.gen)
            current = max(0.0, self.gen_seconds - in_gen) if self.done < self.total else 0.0
            estimates.append(current + remaining_gens * self.gen_seconds)
            if self.max_evaluations is not None and self.evals_per_gen:
                left = max(0, self.max_evaluations - self.evaluations)
                estimates.append(current + (left / self.evals_per_gen) * self.gen_seconds)
        if self.max_seconds is not None:
            estimates.append(max(0.0, self.max_seconds - self.elapsed - (now - self.t_session)))
        return min(estimates) if estimates else float("nan")

    def line(self) -> str:
        frac = 0.0 if self.generations <= 0 else min(1.0, (self.gen + (self.done / self.total if self.total else 0))
                                                     / (self.generations + 1))
        filled = int(round(frac * self.WIDTH))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        dt = self.clock() - self.t_gen
        rate = self.done / dt if dt > 0 and self.done else self.rate
        if self.done:
            self.rate = rate
        width = len(str(self.generations))
        return (
            f"gen {self.gen:>{width}}/{self.generations} [{bar}] evals {self.done:>{len(str(self.total))}}/{self.total}"
            f"  best {_fit(self.best, self.digits)}  mean {_fit(self.mean, self.digits)}  {rate:8.1f} evals/s  ETA {format_duration(self.eta())}"
        )

    def draw(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self.t_drawn < self.min_interval:
            return
        self.t_drawn = now
        self.stream.write("\r" + self.line() + "\x1b[K")
        self.stream.flush()
        self.open = True

    def finish(self) -> None:
        """End the live line (before anything else is printed)."""
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False
