"""The Executor contract over the Ray executor (2 warm workers)."""

import pytest

from evonet.executors import RayExecutor

from tests.contracts.executor import ExecutorContract

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def executor(ray_session):
    with RayExecutor(workers=2) as ex:
        yield ex


class TestRayExecutor(ExecutorContract):
    pass
