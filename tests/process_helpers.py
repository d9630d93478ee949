"""Test-only tasks for the process pool (tests/test_process_executor.py).

Worker processes import this module by name (cloudpickle sends these functions by
reference), so it stays light: no pytest, no TensorFlow."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def square(x):
    return x * x


def fails_on_three(x):
    if x == 3:
        raise ValueError("three is not allowed")
    return x


def sleep_then_return(seconds):
    time.sleep(seconds)
    return seconds


def exit_hard(code):
    """The worker dies under the task (as a crash in native code would)."""
    os._exit(code)


def killed_once(task):
    """task = (marker file, value): the first run SIGKILLs its own worker, a re-run returns value."""
    marker, value = task
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)
    return value, os.getpid()


def env_probe(seconds):
    """What a worker's environment says (GPU pinning, allocators, threads), after a short sleep
    so that every idle worker takes one of the tasks submitted together."""
    time.sleep(seconds)
    keys = ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "XLA_PYTHON_CLIENT_PREALLOCATE",
            "PYTORCH_CUDA_ALLOC_CONF", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")
    # the environment the process was started with (Linux): set before the interpreter imported anything
    start = dict(x.split("=", 1) for x in Path("/proc/self/environ").read_bytes().decode().split("\0") if "=" in x)
    return {"pid": os.getpid(), **{k: os.environ.get(k) for k in keys},
            "at_start": {k: start.get(k) for k in keys}}


def shared_probe(task):
    """task = (handle, i): read the shared array; report this process's fetches of it."""
    from evonet.executors import SHARED_FETCHES, resolve

    handle, i = task
    arr = resolve(handle)
    return {"i": i, "pid": os.getpid(), "fetches": SHARED_FETCHES[handle.key], "sum": float(arr.sum())}


def fetch_counts(seconds):
    """This worker's pid and how many times it received each shared value."""
    from evonet.executors import SHARED_FETCHES

    time.sleep(seconds)
    return {"pid": os.getpid(), "fetches": dict(SHARED_FETCHES)}
