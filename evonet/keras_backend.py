"""Choosing and configuring Keras 3's backend: TensorFlow, JAX or PyTorch, one thread each.

Keras reads its backend once, when ``keras`` is first imported (``KERAS_BACKEND``), so the
choice must be made before that import, in every process that builds models. evonet's code
that needs Keras calls :func:`configure_backend` (through :func:`evonet.tf_utils.import_keras`),
which

* puts the backend in force (:func:`use_backend`): ``name``, else the ``KERAS_BACKEND``
  environment variable, else ``tensorflow`` is written to ``KERAS_BACKEND`` before Keras is
  imported; a Keras imported already keeps its backend, and when another one is asked for,
  :class:`BackendMismatch` says so instead of silently training on the wrong one;
* gives the backend the one-thread CPU discipline of an evonet worker (many small
  trainings side by side, one per core): TensorFlow's two thread pools
  (:func:`evonet.tf_utils.configure_tensorflow`); JAX's CPU client with an intra-op pool of
  one thread (``XLA_FLAGS`` gets ``--xla_cpu_multi_thread_eigen=false
  intra_op_parallelism_threads=1``, and because jaxlib 0.10 sizes that pool from the CPU
  affinity when the client is created, the client is created while the calling thread's
  affinity is narrowed to one CPU, then every thread gets the process's affinity back);
  PyTorch's intra-op and inter-op pools (``torch.set_num_threads``,
  ``torch.set_num_interop_threads``).

:func:`check_backend` validates a name before any work (a one-line
:class:`~evonet.core.errors.ConfigError` naming the setting and the fix: an unknown name, a
backend that is not installed, a Keras already imported with another backend).
:func:`seed_keras`, :func:`save_model` and :func:`load_model` are Keras's own, without the
TensorFlow import Keras does on the other backends whenever TensorFlow is installed.
Importing this module imports none of TensorFlow, JAX, PyTorch or Keras.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from types import ModuleType
from typing import Iterator

import numpy as np

from evonet.core.errors import ConfigError, EvonetError

#: the Keras 3 backends evonet trains on
BACKENDS = ("tensorflow", "jax", "torch")

#: how to install each backend (the error message's fix)
INSTALL = {
    "tensorflow": 'pip install "tensorflow>=2.16"',
    "jax": 'pip install "jax[cpu]" (or pip install -e ".[jax]")',
    "torch": 'pip install torch --index-url https://download.pytorch.org/whl/cpu (or pip install -e ".[torch]")',
}

#: the XLA flags of a one-thread JAX (appended to XLA_FLAGS before jax is imported)
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

_LOCK = threading.RLock()
_CONFIGURED: dict[str, object] = {}


class BackendMismatch(EvonetError):
    """Keras is already imported in this process with another backend than the one asked for."""


def requested_backend(name: str | None = None) -> str:
    """The backend a process uses: ``name``, else ``KERAS_BACKEND``, else the backend of a Keras
    imported already (from Keras's own ``keras.json``), else ``tensorflow``."""
    return str(name or os.environ.get("KERAS_BACKEND") or loaded_backend() or "tensorflow")


def loaded_backend() -> str | None:
    """The backend of the Keras already imported in this process (None: Keras is not imported)."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return str(keras.backend.backend())
    except Exception:  # noqa: BLE001 - a Keras still being imported
        return None


def check_backend(name: str | None, field: str = "search.backend") -> str:
    """The backend ``name`` resolves to (see :func:`requested_backend`), validated.

    Raises a one-line :class:`ConfigError` naming ``field`` (or ``KERAS_BACKEND``, when the
    name came from the environment) and the fix: an unknown name, a backend whose package is
    not installed, a Keras already imported in this process with another backend."""
    where = field if name else "KERAS_BACKEND"
    backend = requested_backend(name)
    if backend not in BACKENDS:
        raise ConfigError(f"{where}: unknown Keras backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if importlib.util.find_spec(backend) is None:
        raise ConfigError(f"{where}: backend {backend} is not installed in this Python; {INSTALL[backend]}")
    loaded = loaded_backend()
    if loaded is not None and loaded != backend:
        raise ConfigError(f"{where}: {backend}, but Keras is already imported with the {loaded} backend in this "
                          f"process; set KERAS_BACKEND={backend} before importing keras, or {field}: {loaded}")
    return backend


def use_backend(name: str | None = None) -> str:
    """Put backend ``name`` (see :func:`requested_backend`) in force in this process.

    Before Keras is imported: sets ``KERAS_BACKEND``. After: checks that the imported Keras
    runs that backend; raises :class:`BackendMismatch` otherwise. Returns the backend."""
    backend = requested_backend(name)
    with _LOCK:
        loaded = loaded_backend()
        if loaded is None:
            os.environ["KERAS_BACKEND"] = backend
        elif loaded != backend:
            raise BackendMismatch(f"search.backend: {backend}, but Keras is already imported with the {loaded} "
                                  f"backend in this process (pid {os.getpid()}); start it with "
                                  f"KERAS_BACKEND={backend}")
    return backend


def _xla_flags_one_thread() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    missing = [f for f in XLA_ONE_THREAD.split() if f.split("=")[0] not in flags]
    if missing:
        os.environ["XLA_FLAGS"] = " ".join([flags, *missing]).strip()


def _thread_ids() -> set[int]:
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:  # no /proc: only this thread is known
        return set()


def _configure_jax(threads: int) -> int:
    """A JAX CPU client with ``threads`` intra-op threads (0: one per CPU); returns the count
    asked for, or 0 when JAX's client existed already (its pool cannot change any more)."""
    if threads == 1:
        _xla_flags_one_thread()
    import jax
    from jax._src import xla_bridge

    if getattr(xla_bridge, "_backends", None):  # a client exists: its pools are fixed
        return 0
    narrow = threads >= 1 and hasattr(os, "sched_getaffinity") and hasattr(os, "sched_setaffinity")
    mask = os.sched_getaffinity(0) if narrow else None
    if mask is not None and len(mask) > threads:
        before = _thread_ids()
        os.sched_setaffinity(0, set(sorted(mask)[:threads]))
        try:
            jax.devices()  # creates the client: its intra-op pool is sized from this affinity
            # and compiles once: the compiler's own thread pool is sized at its first use
            jax.jit(lambda v: v + 1)(np.float32(0)).block_until_ready()
        finally:
            os.sched_setaffinity(0, mask)
            for tid in _thread_ids() - before:  # the threads JAX started meanwhile inherited the narrow mask
                try:
                    os.sched_setaffinity(tid, mask)
                except OSError:  # a thread that ended meanwhile
                    pass
    else:
        jax.devices()
    return threads


def _configure_torch(threads: int) -> int:
    import torch

    if threads >= 1:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # inter-op parallel work already started: that pool is fixed
            pass
    return int(torch.get_num_threads())


def configure_backend(name: str | None = None, threads: int | None = 1, *, quiet: bool = True) -> ModuleType:
    """The ``keras`` module on backend ``name`` (:func:`use_backend`), with ``threads`` CPU
    threads per pool on that backend (``None`` or 0: the backend's own choice).

    The first call of a process configures the backend; later calls return the same module
    (the thread pools of a started backend cannot change). A Keras imported before by
    someone else is configured as far as it still can be and returned, provided it runs the
    backend asked for."""
    backend = loaded_backend() if name is None and "keras" in sys.modules else None
    backend = use_backend(name if backend is None else backend)
    wanted = int(threads or 0)
    with _LOCK:
        if backend not in _CONFIGURED:
            if backend == "tensorflow":
                from evonet.tf_utils import configure_tensorflow

                _CONFIGURED[backend] = configure_tensorflow(threads, quiet=quiet)
            elif backend == "jax":
                _CONFIGURED[backend] = _configure_jax(wanted)
            elif backend == "torch":
                _CONFIGURED[backend] = _configure_torch(wanted)
            else:
                _CONFIGURED[backend] = None
    import keras

    return keras


def threads_in_force(backend: str | None = None) -> object:
    """What :func:`configure_backend` set up for ``backend`` (None: not configured yet):
    TensorFlow ``(intra_op, inter_op)``, JAX the intra-op pool asked for (0: not evonet's
    choice), PyTorch ``torch.get_num_threads()``."""
    return _CONFIGURED.get(requested_backend(backend))


@contextlib.contextmanager
def tensorflow_unseen() -> Iterator[None]:
    """Keras's optional TensorFlow hooks off for the duration, on the JAX and PyTorch backends.

    Keras imports TensorFlow whenever it is installed, whatever the backend: to seed
    ``tf.data`` (``keras.utils.set_random_seed``) and to recognise TensorFlow objects while
    saving a model. Neither applies to evonet's trainings, and the import costs seconds and
    TensorFlow's threads, so within this context Keras sees TensorFlow as not installed.
    Nothing changes on the TensorFlow backend, or once TensorFlow is imported anyway."""
    lazy = None
    if loaded_backend() != "tensorflow" and "tensorflow" not in sys.modules:
        try:
            from keras.src.utils import module_utils

            lazy = module_utils.tensorflow
        except (ImportError, AttributeError):  # another Keras layout: its own behaviour
            lazy = None
    if lazy is None or not hasattr(lazy, "_available"):
        yield
        return
    with _LOCK:
        saved = lazy._available
        lazy._available = False
        try:
            yield
        finally:
            lazy._available = saved


def seed_keras(keras, seed: int) -> None:
    """``keras.utils.set_random_seed(seed)`` (Python, NumPy, the backend, Keras's global seed
    generator), without the TensorFlow import that Keras does on the other backends
    (:func:`tensorflow_unseen`)."""
    with tensorflow_unseen():
        keras.utils.set_random_seed(int(seed))


def save_model(model, path) -> None:
    """``model.save(path)`` (a ``.keras`` file, loadable under every backend), without
    importing TensorFlow on the other backends (:func:`tensorflow_unseen`)."""
    with tensorflow_unseen():
        model.save(path)


def load_model(path, **kwargs):
    """``keras.models.load_model(path)`` on this process's backend (:func:`configure_backend`),
    without importing TensorFlow on the other backends (:func:`tensorflow_unseen`)."""
    keras = configure_backend()
    with tensorflow_unseen():
        return keras.models.load_model(path, **kwargs)
