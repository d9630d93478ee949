"""The Executor contract: every executor passes these (see evonet/core/executor.py).

The task functions live in this module so that Ray workers can import them by name."""

import numpy as np

from evonet import seeding
from evonet.core.executor import Executor, resolve
from evonet.loop import run_evolution


def square(x):
    return x * x


def fails_on_three(x):
    if x == 3:
        raise ValueError("three is refused")
    return x


def add_shared(task):
    shared, x = task
    return float(np.sum(resolve(shared))) + x


def sphere(genomes, seeds):
    return -(genomes.astype(np.float64) ** 2).sum(axis=1)


class ExecutorContract:
    """Subclass with an ``executor`` fixture (an open executor of 2 workers)."""

    def test_is_an_executor(self, executor):
        assert isinstance(executor, Executor) and executor.workers >= 1

    def test_results_in_task_order(self, executor):
        assert executor.map(square, list(range(7))) == [x * x for x in range(7)]
        assert executor.map(square, []) == []

    def test_a_failing_task_gives_on_error_and_the_batch_goes_on(self, executor):
        out = executor.map(fails_on_three, [1, 2, 3, 4], on_error=lambda task, msg: ("failed", task, msg))
        assert out[:2] == [1, 2] and out[3] == 4
        assert out[2][:2] == ("failed", 3) and "three is refused" in out[2][2]

    def test_on_result_fires_once_per_task(self, executor):
        seen = []
        executor.map(square, [1, 2, 3], on_result=seen.append)
        assert sorted(seen) == [1, 4, 9]

    def test_streamed_tasks_come_back_by_ticket(self, executor):
        assert 0 <= executor.idle() <= executor.workers
        tickets = {executor.submit(square, x): x for x in range(5)}
        bad = executor.submit(fails_on_three, 3, lambda task, msg: ("failed", task, msg))
        assert len(set(tickets) | {bad}) == 6  # every ticket is new
        got = {}
        while len(got) < 6:
            done = executor.wait()
            assert done and all(t not in got for t, _ in done)
            got.update(done)
        assert {t: got[t] for t in tickets} == {t: x * x for t, x in tickets.items()}
        assert got[bad][:2] == ("failed", 3) and "three is refused" in got[bad][2]
        assert executor.map(square, [4, 5]) == [16, 25]  # map still works after streaming

    def test_shared_values_resolve_in_tasks(self, executor):
        handle = executor.share(np.arange(10.0))
        assert executor.map(add_shared, [(handle, 1.0), (handle, 2.0)]) == [46.0, 47.0]

    def test_a_run_gives_the_results_of_the_local_executor(self, executor):
        from evonet import config
        from evonet.executors import LocalExecutor
        from evonet.problems.function import FunctionProblem
        from evonet.strategies.ga import make_strategy

        def one(ex, chunk):
            ga = config.from_dict({"ga": {"algorithm": "cma_es", "population": 8, "final_games": 1}}).ga
            problem = FunctionProblem(sphere, 5, run_seed=2)
            genomes = problem.init_genomes(seeding.generator(2, seeding.PURPOSE_INIT), 8)
            strategy = make_strategy(ga, genomes, problem.low, problem.up, seeding.generator(2, seeding.PURPOSE_STRATEGY))
            return run_evolution(strategy, problem, ex, 4, chunk, 1)

        mine, local = one(executor, 3), one(LocalExecutor(), 0)
        assert [r["best"] for r in mine.logbook] == [r["best"] for r in local.logbook]
        np.testing.assert_array_equal(mine.best_genome, local.best_genome)
