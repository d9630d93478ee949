"""Executors run a batch of evaluation tasks. The loop only ever calls ``executor.map``.

``LocalExecutor`` evaluates in this process, in order. A Ray executor (one machine or a
cluster) implements the same interface; ``import ray`` lives in this module only.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable


class LocalExecutor:
    """Evaluate tasks one after another in the calling process."""

    name = "local"
    workers = 1

    def map(
        self,
        fn: Callable[[Any], Any],
        tasks: Iterable[Any],
        on_error: Callable[[Any, str], Any] | None = None,
    ) -> list[Any]:
        """``[fn(t) for t in tasks]``; with ``on_error``, a task that raises gives
        ``on_error(task, message)`` instead of stopping the batch."""
        out = []
        for task in tasks:
            if on_error is None:
                out.append(fn(task))
                continue
            try:
                out.append(fn(task))
            except Exception as exc:  # noqa: BLE001 - reported as a failed evaluation
                out.append(on_error(task, f"{type(exc).__name__}: {exc}"))
        return out

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_executor(cfg) -> LocalExecutor:
    """The executor an experiment's ``executor`` section describes."""
    if cfg.executor.kind == "local":
        return LocalExecutor()
    raise ValueError(f"unknown executor {cfg.executor.kind!r}")
