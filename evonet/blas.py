"""The same bits on every x86-64 CPU: NumPy's BLAS pinned to one kernel family, one thread.

CMA-ES moves its distribution with matrix products and a symmetric eigendecomposition
(``numpy.linalg.eigh``), which NumPy hands to OpenBLAS. OpenBLAS picks its kernels by CPU at
load time (AVX-512 kernels on recent Intel, AVX2 ones on AMD Zen and older Intel, ...), and
with several threads it splits some reductions differently: each choice rounds the last
bits differently, and an evolution that starts from different bits ends elsewhere (measured:
a 6-generation CMA-ES run gives three different logbooks with the SkylakeX, the Haswell and
the Prescott kernels, and another with Haswell on 1 and on 2 threads).

:func:`pin` sets ``OPENBLAS_CORETYPE=Haswell`` (the AVX2 kernels, which every x86-64 CPU
with AVX2 runs: Intel since 2013, AMD since 2015) and ``OPENBLAS_NUM_THREADS=1`` before
NumPy loads OpenBLAS. ``import evonet`` calls it, so it takes effect where evonet is
imported before NumPy: the ``evonet`` command always, a script that imports evonet first.
A variable already set is left as it is; ``EVONET_BLAS_PIN=0`` turns the pin off. Where
NumPy was loaded first, nothing changes and :func:`describe` (written to ``run.json``)
says which kernels the run used. The snake evaluation itself uses no BLAS at all
(:mod:`evonet.envs.snake.fused`); the GA's operators are elementwise.
"""

from __future__ import annotations

import os
import platform
import sys

#: the variables :func:`pin` sets (unless already set)
PINNED = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "1"}


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return " avx2" in line
    except OSError:
        pass
    return False


def pin() -> bool:
    """Set :data:`PINNED` in the environment if NumPy is not loaded yet, the CPU is x86-64
    with AVX2 (Linux) and ``EVONET_BLAS_PIN`` is not ``0``. Returns whether it did."""
    if os.environ.get("EVONET_BLAS_PIN", "1") == "0" or "numpy" in sys.modules:
        return False
    if platform.machine().lower() not in ("x86_64", "amd64") or not _has_avx2():
        return False
    for key, value in PINNED.items():
        os.environ.setdefault(key, value)
    return True


def describe() -> dict:
    """The BLAS NumPy uses: ``{"library", "architecture", "threads"}`` (``None`` where unknown)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - a declared dependency
        return {"library": None, "architecture": None, "threads": None}
    import numpy  # noqa: F401  (loads its BLAS)

    for info in threadpool_info():
        if info.get("user_api") == "blas":
            return {"library": info.get("internal_api"), "architecture": info.get("architecture"),
                    "threads": info.get("num_threads")}
    return {"library": None, "architecture": None, "threads": None}
