"""The simulated executor: a virtual clock, list scheduling, deterministic figures."""

import json

import numpy as np
import pytest

from evonet.bench.simulate import simulate_generational
from evonet.cli import main
from evonet.executors import SimulatedExecutor

from tests.contracts.executor import ExecutorContract


@pytest.fixture
def executor():
    with SimulatedExecutor(workers=2, durations=[1.0, 2.0], seed=0) as ex:
        yield ex


class TestSimulatedExecutor(ExecutorContract):
    pass


def test_list_scheduling_on_the_virtual_clock():
    ex = SimulatedExecutor(workers=2, durations=[3.0])  # every task takes 3 s
    assert ex.map(lambda x: x + 1, [1, 2, 3]) == [2, 3, 4]
    # two at once, the third after them: 6 s of wall time, 9 s of work on 2 x 6 worker-seconds
    assert ex.clock == 6.0 and ex.busy == 9.0 and ex.utilization == pytest.approx(0.75)
    ex.map(lambda x: x, [1, 2])  # a barrier: the next batch starts at 6 s
    assert ex.clock == 9.0 and ex.utilization == pytest.approx(15 / 18)


def test_failures_are_reported_like_lost_workers():
    ex = SimulatedExecutor(workers=4, durations=[1.0], failure_rate=0.5, seed=1)
    out = ex.map(lambda x: x, list(range(40)), on_error=lambda task, msg: msg)
    lost = [o for o in out if o == "simulated worker failure"]
    assert 5 < len(lost) < 35 and ex.failures == len(lost)
    assert [o for o in out if o != "simulated worker failure"] == [i for i, o in enumerate(out) if o == i]


def test_a_simulation_is_deterministic_and_the_barrier_costs_utilization():
    durations = 1.5 * np.exp(0.2 * np.random.default_rng(0).standard_normal(1000))
    a, b = (simulate_generational(64, durations, generations=3) for _ in range(2))
    drop = ("overhead_ms_per_result",)  # real time, the only figure that varies
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    assert 0.3 < a["utilization"] < 0.9  # each generation waits for its slowest training
    flat = simulate_generational(8, [2.0], generations=2, population=16)
    assert flat["utilization"] > a["utilization"]


@pytest.mark.parametrize("argv, fragment", [
    (["--workers", "16,x"], "--workers: expected comma-separated integers"),
    (["--workers", "0"], "--workers: worker counts must be >= 1"),
    (["--failure-rate", "1.5"], "--failure-rate: must be in [0, 1)"),
    (["--from", "/no/such/run"], "--from:"),
])
def test_bad_arguments_are_one_line_errors(capsys, argv, fragment):
    assert main(["bench", "simulate", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]


def test_cli_json(capsys):
    assert main(["bench", "simulate", "--workers", "4,16", "--generations", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["strategy"], r["workers"]) for r in out["runs"]] == [
        (s, w) for w in (4, 16) for s in ("generational", "aging greedy", "aging reproducible")]
    assert all(0 < r["utilization"] <= 1 for r in out["runs"])
    # the same jobs per worker: the asynchronous runs do not wait for a generation's slowest
    for w in (4, 16):
        rows = {r["strategy"]: r for r in out["runs"] if r["workers"] == w}
        assert rows["aging greedy"]["utilization"] > rows["generational"]["utilization"]
