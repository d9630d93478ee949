"""The Executor protocol: where evaluation tasks run.

``map(fn, tasks, on_error, on_result)`` returns ``[fn(t) for t in tasks]`` in task order,
however the tasks are spread; a task that fails gives ``on_error(task, message)``
instead of stopping the batch, and ``on_result(r)`` fires as each task finishes (the
progress line). ``share(value)`` returns a handle that tasks turn back into the value
with :func:`resolve` (data sent to the workers once). Executors are context managers:
``close()`` releases their workers.

The executors are :class:`evonet.executors.LocalExecutor` (in process) and
:class:`evonet.executors.RayExecutor` (Ray workers on a machine or a cluster). To add one,
subclass :class:`Executor`; the executor contract tests run over every implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable


class SharedHandle:
    """Base class of the handles ``share`` returns: ``get()`` gives the value back."""

    def get(self) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class SharedValue(SharedHandle):
    """Shared data of an in-process executor: the value itself (nothing is copied)."""

    value: Any

    def get(self) -> Any:
        return self.value


def resolve(data: Any) -> Any:
    """The value behind a handle from ``executor.share`` (any other object is returned as is)."""
    return data.get() if isinstance(data, SharedHandle) else data


class Executor:
    """Base class of executors."""

    name = "executor"
    #: parallel workers (the loop splits a generation into this many tasks by default)
    workers = 1

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any], on_error: Callable[[Any, str], Any] | None = None,
            on_result: Callable[[Any], None] | None = None) -> list[Any]:
        raise NotImplementedError(f"{type(self).__name__}.map")

    def share(self, value: Any):
        """A handle to ``value`` for tasks (see :func:`resolve`)."""
        return SharedValue(value)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
