"""The Executor contract over the in-process executor (Ray's: tests/ray/test_contract_ray.py)."""

import pytest

from evonet.executors import LocalExecutor

from tests.contracts.executor import ExecutorContract


@pytest.fixture
def executor():
    with LocalExecutor() as ex:
        yield ex


class TestLocalExecutor(ExecutorContract):
    pass
