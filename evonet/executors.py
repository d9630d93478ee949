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

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> list[Any]:
        return [fn(task) for task in tasks]

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
