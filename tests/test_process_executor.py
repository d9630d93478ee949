"""ProcessExecutor (``executor.kind: processes``): warm spawned workers on this machine, no
Ray. Task order, errors, timeouts, killed workers and retries, shared data sent once per
worker, GPU pinning (simulated with CUDA_VISIBLE_DEVICES: the pinning is environment
variables), the no-GPU error, and the same results as the in-process executor. The contract
suite runs over it in tests/test_contract_executor.py."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evonet import cli, config, seeding
from evonet.core.async_loop import run_async
from evonet.executors import (EvaluationFailed, ExecutorError, GpuInventory, LocalExecutor, ProcessExecutor,
                              ProcessSharedValue, gpu_placement, make_executor, resolve, visible_gpus)
from evonet.loop import run_evolution
from evonet.problems import make_problem
from evonet.problems.function import FunctionProblem
from evonet.strategies.ga import make_strategy
from evonet.strategy import GeneticAlgorithm

from tests import process_helpers as h

ROOT = Path(__file__).resolve().parents[1]
TINY = ["ga.algorithm=mu_plus_lambda", "ga.population=8", "ga.generations=3", "snake.games=2", "ga.final_games=4",
        "ga.hall_of_fame=3", "eval_games=20"]
TIMING = {"seconds", "evals_per_s", "env_steps_per_s", "elapsed", "utilization"}


def strip(logbook):
    return [{k: v for k, v in rec.items() if k not in TIMING} for rec in logbook]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_gone(pids, seconds=10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def pool():
    """2 warm workers shared by the tests that leave them as they found them."""
    with ProcessExecutor(workers=2) as ex:
        yield ex


# ----------------------------------------------------------------------------- tasks, errors, streaming


def test_results_in_task_order_and_errors(pool):
    assert pool.name == "processes" and pool.workers == 2
    assert pool.map(h.square, range(20)) == [x * x for x in range(20)]
    out = pool.map(h.fails_on_three, range(6), on_error=lambda task, msg: ("failed", task, msg))
    assert out[:3] == [0, 1, 2] and out[4:] == [4, 5]
    assert out[3] == ("failed", 3, "ValueError: three is not allowed")
    with pytest.raises(EvaluationFailed, match="ValueError: three is not allowed"):
        pool.map(h.fails_on_three, range(6))
    seen = []
    assert pool.map(h.square, [3, 4], on_result=seen.append) == [9, 16] and sorted(seen) == [9, 16]
    k = 3  # closures and lambdas travel by value (cloudpickle)
    assert pool.map(lambda x: x * k, [1, 2]) == [3, 6]
    out = pool.map(h.square, [object.__new__(type("Local", (), {"__reduce__": lambda s: 1 / 0}))],
                   on_error=lambda task, msg: msg)
    assert out[0].startswith("the task cannot be sent to a worker (ZeroDivisionError")
    info = pool.worker_info()
    assert [i["slot"] for i in info] == [0, 1] and all(i["state"] == "idle" for i in info)
    assert len({i["pid"] for i in info}) == 2 and os.getpid() not in {i["pid"] for i in info}


def test_a_free_worker_takes_the_next_streamed_task_at_once():
    with ProcessExecutor(workers=2) as ex:
        assert ex.idle() == 2
        slow = ex.submit(h.sleep_then_return, 2.0)
        assert ex.idle() == 1  # one worker busy, one free
        fast = [ex.submit(h.square, x) for x in range(4)]
        got, order = {}, []
        while len(got) < 5:
            done = ex.wait()
            got.update(done)
            order += [t for t, _ in done]
        assert got[slow] == 2.0 and [got[t] for t in fast] == [0, 1, 4, 9]
        assert order[-1] == slow  # the free worker ran the four quick ones while the slow one ran
        assert ex.idle() == 2 and ex.stats["tasks"] == 5


# ----------------------------------------------------------------------------- faults


def test_a_hanging_task_is_cancelled_scored_failed_and_the_pool_goes_on():
    with ProcessExecutor(workers=2, eval_timeout_s=1.5) as ex:
        ex.map(h.square, [1, 2])  # warm: the helper module imported in both workers
        pids = {i["pid"] for i in ex.worker_info()}
        t0 = time.monotonic()
        out = ex.map(h.sleep_then_return, [0.1, 3600, 0.1, 0.2], on_error=lambda task, msg: ("failed", msg))
        assert time.monotonic() - t0 < 15
        assert out[0] == 0.1 and out[2:] == [0.1, 0.2]
        assert out[1] == ("failed", "timeout: evaluation ran longer than eval_timeout_s=1.5 s and was cancelled")
        assert ex.stats["timeouts"] == 1 and ex.stats["failed"] == 1
        killed = pids - {i["pid"] for i in ex.worker_info()}
        assert len(killed) == 1 and wait_gone(killed)  # its worker was killed and replaced
        assert ex.map(h.square, range(6)) == [0, 1, 4, 9, 16, 25]  # the new worker works
        with pytest.raises(EvaluationFailed, match="timeout"):
            ex.map(h.sleep_then_return, [3600])
        assert ex.map(h.square, [7]) == [49]


def test_a_dead_worker_is_replaced_its_task_retried_then_failed(tmp_path):
    with ProcessExecutor(workers=2, max_retries=2) as ex:
        # a worker killed under its task (SIGKILL): the task runs again on a live worker
        out = ex.map(h.killed_once, [(str(tmp_path / "marker"), "ok"), (str(tmp_path / "other"), "fine")])
        first = int((tmp_path / "marker").read_text())
        assert [v for v, _ in out] == ["ok", "fine"]
        assert all(pid != first for _, pid in out)
        assert ex.stats["retries"] == 2 and ex.stats["restarts"] == 2 and not ex.stats["failed"]
        # a task that kills every worker it runs on: run 1 + max_retries times, then on_error
        out = ex.map(h.exit_hard, [3], on_error=lambda task, msg: msg)
        assert out == ["worker lost 3 times: exit code 3"]
        assert ex.stats["retries"] == 4 and ex.stats["restarts"] == 5 and ex.stats["failed"] == 1
        with pytest.raises(EvaluationFailed, match="worker lost 3 times: exit code 3"):
            ex.map(h.exit_hard, [3])
        assert ex.map(h.square, range(5)) == [0, 1, 4, 9, 16]  # the pool is whole again
        assert ex.map(h.sleep_then_return, [0.3, 0.3]) == [0.3, 0.3]
        pids = [i["pid"] for i in ex.worker_info()]
        assert len(set(pids)) == 2 and not any(gone(p) for p in pids)
        assert all(i["state"] == "idle" for i in ex.worker_info())
    assert wait_gone(pids)  # close() stopped them


# ----------------------------------------------------------------------------- shared data


def test_shared_data_is_sent_to_each_worker_once():
    arr = np.arange(2_000_000, dtype=np.float32)  # 8 MB
    with ProcessExecutor(workers=2) as ex:
        handle = ex.share(arr)
        unused = ex.share(np.zeros(10))
        assert isinstance(handle, ProcessSharedValue) and resolve(handle) is arr  # the driver's is the value
        assert len(pickle.dumps((handle, 0))) < 1000  # tasks carry a key, not the data
        out = ex.map(h.shared_probe, [(handle, i) for i in range(8)])
        out += ex.map(h.shared_probe, [(handle, i) for i in range(8, 12)])
        counts = ex.map(h.fetch_counts, [0.3, 0.3])  # one per worker (each sleeps: both are taken)
    assert [r["i"] for r in out] == list(range(12))
    assert all(r["sum"] == float(arr.sum()) for r in out)
    assert all(r["fetches"] == 1 for r in out)  # each worker received it once and kept it
    assert len({r["pid"] for r in out}) == 2 and len({c["pid"] for c in counts}) == 2
    assert all(c["fetches"] == {handle.key: 1} for c in counts), counts  # the unused value never went
    assert unused.key not in counts[0]["fetches"]


# ----------------------------------------------------------------------------- GPUs


def test_workers_are_pinned_to_gpus_round_robin_with_growing_allocators(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # what the driver sees: two GPUs
    for key in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "PYTORCH_CUDA_ALLOC_CONF", "TF_FORCE_GPU_ALLOW_GROWTH",
                "XLA_PYTHON_CLIENT_PREALLOCATE"):
        monkeypatch.delenv(key, raising=False)
    with ProcessExecutor(workers=4, gpus_per_eval=0.5) as ex:
        info = ex.worker_info()
        out = ex.map(h.env_probe, [0.5] * 4)  # four tasks at once: one per worker
    assert [i["cuda_visible_devices"] for i in info] == ["0", "1", "0", "1"]
    pinned = {i["pid"]: i["cuda_visible_devices"] for i in info}
    assert sorted(r["pid"] for r in out) == sorted(pinned)
    for r in out:
        assert r["CUDA_VISIBLE_DEVICES"] == pinned[r["pid"]]  # what the worker process itself sees
        assert r["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and r["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
        assert r["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
        assert r["OMP_NUM_THREADS"] == "1" and r["NUMBA_NUM_THREADS"] == "1"  # one thread per worker
        assert r["at_start"] == {k: r[k] for k in r["at_start"]}  # in the process's environment from its start
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1" and "TF_FORCE_GPU_ALLOW_GROWTH" not in os.environ


def test_cpu_workers_inherit_the_gpus_and_get_their_threads(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    with ProcessExecutor(workers=1, cpus_per_eval=2) as ex:
        r = ex.map(h.env_probe, [0])[0]
    assert r["CUDA_VISIBLE_DEVICES"] == "1" and r["TF_FORCE_GPU_ALLOW_GROWTH"] is None
    assert r["NUMBA_NUM_THREADS"] == "2"


def test_gpu_placement():
    two = GpuInventory(("0", "1"), "test")
    assert gpu_placement(4, 0.5, two) == ["0", "1", "0", "1"]
    assert gpu_placement(3, 0.25, two) == ["0", "1", "0"]
    assert gpu_placement(2, 1, two) == ["0", "1"]
    assert gpu_placement(2, 2, GpuInventory(("0", "1", "2", "3"), "test")) == ["0,1", "2,3"]
    uuids = GpuInventory(("GPU-aa", "GPU-bb"), "test")
    assert gpu_placement(2, 1, uuids) == ["GPU-aa", "GPU-bb"]
    for workers, g, inv, fragment in [
        (5, 0.5, two, "executor.workers: 5 workers of 0.5 GPU each do not fit on this machine's 2 GPUs (test; room for 4)"),
        (1, 3, two, "executor.gpus_per_eval: each evaluation asks for 3 GPUs but this machine has 2"),
        (2, 2, two, "executor.workers: 2 workers of 2 GPUs each do not fit"),
    ]:
        with pytest.raises(ExecutorError) as info:
            gpu_placement(workers, g, inv)
        assert str(info.value).startswith(fragment) and "\n" not in str(info.value)


def test_visible_gpus_from_the_environment_or_nvidia_smi(tmp_path):
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}).ids == ("0", "1")
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}).ids == ("2", "3")
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}).ids == ()
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}).ids == ()
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,-1,1"}).ids == ("0",)  # CUDA stops at an invalid entry
    none = visible_gpus({"PATH": str(tmp_path)})
    assert none.ids == () and "no nvidia-smi" in none.source
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nprintf '0\\n1\\n'\n")
    smi.chmod(0o755)
    found = visible_gpus({"PATH": str(tmp_path)})
    assert found == GpuInventory(("0", "1"), "nvidia-smi lists 2 GPUs")
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver'; exit 9\n")
    broken = visible_gpus({"PATH": str(tmp_path)})
    assert broken.ids == () and broken.source.startswith("nvidia-smi failed with exit code 9: NVIDIA-SMI has failed")


@pytest.mark.parametrize("kind", ["processes", "local"])
def test_gpus_asked_on_a_machine_without_one_is_a_one_line_error(monkeypatch, kind):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ExecutorError) as info:
        make_executor(config.load(None, [f"executor.kind={kind}", "executor.gpus_per_eval=0.25"]))
    text = str(info.value)
    assert text == ("executor.gpus_per_eval: 0.25 asks for GPUs but this machine has none (CUDA_VISIBLE_DEVICES=''); "
                    "set executor.gpus_per_eval: 0 to evaluate on the CPU, or run on a machine with a GPU")


def test_cli_gpus_without_a_gpu_exit_2_one_line_before_the_run_directory(subprocess_env, tmp_path):
    out = tmp_path / "run"
    env = dict(subprocess_env, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "evonet", "run", "experiments/gym_cartpole.yaml", "--set",
                           "executor.kind=processes", "--set", "executor.gpus_per_eval=0.5", "--out", str(out)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "evonet: error: executor.gpus_per_eval: 0.5 asks for GPUs but this machine has none "
        "(CUDA_VISIBLE_DEVICES=''); set executor.gpus_per_eval: 0 to evaluate on the CPU, or run on a machine "
        "with a GPU"], proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("setting, fragment", [
    ("executor.workers=0", "executor.workers"),
    ("executor.max_retries=-1", "executor.max_retries"),
])
def test_cli_bad_executor_settings_exit_2(tmp_path, capsys, setting, fragment):
    out = tmp_path / "run"
    code = cli.main(["run", "--set", "executor.kind=processes", "--set", setting, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and fragment in err
    assert not out.exists()


def test_bad_arguments_before_any_process_starts():
    for kwargs, fragment in [
        ({"workers": 0}, "executor.workers: must be >= 1, got 0"),
        ({"gpus_per_eval": 1.5}, "executor.gpus_per_eval: above 1 it must be a whole number"),
        ({"eval_timeout_s": 0}, "executor.eval_timeout_s: must be > 0"),
        ({"max_retries": -1}, "executor.max_retries: must be >= 0"),
        ({"cpus_per_eval": -1}, "executor.cpus_per_eval: must be >= 0"),
    ]:
        with pytest.raises(ExecutorError, match=fragment):
            ProcessExecutor(**kwargs)


# ----------------------------------------------------------------------------- no orphans


def _driver(code: str) -> subprocess.Popen:
    script = ("import os, sys, time\nfrom evonet.executors import ProcessExecutor\n"
              "if __name__ == '__main__':\n"
              "    ex = ProcessExecutor(workers=2)\n"
              "    print(' '.join(str(i['pid']) for i in ex.worker_info()), flush=True)\n"
              f"    {code}\n")
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)


def test_no_orphans_when_the_driver_exits_or_is_killed():
    ended = _driver("sys.exit(0)  # no close(): the exit hook stops the workers")
    killed = _driver("time.sleep(120)")
    try:
        pids = [int(p) for p in ended.stdout.readline().split()]
        assert ended.wait(60) == 0 and len(pids) == 2
        assert wait_gone(pids, 5)
        pids = [int(p) for p in killed.stdout.readline().split()]
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        assert len(pids) == 2 and wait_gone(pids, 10)  # each worker watches its driver
    finally:
        for proc in (ended, killed):
            if proc.poll() is None:
                proc.kill()  # its workers follow it
                proc.wait(10)


def test_an_unguarded_script_is_a_one_line_hint(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text("from evonet.executors import ProcessExecutor\nProcessExecutor(workers=1)\n")
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("evonet worker ") and "under `if __name__ == \"__main__\":`" in lines[0]
    assert "bootstrapping phase" not in proc.stderr  # the worker wrote one line, not multiprocessing's traceback
    assert lines[-1].startswith("evonet.executors.ExecutorError: executor: worker 0 ended while starting (exit code 1")


# ----------------------------------------------------------------------------- same results


def sphere(genomes, seeds):
    return -(np.asarray(genomes, dtype=np.float64) ** 2).sum(axis=1)


def test_cli_run_same_results_as_in_process(subprocess_env, tmp_path):
    cfg = config.load(None, TINY)
    problem = make_problem(cfg)
    genomes = problem.init_genomes(seeding.generator(cfg.seed, seeding.PURPOSE_INIT), cfg.ga.population)
    ga = GeneticAlgorithm(cfg.ga, genomes, problem.low, problem.up, seeding.generator(cfg.seed, seeding.PURPOSE_STRATEGY))
    local = run_evolution(ga, problem, LocalExecutor(), cfg.ga.generations, cfg.executor.chunk, cfg.ga.final_games)

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "evonet", "run", *sum((["--set", o] for o in TINY), []), "--set",
                           "executor.kind=processes", "--workers", "2", "--set", "log.tensorboard=false",
                           "--out", str(out)], env=subprocess_env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    # quiet: what a local run prints (C++ libraries' own log lines aside, e.g. a failed cuInit of a GPU probe)
    assert [x for x in proc.stderr.splitlines() if not re.match(r"[IWEF]\d{4} ", x)] == [], proc.stderr
    logbook = [json.loads(x) for x in (out / "logbook.jsonl").read_text().splitlines()]
    assert strip(logbook) == strip(local.logbook)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_fitness"] == local.best_fitness and summary["failures"] == 0


def test_asynchronous_reproducible_mode_same_results_as_in_process(pool):
    ga = config.from_dict({"ga": {"algorithm": "aging", "population": 12, "generations": 4, "lag": 6,
                                  "final_games": 1, "selection": {"name": "tournament", "tournsize": 4}}}).ga
    problem = FunctionProblem(sphere, 6, run_seed=0)
    runs = []
    for ex in (LocalExecutor(), pool):
        genomes = problem.init_genomes(seeding.generator(0, seeding.PURPOSE_INIT), ga.population + 8)
        s = make_strategy(ga, genomes, problem.low, problem.up, seeding.generator(0, seeding.PURPOSE_STRATEGY),
                          key=problem.genome_key)
        r = run_async(s, problem, ex, ga.generations, 1, 1, mode="reproducible", lag=ga.lag, period=ga.population)
        runs.append((strip(r.logbook), r.best_genome.tolist(), r.best_fitness, s.get_state()["member_genomes"]))
    (log_l, best_l, fit_l, members_l), (log_p, best_p, fit_p, members_p) = runs
    assert log_p == log_l and best_p == best_l and fit_p == fit_l
    np.testing.assert_array_equal(members_p, members_l)
    assert len(log_l) == 5 and all(r["evals"] == 12 for r in log_l)
