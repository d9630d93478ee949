"""The Executor protocol: where evaluation tasks run.

``map(fn, tasks, on_error, on_result)`` returns ``[fn(t) for t in tasks]`` in task order,
however the tasks are spread; a task that fails gives ``on_error(task, message)``
instead of stopping the batch, and ``on_result(r)`` fires as each task finishes (the
progress line). ``share(value)`` returns a handle that tasks turn back into the value
with :func:`resolve` (data sent to the workers once). Executors are context managers:
``close()`` releases their workers.

Asynchronous loops use the streaming half of the protocol: ``submit(fn, task, on_error)``
returns a ticket at once and ``wait()`` blocks until at least one submitted task is done,
returning ``[(ticket, result), ...]`` in completion order; ``idle()`` says how many more
tasks would start running now. The base class implements them on ``map`` (one task at a
time, in submission order), so an executor that only has ``map`` still works, serially.

The executors are :class:`evonet.executors.LocalExecutor` (in process),
:class:`evonet.executors.ProcessExecutor` (``executor.kind: processes``: spawned worker
processes of this machine, pinned to its GPUs round-robin, no Ray),
:class:`evonet.executors.RayExecutor` (Ray workers on a machine or a cluster) and
:class:`evonet.executors.SimulatedExecutor` (virtual workers on a virtual clock). To add
one, subclass :class:`Executor`; the executor contract tests run over every implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable
import collections


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

    # ------------------------------------------------------------------ streaming

    def submit(self, fn: Callable[[Any], Any], task: Any, on_error: Callable[[Any, str], Any] | None = None) -> int:
        """Start ``fn(task)`` (queued while every worker is busy); returns its ticket.
        ``on_error(task, message)`` scores a task that fails, as in :meth:`map`."""
        queue = self.__dict__.setdefault("_stream_queue", collections.deque())
        ticket = self.__dict__.get("_stream_next", 0)
        self._stream_next = ticket + 1
        queue.append((ticket, fn, task, on_error))
        return ticket

    def wait(self) -> list[tuple[int, Any]]:
        """Block until at least one submitted task is done: ``[(ticket, result), ...]``.
        Default: run the oldest submitted task through :meth:`map`."""
        queue = self.__dict__.get("_stream_queue")
        if not queue:
            raise RuntimeError(f"{type(self).__name__}.wait: no task submitted")
        ticket, fn, task, on_error = queue.popleft()
        return [(ticket, self.map(fn, [task], on_error=on_error)[0])]

    def idle(self) -> int:
        """How many more submitted tasks would start at once (workers not busy)."""
        queue = self.__dict__.get("_stream_queue") or ()
        return max(0, int(self.workers) - len(queue))

    def share(self, value: Any):
        """A handle to ``value`` for tasks (see :func:`resolve`)."""
        return SharedValue(value)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
