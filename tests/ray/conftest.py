"""Fixtures of the tests that start Ray.

They run only inside a loopback-only network namespace (scripts/test.sh runs them under
../shared/bin/loopback-only, i.e. ``unshare --net`` with just ``lo`` up): Ray binds its
services to every interface, and there nothing can be reached from outside. Elsewhere
they are skipped.
"""

import os
import socket
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def loopback_only() -> bool:
    """True when the only network interface of this namespace is the loopback."""
    try:
        return [name for _, name in socket.if_nameindex()] == ["lo"]
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    if loopback_only():
        return
    skip = pytest.mark.skip(reason="starts Ray: run inside a loopback-only network namespace "
                                   "(scripts/test.sh, or ../shared/bin/loopback-only pytest -m ray)")
    for item in items:
        if "ray" in item.keywords and Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(skip)


def worker_env(extra: dict | None = None) -> dict:
    """The environment for Ray processes and evonet subprocesses: this checkout and
    tests/ray importable (workers import ray_helpers by name)."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"  # also hides the "failed call to cuInit" of CPU-only machines
    env.update(extra or {})
    return env


@pytest.fixture(scope="session")
def ray_session():
    """Ray started once in this process for the tests that use it: 4 CPUs and 2 fake GPUs.

    A RayExecutor built while it runs attaches to it (and leaves it running)."""
    os.environ.update({k: v for k, v in worker_env().items() if k in ("PYTHONPATH", "RAY_USAGE_STATS_ENABLED")})
    from evonet.executors import LocalRay

    local = LocalRay(num_cpus=4, num_gpus=2, object_store_memory=300 * 2**20)
    yield local
    local.close()


@pytest.fixture
def evonet_env(tmp_path):
    return worker_env({"KERAS_HOME": str(tmp_path / "keras"), "MPLCONFIGDIR": str(tmp_path / "mpl")})


@pytest.fixture
def python():
    return sys.executable
