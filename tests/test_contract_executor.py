"""The Executor contract over the in-process executor and the process pool (Ray's:
tests/ray/test_contract_ray.py)."""

import pytest

from evonet.executors import LocalExecutor, ProcessExecutor

from tests.contracts.executor import ExecutorContract


@pytest.fixture
def executor():
    with LocalExecutor() as ex:
        yield ex


@pytest.fixture(scope="module")
def process_pool():
    with ProcessExecutor(workers=2) as ex:  # 2 warm spawned workers for every test of the class
        yield ex


class TestLocalExecutor(ExecutorContract):
    pass


class TestProcessExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, process_pool):
        return process_pool
