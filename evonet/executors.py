"""Executors run a batch of evaluation tasks. The loop only ever calls ``executor.map``.

``LocalExecutor`` evaluates in this process, in order. ``ProcessExecutor`` runs the same
tasks on warm worker processes of this machine (the standard library's ``spawn``, no
Ray), pinned to its GPUs round-robin; ``RayExecutor`` runs them on warm Ray workers
(actors) on this machine or on a cluster. Both return the results in task order, so a run
gives the same results whatever executor and number of workers evaluate it. ``import ray``
lives in this module only, inside the functions that need it: ``import evonet`` stays fast
and works without Ray.

Shared data (a dataset, fixed arrays) is handed to the executor once with
:meth:`share`; tasks carry the returned handle and the evaluation calls
:func:`resolve` on it. With Ray the data goes into the object store once and each worker
process fetches and caches it on first use; the process pool sends it to each worker
once, with the first task that carries the handle.

Errors made while building an executor (Ray missing, unreachable cluster, a cluster or a
machine without the requested CPUs or GPUs, ``workers: 0``) are :class:`ExecutorError`
subclasses of :class:`~evonet.errors.EvonetError`: the CLI prints them as one line and
exits 2 before evolution starts.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ipaddress
import logging
import math
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from evonet.core.errors import DependencyNotInstalled, EvonetError
from evonet.core.executor import Executor, SharedHandle, SharedValue, resolve  # noqa: F401 (re-exported)

# ----------------------------------------------------------------------------- errors


class ExecutorError(EvonetError):
    """The executor could not be set up as the experiment asks (one-line message, exit 2)."""


class ClusterUnreachable(ExecutorError):
    """No Ray cluster answers at the given address, or it refused this client."""


class InsufficientResources(ExecutorError):
    """The Ray cluster lacks the CPUs or GPUs the workers ask for."""


class EvaluationFailed(EvonetError):
    """A task failed and the caller gave no ``on_error`` to turn it into failed results."""


# ----------------------------------------------------------------------------- shared data


#: Per-process cache of shared data fetched from the Ray object store (object id -> value).
_SHARED_CACHE: "collections.OrderedDict[str, Any]" = collections.OrderedDict()
_SHARED_CACHE_SIZE = 4
#: How many times this process fetched each shared object (object id -> count); tests read it.
SHARED_FETCHES: collections.Counter = collections.Counter()


@dataclass(frozen=True)
class RaySharedValue(SharedHandle):
    """Shared data in the Ray object store; :meth:`get` fetches it once per process."""

    ref: Any  # ray.ObjectRef

    @property
    def key(self) -> str:
        return self.ref.hex()

    def get(self) -> Any:
        key = self.key
        if key in _SHARED_CACHE:
            _SHARED_CACHE.move_to_end(key)
            return _SHARED_CACHE[key]
        import ray

        value = ray.get(self.ref)
        SHARED_FETCHES[key] += 1
        _SHARED_CACHE[key] = value
        while len(_SHARED_CACHE) > _SHARED_CACHE_SIZE:
            _SHARED_CACHE.popitem(last=False)
        return value


# ----------------------------------------------------------------------------- local


class LocalExecutor(Executor):
    """Evaluate tasks one after another in the calling process."""

    name = "local"
    workers = 1

    def map(
        self,
        fn: Callable[[Any], Any],
        tasks: Iterable[Any],
        on_error: Callable[[Any, str], Any] | None = None,
        on_result: Callable[[Any], None] | None = None,
    ) -> list[Any]:
        """``[fn(t) for t in tasks]``; with ``on_error``, a task that raises gives
        ``on_error(task, message)`` instead of stopping the batch. ``on_result(r)`` (optional)
        is called with each task's result as soon as it is there (progress reporting)."""
        out = []
        for task in tasks:
            if on_error is None:
                out.append(fn(task))
            else:
                try:
                    out.append(fn(task))
                except Exception as exc:  # noqa: BLE001 - reported as a failed evaluation
                    out.append(on_error(task, f"{type(exc).__name__}: {exc}"))
            if on_result is not None:
                on_result(out[-1])
        return out

    # share (an in-process SharedValue), close and the context manager: Executor's


# ----------------------------------------------------------------------------- simulated


class SimulatedExecutor(Executor):
    """N virtual workers on a virtual clock: scale without the machines.

    Every task runs for real, in this process (its result is genuine), but is charged a
    duration drawn from ``durations`` (measured evaluation seconds, resampled, one draw per
    task in task order) and is list-scheduled on the earliest free of ``workers`` virtual
    workers; ``failure_rate`` of the tasks fail as a lost worker would (``on_error``). ``map``
    is a barrier, as the generational loop's is: the clock moves to the last task's end.
    ``submit`` / ``wait`` stream (the asynchronous loop's): a task starts at the current
    virtual time on a free worker, and ``wait`` moves the clock to the next finish.
    The schedule depends only on ``seed`` and the order of the tasks, so a simulation is
    deterministic. Figures: ``clock`` (virtual wall seconds), ``busy`` (virtual worker
    seconds), :attr:`utilization` = busy / (workers x clock), and
    :attr:`overhead_per_result`: real seconds the driver (loop, strategy, executor) spent per
    result outside the tasks, from the first ``map`` to the last.
    """

    name = "simulated"

    def __init__(self, workers: int, durations, failure_rate: float = 0.0, seed: int = 0):
        import numpy as np

        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.durations = np.asarray(durations, dtype=float).reshape(-1)
        if self.durations.size == 0 or not np.all(np.isfinite(self.durations)) or self.durations.min() < 0:
            raise ValueError("durations must be a non-empty list of seconds >= 0")
        if not 0.0 <= failure_rate < 1.0:
            raise ValueError(f"failure_rate must be in [0, 1), got {failure_rate}")
        self.workers = int(workers)
        self.failure_rate = float(failure_rate)
        self.rng = np.random.default_rng(seed)
        self.clock = 0.0
        self.busy = 0.0
        self.results = 0
        self.failures = 0
        self.task_seconds = 0.0  # real seconds inside the tasks
        self._real_start: float | None = None  # the first map's start ...
        self._real_end = 0.0  # ... to the last one's end: the loop's own work between maps included
        self._free_at = [(0.0, w) for w in range(self.workers)]  # streaming: a heap of (free from, worker)
        self._events: list = []  # streaming: (finish, ticket, result) of submitted tasks
        self._ticket = 0

    @property
    def utilization(self) -> float:
        return self.busy / (self.workers * self.clock) if self.clock > 0 else 0.0

    @property
    def overhead_per_result(self) -> float:
        if not self.results or self._real_start is None:
            return 0.0
        return max(0.0, self._real_end - self._real_start - self.task_seconds) / self.results

    def _charge(self, fn, task, on_error, label) -> tuple[float, Any]:
        """Draw a task's duration and fate, run it for real; returns (duration, result)."""
        duration = float(self.rng.choice(self.durations))
        failed = self.rng.random() < self.failure_rate
        t0 = time.perf_counter()
        if failed:
            if on_error is None:
                raise EvaluationFailed(f"task {label}: simulated worker failure")
            out = on_error(task, "simulated worker failure")
            self.failures += 1
        else:
            try:
                out = fn(task)
            except Exception as exc:  # noqa: BLE001 - reported as a failed evaluation
                if on_error is None:
                    raise
                out = on_error(task, f"{type(exc).__name__}: {exc}")
        self.task_seconds += time.perf_counter() - t0
        self.busy += duration
        return duration, out

    def submit(self, fn, task, on_error=None) -> int:
        """Start ``task`` on the earliest free virtual worker, at the current virtual time or
        when that worker frees up; it runs for real now, and :meth:`wait` hands its result
        out at its virtual finish time."""
        import heapq

        if self._real_start is None:
            self._real_start = time.perf_counter()
        ticket = self._ticket
        self._ticket += 1
        free, w = heapq.heappop(self._free_at)
        start = max(self.clock, free)
        duration, out = self._charge(fn, task, on_error, ticket)
        heapq.heappush(self._free_at, (start + duration, w))
        heapq.heappush(self._events, (start + duration, ticket, out))
        return ticket

    def wait(self) -> list[tuple[int, Any]]:
        """The next task to finish in virtual time; the clock moves to its finish."""
        import heapq

        if not self._events:
            raise RuntimeError("SimulatedExecutor.wait: no task submitted")
        finish, ticket, out = heapq.heappop(self._events)
        self.clock = max(self.clock, finish)
        self.results += 1
        self._real_end = time.perf_counter()
        return [(ticket, out)]

    def idle(self) -> int:
        return sum(1 for t, _ in self._free_at if t <= self.clock)

    def map(self, fn, tasks, on_error=None, on_result=None):
        import heapq

        start = time.perf_counter()
        if self._real_start is None:
            self._real_start = start
        tasks = list(tasks)
        free = [(self.clock, w) for w in range(self.workers)]  # (time free, worker)
        heapq.heapify(free)
        done = []  # (finish time, index)
        out: list[Any] = [None] * len(tasks)
        end = self.clock
        for i, task in enumerate(tasks):
            at, worker = heapq.heappop(free)
            duration, out[i] = self._charge(fn, task, on_error, i)
            finish = at + duration
            heapq.heappush(free, (finish, worker))
            end = max(end, finish)
            done.append((finish, i))
        for _, i in sorted(done):  # progress in virtual completion order
            if on_result is not None:
                on_result(out[i])
        self.clock = end
        self._free_at = [(end, w) for w in range(self.workers)]
        self.results += len(tasks)
        self._real_end = time.perf_counter()
        return out


# ----------------------------------------------------------------------------- argument checks


def _check_arguments(workers, cpus_per_eval, gpus_per_eval, eval_timeout_s, max_retries) -> None:
    """The checks every pool of workers makes before starting anything (one-line errors)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ExecutorError(f"executor.workers: must be >= 1, got {workers}")
    if cpus_per_eval < 0:
        raise ExecutorError(f"executor.cpus_per_eval: must be >= 0, got {cpus_per_eval}")
    if gpus_per_eval < 0:
        raise ExecutorError(f"executor.gpus_per_eval: must be >= 0, got {gpus_per_eval}")
    if gpus_per_eval > 1 and gpus_per_eval != int(gpus_per_eval):
        raise ExecutorError(
            f"executor.gpus_per_eval: above 1 it must be a whole number of GPUs, got {gpus_per_eval}"
        )
    if eval_timeout_s is not None and eval_timeout_s <= 0:
        raise ExecutorError(f"executor.eval_timeout_s: must be > 0, got {eval_timeout_s}")
    if max_retries < 0:
        raise ExecutorError(f"executor.max_retries: must be >= 0, got {max_retries}")


# ----------------------------------------------------------------------------- GPUs of this machine


@dataclass(frozen=True)
class GpuInventory:
    """The GPUs evaluations may use on this machine: their ``CUDA_VISIBLE_DEVICES`` entries
    (indices, or UUIDs / MIG ids as the driver's variable spells them) and where they were
    found (the error messages say it)."""

    ids: tuple[str, ...]
    source: str


def visible_gpus(environ: dict | None = None, nvidia_smi: str | None = "nvidia-smi") -> GpuInventory:
    """The usable GPUs, without importing TensorFlow, JAX or torch.

    ``CUDA_VISIBLE_DEVICES`` if set (a comma-separated list; empty, or an entry starting with
    ``-`` such as ``-1``, hides every GPU from there on, as CUDA reads it); else the indices
    ``nvidia-smi --query-gpu=index --format=csv,noheader`` lists, if that binary is on the
    ``PATH``; else none. ``environ`` (default ``os.environ``) and ``nvidia_smi`` (a binary name
    or path; None: do not ask) make the source injectable for tests."""
    import subprocess

    env = os.environ if environ is None else environ
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        ids = []
        for entry in cvd.split(","):
            entry = entry.strip()
            if not entry or entry.startswith("-"):
                break
            ids.append(entry)
        return GpuInventory(tuple(ids), f"CUDA_VISIBLE_DEVICES={cvd!r}")
    path = shutil.which(nvidia_smi, path=env.get("PATH")) if nvidia_smi else None
    if path is None:
        return GpuInventory((), "no nvidia-smi on the PATH and CUDA_VISIBLE_DEVICES unset")
    try:
        proc = subprocess.run([path, "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return GpuInventory((), f"nvidia-smi failed: {type(exc).__name__}: {_one_line(exc, 120)}")
    if proc.returncode != 0:
        why = _one_line(proc.stderr or proc.stdout or "", 120)
        return GpuInventory((), f"nvidia-smi failed with exit code {proc.returncode}{': ' + why if why else ''}")
    ids = tuple(line.strip() for line in proc.stdout.splitlines() if line.strip())
    return GpuInventory(ids, f"nvidia-smi lists {len(ids)} GPU{'s' if len(ids) != 1 else ''}" if ids
                        else "nvidia-smi found no GPU")


def _no_gpu_error(gpus_per_eval: float, inventory: GpuInventory) -> ExecutorError:
    return ExecutorError(
        f"executor.gpus_per_eval: {gpus_per_eval:g} asks for GPUs but this machine has none ({inventory.source}); "
        "set executor.gpus_per_eval: 0 to evaluate on the CPU, or run on a machine with a GPU"
    )


def gpu_placement(workers: int, gpus_per_eval: float, inventory: GpuInventory) -> list[str]:
    """Each worker's ``CUDA_VISIBLE_DEVICES``: round-robin over the GPUs (``gpus_per_eval``
    <= 1: worker i gets GPU ``i % n``, ``floor(1 / gpus_per_eval)`` workers per GPU at most),
    or a group of ``gpus_per_eval`` whole GPUs each. One-line :class:`ExecutorError` when the
    machine has no GPU or too few for the workers."""
    g, ids = float(gpus_per_eval), list(inventory.ids)
    if g <= 0:
        raise ValueError("gpu_placement: gpus_per_eval must be > 0")
    n = len(ids)
    if n == 0:
        raise _no_gpu_error(g, inventory)
    if g > 1:
        k = int(g)
        groups = n // k
        if groups == 0:
            raise ExecutorError(
                f"executor.gpus_per_eval: each evaluation asks for {k} GPUs but this machine has {n} "
                f"({inventory.source}); lower executor.gpus_per_eval"
            )
        if workers > groups:
            raise ExecutorError(
                f"executor.workers: {workers} workers of {k} GPUs each do not fit on this machine's {n} GPUs "
                f"({inventory.source}; room for {groups}); lower executor.workers or executor.gpus_per_eval"
            )
        return [",".join(ids[(i % groups) * k:(i % groups + 1) * k]) for i in range(workers)]
    room = n * _per_gpu(g)
    if workers > room:
        raise ExecutorError(
            f"executor.workers: {workers} workers of {g:g} GPU each do not fit on this machine's {n} "
            f"GPU{'s' if n != 1 else ''} ({inventory.source}; room for {room}); "
            "lower executor.workers or executor.gpus_per_eval"
        )
    return [ids[i % n] for i in range(workers)]


def check_local_gpus(gpus_per_eval: float, inventory: GpuInventory | None = None) -> None:
    """``executor.kind: local`` with ``gpus_per_eval > 0``: the machine must have the GPUs
    (one evaluation at a time, in this process; nothing is pinned)."""
    if gpus_per_eval > 0:
        gpu_placement(1, gpus_per_eval, visible_gpus() if inventory is None else inventory)


# ----------------------------------------------------------------------------- process pool


#: Shared values this worker process received from a ProcessExecutor (key -> value).
_PROCESS_SHARED: dict[str, Any] = {}
_MISSING = object()
_collecting = threading.local()  # the keys of the shared values a pickle being made refers to


def _note_shared(key: str) -> None:
    keys = getattr(_collecting, "keys", None)
    if keys is not None:
        keys.add(key)


class ProcessSharedValue(SharedHandle):
    """Shared data of a :class:`ProcessExecutor`: a key. In the driver :meth:`get` returns the
    value itself; a worker receives the value once, before the first task that carries the
    handle, and :meth:`get` returns its copy."""

    __slots__ = ("key", "_value")

    def __init__(self, key: str, value: Any = _MISSING):
        self.key = key
        self._value = value

    def __reduce__(self):
        _note_shared(self.key)  # the executor sends the value to a worker before such a task
        return (ProcessSharedValue, (self.key,))

    def __eq__(self, other):
        return isinstance(other, ProcessSharedValue) and other.key == self.key

    def __hash__(self):
        return hash(self.key)

    def __repr__(self):
        return f"ProcessSharedValue({self.key!r})"

    def get(self) -> Any:
        if self._value is not _MISSING:
            return self._value
        try:
            return _PROCESS_SHARED[self.key]
        except KeyError:
            raise RuntimeError(f"shared value {self.key} is not in this process: resolve it in a task of the "
                               "ProcessExecutor that shared it") from None


def _dumps(obj) -> tuple[bytes, frozenset]:
    """``cloudpickle.dumps(obj)`` and the keys of the shared values it refers to."""
    import cloudpickle

    outer = getattr(_collecting, "keys", None)
    _collecting.keys = set()
    try:
        data = cloudpickle.dumps(obj)
        return data, frozenset(_collecting.keys)
    finally:
        _collecting.keys = outer


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _watch_parent() -> None:
    """End this worker when its driver is gone (killed with SIGKILL, say): no orphans."""
    import multiprocessing
    import threading as _threading

    parent = multiprocessing.parent_process()
    if parent is None or getattr(parent, "sentinel", None) is None:
        return

    def watch():
        from multiprocessing.connection import wait

        wait([parent.sentinel])
        os._exit(1)

    _threading.Thread(target=watch, name="evonet-parent-watch", daemon=True).start()


def _process_worker(conn, env: dict, slot: int) -> None:
    """A worker process of :class:`ProcessExecutor`: runs ``fn(task)`` messages one at a time.

    The environment (GPU, allocator, threads) was the process's from its start; it is set
    again here, first thing, for whatever the main-module import of ``spawn`` may have
    changed."""
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle (SignalGuard)
    _watch_parent()
    import pickle

    import cloudpickle

    conn.send_bytes(pickle.dumps(("ready", {"pid": os.getpid(), "slot": slot,
                                            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")})))
    while True:
        try:
            header = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the driver is gone
            return
        kind = header[0]
        if kind == "stop":
            return
        payload = conn.recv_bytes()
        if kind == "share":
            key = header[1]
            _PROCESS_SHARED[key] = cloudpickle.loads(payload)
            SHARED_FETCHES[key] += 1
            continue
        ticket = header[1]  # "run"
        try:
            fn, task = cloudpickle.loads(payload)
            result = fn(task)
        except Exception as exc:  # noqa: BLE001 - the task's failure, reported to the driver
            reply = pickle.dumps(("err", ticket, f"{type(exc).__name__}: {_one_line(exc)}"))
        else:
            try:
                reply = cloudpickle.dumps(("ok", ticket, result))
            except Exception as exc:  # noqa: BLE001
                reply = pickle.dumps(("err", ticket, f"the result cannot be sent back to the driver "
                                                     f"({type(exc).__name__}: {_one_line(exc)})"))
        conn.send_bytes(reply)


_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _environment(env: dict, quiet_sigint: bool):
    """``env`` in this process's environment (and SIGINT ignored) while a worker is spawned:
    the child starts with them, before it imports anything."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in env}
        old_handler = None
        if quiet_sigint and threading.current_thread() is threading.main_thread():
            old_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            os.environ.update(env)
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)


_LIVE_POOLS: "weakref.WeakSet[ProcessExecutor]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False


def _close_live_pools() -> None:
    for ex in list(_LIVE_POOLS):
        try:
            ex.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass


class _Slot:
    """One worker position: its process (replaced when it dies), state and counters."""

    def __init__(self, index: int, env: dict):
        self.index = index
        self.env = env
        self.proc = None
        self.conn = None
        self.state = "down"  # starting | idle | busy | down
        self.since = 0.0  # when the state began (start / dispatch)
        self.ticket: int | None = None
        self.shared: set[str] = set()  # shared values this process holds
        self.pid: int | None = None
        self.calls = 0
        self.start_failures = 0


def _stop_slot(slot: _Slot) -> int | None:
    """Kill the slot's process if it still runs, reap it; returns its exit code."""
    proc, conn = slot.proc, slot.conn
    slot.state, slot.ticket = "down", None
    slot.proc = slot.conn = None
    if conn is not None:
        conn.close()
    if proc is None:
        return None
    if proc.exitcode is None:
        proc.kill()
    proc.join(5)
    return proc.exitcode


class _TicketExecutor(Executor):
    """The bookkeeping :class:`ProcessExecutor` and :class:`RayExecutor` share: tickets,
    ``map`` on ``submit`` / ``wait``, tasks finished for another caller. A subclass keeps
    ``_closed``, ``_next_ticket``, ``_jobs``, ``_attempts``, ``_queue``, ``_done`` and
    ``_done_elsewhere`` and implements ``_pump`` (queued tasks to idle workers), ``_step``
    (wait for worker events, filling ``_done``) and ``idle``."""

    def map(
        self,
        fn: Callable[[Any], Any],
        tasks: Iterable[Any],
        on_error: Callable[[Any, str], Any] | None = None,
        on_result: Callable[[Any], None] | None = None,
    ) -> list[Any]:
        """``[fn(t) for t in tasks]`` on the workers, in task order.

        A task whose worker dies is run again (up to ``max_retries`` times); a task that
        raises, runs out of retries or passes ``eval_timeout_s`` gives
        ``on_error(task, message)``, or raises :class:`EvaluationFailed` without ``on_error``.
        ``on_result(result)`` is called as each task finishes, in completion order.
        """
        tickets = [self.submit(fn, t, on_error) for t in tasks]
        index = {t: i for i, t in enumerate(tickets)}
        results: list[Any] = [None] * len(tickets)
        left = len(tickets)
        while left:
            for ticket, value in self._wait_raw():
                i = index.get(ticket)
                if i is None:  # a task submitted outside this map: not ours to hand out
                    self._done_elsewhere.append((ticket, value))
                    continue
                results[i] = value
                left -= 1
                if on_result is not None:
                    on_result(value)
        return results

    # ------------------------------------------------------------------ streaming

    def submit(self, fn: Callable[[Any], Any], task: Any, on_error: Callable[[Any, str], Any] | None = None) -> int:
        """Queue ``fn(task)``; it starts on the next idle worker. Returns its ticket."""
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
        ticket = self._next_ticket
        self._next_ticket += 1
        self._jobs[ticket] = (fn, task, on_error)
        self._attempts[ticket] = 0
        self._queue.append(ticket)
        self._pump()
        return ticket

    def wait(self) -> list[tuple[int, Any]]:
        """Block until a task finishes (or fails for good): ``[(ticket, result), ...]``."""
        if self._done_elsewhere:
            out, self._done_elsewhere = self._done_elsewhere, []
            return out
        return self._wait_raw()

    def _wait_raw(self) -> list[tuple[int, Any]]:
        if not self._jobs and not self._done:
            raise RuntimeError(f"{type(self).__name__}.wait: no task submitted")
        while not self._done:
            self._step()
            self._pump()
        out, self._done = self._done, []
        return out


class ProcessExecutor(_TicketExecutor):
    """Evaluate tasks on ``workers`` warm worker processes of this machine (no Ray).

    The workers are started with the ``spawn`` method (a fresh interpreter: no state
    inherited from the driver, CUDA included) and live as long as the executor, each running
    one task at a time; functions and tasks travel with cloudpickle, so closures and
    functions defined in a script or a notebook work. Results come back in task order.

    Args:
        workers: worker processes.
        cpus_per_eval: threads each worker may use: ``OMP_NUM_THREADS`` and
            ``NUMBA_NUM_THREADS`` are ``max(1, int(cpus_per_eval))`` in the workers unless the
            driver's environment sets them (TensorFlow: one thread, ``import_keras``'s default).
        gpus_per_eval: GPUs per worker. Workers are pinned round-robin with
            ``CUDA_VISIBLE_DEVICES`` (0.25: four workers per GPU; above 1, a whole number: a
            group of GPUs each), and told to allocate GPU memory as they need it
            (``TF_FORCE_GPU_ALLOW_GROWTH=true``, ``XLA_PYTHON_CLIENT_PREALLOCATE=false``,
            ``PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True`` unless set). 0: workers
            inherit the driver's ``CUDA_VISIBLE_DEVICES``.
        eval_timeout_s: a task running longer is scored with ``on_error`` and its worker
            killed and restarted; None: no limit.
        max_retries: how many times a task whose worker died is run again before it is
            scored with ``on_error``.
        gpus: the GPUs to place workers on (default: :func:`visible_gpus`).
        env: more environment variables for the workers.
        start_timeout_s: how long a worker may take to start.
    """

    name = "processes"

    def __init__(
        self,
        workers: int = 1,
        cpus_per_eval: float = 1.0,
        gpus_per_eval: float = 0.0,
        eval_timeout_s: float | None = None,
        max_retries: int = 3,
        *,
        gpus: GpuInventory | None = None,
        env: dict | None = None,
        start_timeout_s: float = 120.0,
    ):
        _check_arguments(workers, cpus_per_eval, gpus_per_eval, eval_timeout_s, max_retries)
        import multiprocessing

        if getattr(multiprocessing.current_process(), "_inheriting", False):
            # a worker being started imports the driver's script again (spawn): one quiet line, not a traceback
            raise SystemExit(f"evonet worker {os.getpid()}: the script that starts the run ran again in this worker "
                             "process; start the run under `if __name__ == \"__main__\":`")
        self.workers = workers
        self.cpus_per_eval = float(cpus_per_eval)
        self.gpus_per_eval = float(gpus_per_eval)
        self.eval_timeout_s = eval_timeout_s
        self.max_retries = max_retries
        self.start_timeout_s = float(start_timeout_s)
        self.stats = collections.Counter()  # tasks, retries, timeouts, failed, restarts
        self._closed = True  # until the workers are up
        base = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        threads = str(max(1, int(self.cpus_per_eval)))
        for key in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
            base[key] = os.environ.get(key, threads)
        base.update({str(k): str(v) for k, v in (env or {}).items()})
        devices: list[str | None] = [None] * workers
        if self.gpus_per_eval > 0:
            inventory = visible_gpus() if gpus is None else gpus
            devices = list(gpu_placement(workers, self.gpus_per_eval, inventory))
            base.update(TF_FORCE_GPU_ALLOW_GROWTH="true", XLA_PYTHON_CLIENT_PREALLOCATE="false",
                        PYTORCH_CUDA_ALLOC_CONF=os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True"))
        self.mode = f"{workers} process{'es' if workers != 1 else ''} on this machine"
        if self.gpus_per_eval > 0:
            self.mode += f", GPUs {' | '.join(dict.fromkeys(devices))} ({self.gpus_per_eval:g} GPU each)"
        self._slots = [_Slot(i, dict(base, **({"CUDA_VISIBLE_DEVICES": d} if d is not None else {})))
                       for i, d in enumerate(devices)]
        self._ctx = multiprocessing.get_context("spawn")
        self._key = secrets.token_hex(4)
        self._shared: dict[str, tuple[bytes, frozenset]] = {}  # key -> (pickled value, keys it refers to)
        self._shared_count = 0
        # the streaming state (submit / wait; map is built on it), as RayExecutor's
        self._queue: collections.deque = collections.deque()  # tickets waiting for a worker
        self._jobs: dict[int, tuple] = {}  # ticket -> (fn, task, on_error), until it is done
        self._attempts: dict[int, int] = {}
        self._done: list[tuple[int, Any]] = []
        self._done_elsewhere: list[tuple[int, Any]] = []
        self._next_ticket = 0
        global _ATEXIT_REGISTERED
        if not _ATEXIT_REGISTERED:
            import multiprocessing.util  # noqa: F401 - registers its exit hook (it joins the workers) ...

            atexit.register(_close_live_pools)  # ... after which this one goes, so it runs first
            _ATEXIT_REGISTERED = True
        self._up = False  # every worker started once
        self._closed = False
        _LIVE_POOLS.add(self)
        try:
            for slot in self._slots:
                self._spawn(slot)
            while any(s.state == "starting" for s in self._slots):
                self._step()
            self._up = True
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_config(cls, ex) -> "ProcessExecutor":
        """From an :class:`~evonet.config.ExecutorConfig`."""
        return cls(workers=ex.workers, cpus_per_eval=ex.cpus_per_eval, gpus_per_eval=ex.gpus_per_eval,
                   eval_timeout_s=ex.eval_timeout_s, max_retries=ex.max_retries)

    # ------------------------------------------------------------------ workers

    def _spawn(self, slot: _Slot) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_process_worker, args=(child, slot.env, slot.index),
                                 name=f"evonet-worker-{slot.index}", daemon=False)
        with _environment(slot.env, quiet_sigint=True):
            proc.start()
        child.close()
        slot.proc, slot.conn, slot.pid = proc, parent, proc.pid
        slot.state, slot.since, slot.ticket = "starting", time.monotonic(), None
        slot.shared = set()

    def _lost(self, slot: _Slot, reason: str | None = None) -> None:
        """A worker process died: its task runs again (or fails), a new process takes its place."""
        state, ticket = slot.state, slot.ticket
        code = _stop_slot(slot)
        reason = reason or _exit_text(code)
        if state == "starting":
            slot.start_failures += 1
            if slot.start_failures >= 3 or not self._up:
                if self._up:  # it started before: the machine, not the script
                    raise ExecutorError(f"executor: worker {slot.index} ended while starting again ({reason}, "
                                        f"{slot.start_failures} times in a row; see its messages above)")
                raise ExecutorError(
                    f"executor: worker {slot.index} ended while starting ({reason}; see its messages above); "
                    "a script that starts a run with executor.kind=processes must do it under "
                    "`if __name__ == \"__main__\":` (each worker imports the script again)"
                )
        self.stats["restarts"] += 1
        if not self._closed:
            self._spawn(slot)
        if state == "busy" and ticket is not None:
            self._attempts[ticket] += 1
            if self._attempts[ticket] <= self.max_retries:
                self.stats["retries"] += 1
                self._queue.appendleft(ticket)
            else:
                self._fail(ticket, f"worker lost {self._attempts[ticket]} times: {reason}")

    # ------------------------------------------------------------------ API

    def worker_info(self) -> list[dict]:
        """pid, slot, CUDA_VISIBLE_DEVICES, state and tasks run of every worker position."""
        return [{"pid": s.pid, "slot": s.index, "cuda_visible_devices": s.env.get("CUDA_VISIBLE_DEVICES"),
                 "state": s.state, "calls": s.calls} for s in self._slots]

    def share(self, value: Any) -> ProcessSharedValue:
        """A handle to ``value``: pickled once here, sent to a worker with the first task
        that carries the handle, and kept there (see :func:`resolve`)."""
        key = f"proc-{self._key}-{self._shared_count}"
        self._shared_count += 1
        self._shared[key] = _dumps(value)
        _PROCESS_SHARED[key] = value  # copies of the handle resolve in the driver too (until close)
        return ProcessSharedValue(key, value)

    def idle(self) -> int:
        return max(0, sum(s.state == "idle" for s in self._slots) - len(self._queue))

    def _pump(self) -> None:
        """Queued tasks to idle workers, the lowest slot first (round-robin over the GPUs)."""
        while self._queue:
            slot = next((s for s in self._slots if s.state == "idle"), None)
            if slot is None:
                return
            self._dispatch(slot, self._queue.popleft())

    def _send_shared(self, slot: _Slot, keys) -> None:
        import pickle

        for key in sorted(keys):
            if key in slot.shared or key not in self._shared:
                continue
            data, deps = self._shared[key]
            self._send_shared(slot, deps - {key})
            slot.conn.send_bytes(pickle.dumps(("share", key)))
            slot.conn.send_bytes(data)
            slot.shared.add(key)

    def _dispatch(self, slot: _Slot, ticket: int) -> None:
        import pickle

        fn, task, _ = self._jobs[ticket]
        try:
            data, keys = _dumps((fn, task))
        except Exception as exc:  # noqa: BLE001 - the task cannot travel: it fails, the worker stays idle
            self._fail(ticket, f"the task cannot be sent to a worker ({type(exc).__name__}: {_one_line(exc)})")
            return
        try:
            self._send_shared(slot, keys)
            slot.conn.send_bytes(pickle.dumps(("run", ticket)))
            slot.conn.send_bytes(data)
        except OSError:  # the worker died while idle: another process takes its place, the task waits
            self._queue.appendleft(ticket)
            self._lost(slot)
            return
        slot.state, slot.ticket, slot.since = "busy", ticket, time.monotonic()
        slot.calls += 1
        self.stats["tasks"] += 1

    def _finish(self, ticket: int, value: Any) -> None:
        del self._jobs[ticket]
        self._attempts.pop(ticket, None)
        self._done.append((ticket, value))

    def _fail(self, ticket: int, message: str) -> None:
        self.stats["failed"] += 1
        on_error = self._jobs[ticket][2]
        if on_error is None:
            self._jobs.pop(ticket)
            self._attempts.pop(ticket, None)
            raise EvaluationFailed(f"task {ticket}: {message}")
        self._finish(ticket, on_error(self._jobs[ticket][1], message))

    def _receive(self, slot: _Slot) -> None:
        """Every message the worker has sent; a closed pipe is a dead worker."""
        import pickle

        while slot.conn is not None:
            closed = False
            try:
                if not slot.conn.poll():
                    return
                message = pickle.loads(slot.conn.recv_bytes())
            except (EOFError, OSError):
                closed = True
            except Exception as exc:  # noqa: BLE001 - a result that does not unpickle here
                message = ("err", slot.ticket, f"the result cannot be read in the driver "
                                               f"({type(exc).__name__}: {_one_line(exc)})")
            if closed:
                self._lost(slot)
                return
            kind = message[0]
            if kind == "ready":
                slot.pid = message[1]["pid"]
                slot.state, slot.since, slot.start_failures = "idle", time.monotonic(), 0
                continue
            ticket = message[1]
            if slot.state != "busy" or slot.ticket != ticket:  # cannot happen: one task per worker
                continue
            slot.state, slot.ticket = "idle", None
            if kind == "ok":
                self._finish(ticket, message[2])
            else:
                self._fail(ticket, message[2])

    def _step(self) -> None:
        """One round of waiting on the workers: results, deaths, restarts and timeouts."""
        from multiprocessing.connection import wait

        live = [s for s in self._slots if s.state in ("starting", "busy", "idle") and s.proc is not None]
        deadlines = [s.since + self.start_timeout_s for s in live if s.state == "starting"]
        if self.eval_timeout_s is not None:
            deadlines += [s.since + self.eval_timeout_s for s in live if s.state == "busy"]
        if not any(s.state in ("starting", "busy") for s in live):
            raise RuntimeError("ProcessExecutor: nothing is running")
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        watch: dict[Any, tuple[_Slot, Any]] = {}
        for s in live:
            watch[s.conn] = (s, s.proc)
            watch[s.proc.sentinel] = (s, s.proc)
        for obj in wait(list(watch), timeout):
            slot, proc = watch[obj]
            if slot.proc is not proc:  # already replaced in this round
                continue
            self._receive(slot)  # what it sent before it ended, if anything
            if slot.proc is proc and obj == proc.sentinel and slot.state != "down":
                self._lost(slot)
        now = time.monotonic()
        for slot in self._slots:
            if slot.state == "starting" and now - slot.since >= self.start_timeout_s:
                _stop_slot(slot)
                raise ExecutorError(f"executor: worker {slot.index} did not start within {self.start_timeout_s:g} s "
                                    "(is the machine overloaded?)")
            limit = self.eval_timeout_s
            if limit is not None and slot.state == "busy" and now - slot.since >= limit:
                ticket = slot.ticket
                self.stats["timeouts"] += 1
                _stop_slot(slot)
                self._spawn(slot)
                self._fail(ticket, f"timeout: evaluation ran longer than eval_timeout_s={limit:g} s and was cancelled")

    def close(self) -> None:
        """Stop the workers: idle ones are asked to exit, busy ones are killed."""
        if getattr(self, "_closed", True):
            return
        import pickle

        self._closed = True
        _LIVE_POOLS.discard(self)
        for slot in self._slots:
            if slot.proc is not None and slot.state == "idle":
                try:
                    slot.conn.send_bytes(pickle.dumps(("stop",)))
                except OSError:
                    pass
        deadline = time.monotonic() + 5.0
        for slot in self._slots:
            if slot.proc is not None and slot.state == "idle":
                slot.proc.join(max(0.0, deadline - time.monotonic()))
            _stop_slot(slot)  # kills what is still running
        for key in self._shared:
            _PROCESS_SHARED.pop(key, None)
        self._shared = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


# ----------------------------------------------------------------------------- Ray


def import_ray():
    """The ``ray`` module, or a one-line :class:`DependencyNotInstalled` with the install hint."""
    try:
        import ray
    except ImportError:
        raise DependencyNotInstalled(
            "executor.kind=ray needs Ray, which is not installed: pip install 'ray>=2.40'"
        ) from None
    return ray


def _one_line(text: Any, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_temp_root() -> str:
    """A base for Ray's temp dir: RAY_TMPDIR or the system temp dir, if short enough.

    Ray puts unix sockets under ``<temp>/session_<date>_<pid>/sockets/``, and a socket path
    may not exceed 107 bytes, so a long base falls back to /tmp.
    """
    base = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    # <base>/evr-XXXXXXXX/session_YYYY-MM-DD_hh-mm-ss_uuuuuu_PID/sockets/plasma_store
    longest = len(base) + len("/evr-xxxxxxxx") + len("/session_2026-01-01_00-00-00_000000_4194304") + 21
    return base if longest <= 107 and os.path.isdir(base) else "/tmp"


class LocalRay:
    """Ray started in this process for this machine only, stopped by :meth:`close`.

    Dashboard off, logs at ERROR and worker output not forwarded, temporary files in a
    fresh temp dir (removed on close), every service bound to 127.0.0.1, usage stats off.
    Token authentication stays on (Ray's default for local clusters) with a random token
    of this process, so nothing is written to ``~/.ray``.
    """

    def __init__(self, num_cpus: float | None = None, num_gpus: float | None = None,
                 object_store_memory: int | None = None):
        ray = import_ray()
        if ray.is_initialized():
            raise ExecutorError("Ray is already running in this process")
        self._env_set: list[str] = []
        for key, value in (("RAY_USAGE_STATS_ENABLED", "0"),):
            if key not in os.environ:
                os.environ[key] = value
                self._env_set.append(key)
        if (os.environ.get("RAY_AUTH_MODE", "token").lower() == "token"
                and not os.environ.get("RAY_AUTH_TOKEN") and not os.environ.get("RAY_AUTH_TOKEN_PATH")):
            os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
            self._env_set.append("RAY_AUTH_TOKEN")
        self.temp_dir = tempfile.mkdtemp(prefix="evr-", dir=_short_temp_root())
        kwargs: dict[str, Any] = dict(
            include_dashboard=False,
            _temp_dir=self.temp_dir,
            _node_ip_address="127.0.0.1",
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        if num_gpus is not None:
            kwargs["num_gpus"] = num_gpus
        if object_store_memory is not None:
            kwargs["object_store_memory"] = int(object_store_memory)
        try:
            # Ray's C++ start-up warnings (e.g. "Failed to determine local IP via external
            # connectivity" on a machine without a route out) go to fd 2, past Python's
            # logging: hidden; a failed start still raises, and is reported below
            with _fd2_silenced():
                ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise ExecutorError(f"could not start Ray on this machine: {_one_line(exc)}") from None

    def close(self) -> None:
        ray = import_ray()
        if ray.is_initialized():
            ray.shutdown()
        if getattr(self, "temp_dir", None):
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None
        for key in getattr(self, "_env_set", []):
            os.environ.pop(key, None)
        self._env_set = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_address(address: str) -> tuple[str, int] | None:
    """(host, port) of ``HOST:PORT`` (``ray://HOST:PORT`` too), None for ``auto``."""
    if address == "auto":
        return None
    text = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ExecutorError(f"executor.address: expected HOST:PORT (or 'auto'), got {address!r}")
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _fd2_silenced():
    """File descriptor 2 to /dev/null for the duration (Ray's C++ logs included)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _token_refused(address: str) -> ClusterUnreachable:
    return ClusterUnreachable(
        f"the Ray cluster at {address} refused this client's token: set RAY_AUTH_MODE=token and the "
        "cluster's token (RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH) in the environment of evonet"
    )


def _check_token(address: str) -> None:
    """Ask the cluster's GCS once whether it accepts this client, before ``ray.init``
    (which would retry for 20 s, logging a line a second, when the token is wrong)."""
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:  # another Ray layout: let ray.init report
        return
    try:
        with _fd2_silenced():
            GcsClient(address=address).cluster_id
    except AuthenticationError:
        raise _token_refused(address) from None
    except Exception:  # noqa: BLE001 - anything else: ray.init reports it
        return


def _connect(address: str, connect_timeout_s: float) -> None:
    """``ray.init(address)`` with a fast reachability check and one-line errors."""
    hostport = _check_address(address)
    if hostport is not None:
        try:
            socket.create_connection(hostport, timeout=connect_timeout_s).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ClusterUnreachable(
                f"cannot reach a Ray cluster at {address} ({reason}); start one with `ray start --head` "
                "or fix executor.address / --address / RAY_ADDRESS"
            ) from None
    ray = import_ray()
    if hostport is not None and not address.startswith("ray://"):
        _check_token(address)
    kwargs: dict[str, Any] = dict(address=address, logging_level=logging.ERROR, log_to_driver=False)
    if hostport is not None and _is_loopback(hostport[0]) and not address.startswith("ray://"):
        kwargs["_node_ip_address"] = "127.0.0.1"
    try:
        with _fd2_silenced():  # Ray's C++ start-up warnings (see LocalRay)
            ray.init(**kwargs)
    except Exception as exc:  # noqa: BLE001
        text = _one_line(exc)
        cause = exc.__cause__
        if "uthentication" in text or "uthentication" in str(cause):
            raise _token_refused(address) from None
        raise ClusterUnreachable(f"cannot connect to the Ray cluster at {address}: {text}") from None


class _EvalWorker:
    """A warm Ray worker (actor): runs ``fn(task)`` calls one at a time.

    It lives as long as the executor, so modules an evaluation imports (TensorFlow) are
    imported once per worker, and shared data is fetched once per worker. TensorFlow uses
    one thread per worker (:func:`evonet.tf_utils.import_keras`'s default) and, on a GPU,
    allocates memory as it needs it (``TF_FORCE_GPU_ALLOW_GROWTH``; JAX:
    ``XLA_PYTHON_CLIENT_PREALLOCATE=false``; PyTorch: expandable segments), as the process
    pool's workers do.
    """

    def __init__(self, gpus: float):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if gpus > 0:
            os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
            os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
            os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
        self.calls = 0

    def info(self) -> dict:
        import ray

        ctx = ray.get_runtime_context()
        return {
            "pid": os.getpid(),
            "node": ctx.get_node_id(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "calls": self.calls,
        }

    def run(self, fn: Callable[[Any], Any], task: Any) -> Any:
        self.calls += 1
        return fn(task)


_ACTOR_CLASS = None


def _actor_class():
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        _ACTOR_CLASS = import_ray().remote(_EvalWorker)
    return _ACTOR_CLASS


def _per_gpu(gpus_per_eval: float) -> int:
    """How many evaluations one GPU holds at once (fractions: floor(1 / g))."""
    return max(1, math.floor(1.0 / gpus_per_eval + 1e-9)) if gpus_per_eval <= 1 else 0


def _node_capacity(resources: dict, cpus: float, gpus: float) -> int:
    """How many workers of (cpus, gpus) one node can hold."""
    cap = 10**9
    if cpus > 0:
        cap = min(cap, math.floor(resources.get("CPU", 0.0) / cpus + 1e-9))
    if gpus > 0:
        n_gpu = math.floor(resources.get("GPU", 0.0) + 1e-9)
        cap = min(cap, n_gpu * _per_gpu(gpus) if gpus <= 1 else math.floor(n_gpu / gpus + 1e-9))
    return cap


class RayExecutor(_TicketExecutor):
    """Evaluate tasks on ``workers`` warm Ray workers, results in task order.

    Args:
        workers: number of worker processes (Ray actors), each running one task at a time.
        address: a running cluster (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``); None:
            ``RAY_ADDRESS`` if set, else Ray is started on this machine (:class:`LocalRay`)
            and stopped on :meth:`close`. If Ray is already initialised in this process,
            that instance is used and left running.
        cpus_per_eval, gpus_per_eval: resources each worker holds (fractional GPUs share a
            GPU: 0.25 lets four workers train on one GPU).
        eval_timeout_s: a task running longer is cancelled (its worker is killed and
            restarted) and scored with ``on_error``; None: no limit.
        max_retries: how many times a task whose worker died (killed, crashed, node lost)
            is run again before it is scored with ``on_error``.
        num_cpus, num_gpus: resources of a Ray started here (default: what Ray detects).
        connect_timeout_s: how long to wait for the cluster's port to answer.
        start_timeout_s: how long to wait for the workers to start.
    """

    name = "ray"

    def __init__(
        self,
        workers: int = 1,
        address: str | None = None,
        cpus_per_eval: float = 1.0,
        gpus_per_eval: float = 0.0,
        eval_timeout_s: float | None = None,
        max_retries: int = 3,
        *,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        connect_timeout_s: float = 5.0,
        start_timeout_s: float = 120.0,
    ):
        _check_arguments(workers, cpus_per_eval, gpus_per_eval, eval_timeout_s, max_retries)
        self.workers = workers
        self.cpus_per_eval = float(cpus_per_eval)
        self.gpus_per_eval = float(gpus_per_eval)
        self.eval_timeout_s = eval_timeout_s
        self.max_retries = max_retries
        self.start_timeout_s = start_timeout_s
        self.stats = collections.Counter()  # tasks, retries, timeouts, failed, restarts
        self._local: LocalRay | None = None
        self._actors: list[Any] = []
        self._info: list[dict | None] = []
        self._probing: dict[Any, int] = {}  # ref of an info() call -> worker coming back from a restart
        self._shared: list[Any] = []
        self._closed = False
        # the streaming state (submit / wait; map is built on it)
        self._idle: collections.deque = collections.deque()
        self._queue: collections.deque = collections.deque()  # tickets waiting for a worker
        self._jobs: dict[int, tuple] = {}  # ticket -> (fn, task, on_error), until it is done
        self._attempts: dict[int, int] = {}
        self._running: dict[Any, tuple[int, int, float]] = {}  # ref -> (ticket, worker, start)
        self._done: list[tuple[int, Any]] = []
        self._done_elsewhere: list[tuple[int, Any]] = []
        self._next_ticket = 0
        ray = import_ray()
        self._ray = ray
        if ray.is_initialized():
            self.mode = "attached"
        else:
            address = address or os.environ.get("RAY_ADDRESS") or None
            if address:
                _connect(address, connect_timeout_s)
                self.mode = f"cluster {address}"
            else:
                self._local = LocalRay(num_cpus=num_cpus, num_gpus=num_gpus)
                self.mode = "local"
        try:
            self._check_resources()
            self._start_workers()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_config(cls, ex) -> "RayExecutor":
        """From an :class:`~evonet.config.ExecutorConfig`."""
        return cls(
            workers=ex.workers, address=ex.address, cpus_per_eval=ex.cpus_per_eval, gpus_per_eval=ex.gpus_per_eval,
            eval_timeout_s=ex.eval_timeout_s, max_retries=ex.max_retries,
        )

    # ------------------------------------------------------------------ setup

    def _check_resources(self) -> None:
        ray = self._ray
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        cpus = sum(n.get("CPU", 0.0) for n in nodes)
        gpus = sum(n.get("GPU", 0.0) for n in nodes)
        where = f"the Ray cluster ({len(nodes)} node{'s' if len(nodes) != 1 else ''}) has {cpus:g} CPUs and {gpus:g} GPUs"
        c, g = self.cpus_per_eval, self.gpus_per_eval
        if g > 0 and gpus == 0:
            raise InsufficientResources(
                f"executor.gpus_per_eval: each evaluation asks for {g:g} GPU, but {where}; "
                "set executor.gpus_per_eval: 0 or use a cluster with GPUs"
            )
        if not any(_node_capacity(n, c, g) >= 1 for n in nodes):
            raise InsufficientResources(
                f"executor: no node can hold one evaluation of {c:g} CPU and {g:g} GPU; {where}"
            )
        capacity = sum(_node_capacity(n, c, g) for n in nodes)
        if capacity < self.workers:
            raise InsufficientResources(
                f"executor.workers: {self.workers} workers of {c:g} CPU and {g:g} GPU each do not fit, {where} "
                f"(room for {capacity}); lower executor.workers, executor.cpus_per_eval or executor.gpus_per_eval"
            )

    def _new_actor(self):
        return _actor_class().options(
            num_cpus=self.cpus_per_eval,
            num_gpus=self.gpus_per_eval,
            max_restarts=-1,  # a killed worker comes back; evonet itself bounds retries per task
            max_task_retries=0,  # a task is re-run by map(), never behind its back (timeouts)
            scheduling_strategy="SPREAD",
        ).remote(self.gpus_per_eval)

    def _start_workers(self) -> None:
        ray = self._ray
        self._actors = [self._new_actor() for _ in range(self.workers)]
        refs = [a.info.remote() for a in self._actors]
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=self.start_timeout_s)
        if pending:
            raise ExecutorError(
                f"executor: only {len(ready)} of {self.workers} Ray workers started within "
                f"{self.start_timeout_s:g} s (is the cluster busy?)"
            )
        self._info = ray.get(refs)
        self._idle = collections.deque(range(len(self._actors)))

    # ------------------------------------------------------------------ API

    def worker_info(self) -> list[dict]:
        """pid, node id, GPU ids, CUDA_VISIBLE_DEVICES and calls of every worker (live query)."""
        return self._ray.get([a.info.remote() for a in self._actors])

    def share(self, value: Any) -> RaySharedValue:
        """Put ``value`` into the object store once; tasks carry the handle (see :func:`resolve`)."""
        ref = self._ray.put(value)
        self._shared.append(ref)  # keeps the object alive as long as the executor
        return RaySharedValue(ref)

    def idle(self) -> int:
        return max(0, len(self._idle) - len(self._queue))

    def _pump(self) -> None:
        while self._queue and self._idle:
            ticket, a = self._queue.popleft(), self._idle.popleft()
            fn, task, _ = self._jobs[ticket]
            ref = self._actors[a].run.remote(fn, task)
            self._running[ref] = (ticket, a, time.monotonic())
            self.stats["tasks"] += 1

    def _finish(self, ticket: int, value: Any) -> None:
        del self._jobs[ticket]
        self._attempts.pop(ticket, None)
        self._done.append((ticket, value))

    def _fail(self, ticket: int, message: str) -> None:
        self.stats["failed"] += 1
        on_error = self._jobs[ticket][2]
        if on_error is None:
            self._jobs.pop(ticket)
            raise EvaluationFailed(f"task {ticket}: {message}")
        self._finish(ticket, on_error(self._jobs[ticket][1], message))

    def _probe(self, a: int) -> None:
        self._probing[self._actors[a].info.remote()] = a

    def _step(self) -> None:
        """One round of waiting on the workers: results, deaths, restarts and timeouts."""
        ray = self._ray
        from ray.exceptions import ActorDiedError, RayError, RayTaskError

        running, probing, limit = self._running, self._probing, self.eval_timeout_s
        wait_s = None
        if limit is not None and running:
            wait_s = max(0.0, min(t0 for _, _, t0 in running.values()) + limit - time.monotonic())
        refs = list(running) + list(probing)
        if not refs:  # queued tasks, no worker at all (cannot happen: every worker is idle, running or probed)
            raise RuntimeError("RayExecutor has no workers")
        if not running:  # every worker is coming back from a restart: wait, but not forever
            wait_s = self.start_timeout_s
        done, _ = ray.wait(refs, num_returns=1, timeout=wait_s)
        if not done and not running:
            for ticket in list(self._queue):
                self._fail(ticket, f"no Ray worker came back within {self.start_timeout_s:g} s (node lost?)")
            self._queue.clear()
            return
        for ref in done:
            if ref in probing:
                a = probing.pop(ref)
                try:
                    self._info[a] = ray.get(ref)
                    self._idle.append(a)
                except ActorDiedError:  # gone for good (e.g. its node left): a new worker
                    self._actors[a] = self._new_actor()
                    self._probe(a)
                except RayError:  # still restarting
                    time.sleep(0.1)
                    self._probe(a)
                continue
            ticket, a, _ = running.pop(ref)
            try:
                value = ray.get(ref)
            except RayTaskError as exc:  # the evaluation itself raised: no retry
                self._idle.append(a)
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                if self._jobs[ticket][2] is None:
                    self._jobs.pop(ticket)
                    raise EvaluationFailed(f"task {ticket}: {type(cause).__name__}: {_one_line(cause)}") from cause
                self._fail(ticket, f"{type(cause).__name__}: {_one_line(cause)}")
            except RayError as exc:  # the worker died under the task: run it again
                self.stats["restarts"] += 1
                self._probe(a)
                self._attempts[ticket] += 1
                if self._attempts[ticket] <= self.max_retries:
                    self.stats["retries"] += 1
                    self._queue.appendleft(ticket)
                else:
                    self._fail(ticket, f"worker lost {self._attempts[ticket]} times: {type(exc).__name__}: "
                                       f"{_one_line(exc, 200)}")
            else:
                self._idle.append(a)
                self._finish(ticket, value)
        if limit is not None:
            now = time.monotonic()
            for ref, (ticket, a, t0) in list(running.items()):
                if now - t0 >= limit:
                    del running[ref]
                    self.stats["timeouts"] += 1
                    ray.kill(self._actors[a], no_restart=False)  # cancels the call; the worker restarts
                    self._probe(a)
                    self._fail(ticket, f"timeout: evaluation ran longer than eval_timeout_s={limit:g} s and was cancelled")

    def close(self) -> None:
        """Stop the workers (and Ray, if this executor started it)."""
        if self._closed:
            return
        self._closed = True
        ray = self._ray
        if ray.is_initialized():
            for actor in self._actors:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        self._actors, self._shared = [], []
        if self._local is not None:
            self._local.close()
            self._local = None
        elif self.mode.startswith("cluster") and ray.is_initialized():
            ray.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if not self._closed and self._local is not None:
                self.close()
        except Exception:  # noqa: BLE001
            pass


def make_executor(cfg) -> LocalExecutor | ProcessExecutor | RayExecutor:
    """The executor an experiment's ``executor`` section describes."""
    if cfg.executor.kind == "local":
        check_local_gpus(cfg.executor.gpus_per_eval)  # gpus_per_eval > 0 on a machine without a GPU: an error
        return LocalExecutor()
    if cfg.executor.kind == "processes":
        return ProcessExecutor.from_config(cfg.executor)
    if cfg.executor.kind == "ray":
        return RayExecutor.from_config(cfg.executor)
    raise ValueError(f"unknown executor {cfg.executor.kind!r}")
