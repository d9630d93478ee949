"""``evonet bench``: throughput and equal-budget benchmarks (``snake``, ``search``, ``ray``, ``gpu``)."""

from __future__ import annotations

import os
import platform
import time


#: vector instruction sets, widest first: :func:`machine` names the first the CPU has
SIMD_LEVELS = ("avx512f", "avx2", "avx", "sse4_2", "sse2", "asimd", "neon")


def _cpuinfo(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's block of ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def machine(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """Where a benchmark ran, written beside its figures (they only compare within one machine):
    ``cpu`` (the model name from ``/proc/cpuinfo``, else ``platform.processor()``), ``cpu_id``
    (x86 family and model numbers, which tell apart CPU generations that a virtual machine
    names alike, e.g. "AMD EPYC"; ``None`` where unknown), ``simd`` (the widest vector
    instruction set of :data:`SIMD_LEVELS` the CPU has; ``None`` where unknown), ``cpus``
    (logical CPUs this process may use), ``system`` and ``date`` (UTC)."""
    info = _cpuinfo(cpuinfo)
    cpu = info.get("model name") or info.get("Model") or ""
    cpu_id = None
    if "cpu family" in info and "model" in info:
        cpu_id = f"family {info['cpu family']} model {info['model']}"
    flags = set((info.get("flags") or info.get("Features") or "").split())
    simd = next((level for level in SIMD_LEVELS if level in flags), None)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return {"cpu": cpu or platform.processor() or platform.machine(), "cpu_id": cpu_id, "simd": simd, "cpus": cpus,
            "system": f"{platform.system()} {platform.machine()}", "date": time.strftime("%Y-%m-%d", time.gmtime())}
