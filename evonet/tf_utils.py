"""Importing and configuring TensorFlow / Keras on demand.

TensorFlow takes seconds to import, so evonet never imports it at module level: code
that needs Keras calls :func:`import_keras`, which configures Keras's backend first (on
TensorFlow with :func:`configure_tensorflow`'s defaults; JAX and PyTorch get the same
one-thread discipline, :mod:`evonet.keras_backend`) unless the program already did so.

Configuration happens once per process. TensorFlow fixes its thread pools when its
runtime starts (at the first op), so the thread counts can only be chosen before that;
:func:`configure_tensorflow` is idempotent and reports the counts actually in force.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from types import ModuleType
from typing import Iterator

_LOCK = threading.Lock()
_CONFIGURED: tuple[int, int] | None = None


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration (C++ logs included).

    TensorFlow's native libraries log through abseil before abseil's logging is
    initialised, and such messages ignore ``TF_CPP_MIN_LOG_LEVEL``; only redirecting the
    descriptor silences them. Python exceptions raised inside still propagate.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters)
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def configure_tensorflow(threads: int | None = 1, *, quiet: bool = True) -> tuple[int, int]:
    """Import TensorFlow with ``threads`` intra-op and inter-op threads and quiet logs.

    Args:
        threads: size of both TensorFlow thread pools; ``None`` or 0 leaves TensorFlow's
            own choice (one thread per core). Evonet evaluates many tiny networks in
            parallel processes, so one thread per process is the default.
        quiet: set ``TF_CPP_MIN_LOG_LEVEL=3`` (unless the environment already sets it; 3
            also hides the "failed call to cuInit" error of CPU-only machines),
            silence the native start-up messages printed while TensorFlow is imported,
            and lower the Python ``tensorflow`` logger to ERROR.

    Returns:
        ``(intra_op, inter_op)`` thread counts in force (0 means "TensorFlow's choice").

    Idempotent: a second call returns the counts of the first. When TensorFlow's runtime
    was already started by someone else, the counts cannot change any more and the ones
    in force are returned unchanged, so callers that care can compare.
    """
    global _CONFIGURED
    with _LOCK:
        if _CONFIGURED is not None:
            return _CONFIGURED
        if quiet:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if "tensorflow" not in sys.modules and quiet:
            with _stderr_silenced():
                import tensorflow as tf
        else:
            import tensorflow as tf
        if quiet:
            tf.get_logger().setLevel("ERROR")
        wanted = int(threads or 0)
        for getter, setter in (
            (tf.config.threading.get_intra_op_parallelism_threads, tf.config.threading.set_intra_op_parallelism_threads),
            (tf.config.threading.get_inter_op_parallelism_threads, tf.config.threading.set_inter_op_parallelism_threads),
        ):
            if getter() != wanted:
                try:
                    setter(wanted)
                except RuntimeError:  # runtime already initialised: pools are fixed
                    pass
        _CONFIGURED = (
            int(tf.config.threading.get_intra_op_parallelism_threads()),
            int(tf.config.threading.get_inter_op_parallelism_threads()),
        )
        return _CONFIGURED


def import_keras() -> ModuleType:
    """The ``keras`` module, its backend configured first (one thread per pool): the backend
    of a Keras already imported, else ``KERAS_BACKEND``, else TensorFlow
    (:func:`evonet.keras_backend.configure_backend`)."""
    from evonet.keras_backend import configure_backend

    return configure_backend()
