"""The snake problem's config: the ``snake:`` section, ``eval_games``, and ``genome: weights``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from evonet.core.config import ProblemKind, Section, _f, register_problem
from evonet.core.errors import ConfigError
from evonet.problems.network import NETWORK


@dataclass
class SnakeConfig:
    """The game every individual is scored on."""

    rules: Literal["classic", "theailearner"] = _f("classic", "rule set (see docs/snake.md)")
    board: Optional[int] = _f(
        None, "board side in cells (square); default: the rule set's own (classic 10, theailearner 50)", min=5, max=200
    )
    observation: Literal["blog7", "vision", "cycle", "lookahead"] = _f(
        "vision", "observation set fed to the network (docs/snake.md; cycle: boards with an even number of cells; "
        "lookahead: an 8-move search under the game's rules)"
    )
    games: int = _f(8, "games per individual per evaluation (fitness = mean score)", min=1, max=10_000)
    engine: Literal["auto", "fused", "batched"] = _f(
        "auto",
        "fused: whole games in one compiled call on every core, the same bits on any x86-64 CPU; batched: the "
        "reference path (NumPy/BLAS forward pass, one core); auto: fused (the batched path only for a network the kernel cannot run, e.g. a hidden softmax built through the Python API)",
    )
    threads: Optional[int] = _f(
        None, "the fused engine's threads per evaluation task; null: every core (local executor), "
        "int(executor.cpus_per_eval) (ray, processes)", min=1, max=4096,
    )
    device: Literal["auto", "cpu", "cuda"] = _f(
        "auto",
        "where the fused engine plays: cpu (the cores, snake.threads); cuda (an NVIDIA GPU through numba, one "
        "thread per game, the same games bit for bit; exit 2 without a usable GPU); auto: cuda where numba finds "
        "a GPU, else cpu (decided where the games are played)",
    )


#: ``snake.device`` choices
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> str:
    """``"cpu"`` or ``"cuda"``: where the fused engine plays for ``snake.device: device``.

    ``auto``: ``cuda`` where numba finds a real GPU it can use (never its simulator), else
    ``cpu``; ``cuda``: :class:`ConfigError` (one line naming the field and the fix) without
    a usable GPU, unless numba's CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1``, for tests).
    Only ``auto`` and ``cuda`` import numba's CUDA target."""
    if device not in DEVICES:
        raise ConfigError(f"snake.device: expected one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu"
    from evonet.envs.snake.cuda import cuda_status

    usable, reason = cuda_status()
    if device == "auto":
        return "cuda" if usable and reason != "simulator" else "cpu"
    if not usable:
        raise ConfigError(f"snake.device: cuda needs an NVIDIA GPU that numba can use, and there is none here "
                          f"({reason.rstrip('.')}); use snake.device=cpu, or auto (the GPU where there is one)")
    return "cuda"


def _snake_defaults(cfg) -> None:
    """The board defaults to the rule set's own; theailearner needs room for its start;
    ``snake.device: cuda`` needs a GPU here (checked before any work) and the fused engine."""
    if cfg.snake.board is None:
        cfg.snake.board = 50 if cfg.snake.rules == "theailearner" else 10
    if cfg.snake.rules == "theailearner" and cfg.snake.board < 12:
        raise ConfigError(f"snake.board: theailearner starts at (10, 10) and needs a board of >= 12, got {cfg.snake.board}")
    if cfg.snake.observation == "cycle" and cfg.snake.board % 2:
        raise ConfigError(f"snake.observation: cycle needs a board with an even number of cells (a Hamiltonian "
                          f"cycle), got snake.board {cfg.snake.board}; use an even board or another observation")
    if cfg.snake.device == "cuda":
        if cfg.snake.engine == "batched":
            raise ConfigError("snake.device: cuda runs the fused engine, but snake.engine is batched (the CPU "
                              "reference path); use snake.engine=auto or fused, or snake.device=cpu")
        resolve_device("cuda")


register_problem(
    ProblemKind("weights", "flat weight vector of a fixed network on snake",
                "evonet.problems.snake.problem:SnakeWeightsProblem.from_config", cli="evonet.problems.snake.cli",
                report="evonet.problems.snake.report:report_section"),
    [Section("snake", SnakeConfig, "the game", check=_snake_defaults), NETWORK,
     Section("eval_games", int, "games on evaluation seeds 0..N-1 played by the final best agent at the end of the run",
             default=1000, meta={"min": 0, "max": 2**32})],
)
