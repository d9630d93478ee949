"""``evonet bench``: throughput and equal-budget benchmarks (``snake``, ``search``, ``ray``, ``gpu``)."""

from __future__ import annotations

import os
import platform
import time


def machine() -> dict:
    """Where a benchmark ran, written beside its figures (they only compare within one machine):
    ``cpu`` (the model name from ``/proc/cpuinfo``, else ``platform.processor()``), ``cpus``
    (logical CPUs this process may use), ``system`` and ``date`` (UTC)."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return {"cpu": cpu or platform.processor() or platform.machine(), "cpus": cpus,
            "system": f"{platform.system()} {platform.machine()}", "date": time.strftime("%Y-%m-%d", time.gmtime())}
