"""RayExecutor on a Ray started on this machine (inside a loopback-only namespace).

Most tests share one Ray instance (``ray_session``: 4 CPUs, 2 fake GPUs); the CLI tests
start their own in a subprocess, as ``evonet run`` does.
"""

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import ray_helpers as h
from evonet.executors import (EvaluationFailed, ExecutorError, InsufficientResources, LocalExecutor,
                              RayExecutor, RaySharedValue)
from evonet.problems import make_problem

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]


def test_results_in_task_order_and_errors(ray_session):
    with RayExecutor(workers=2) as ex:
        assert ex.workers == 2 and ex.mode == "attached"
        assert ex.map(h.square, range(20)) == [x * x for x in range(20)]
        out = ex.map(h.fails_on_three, range(6), on_error=lambda task, msg: ("failed", task, msg))
        assert out[:3] == [0, 1, 2] and out[4:] == [4, 5]
        assert out[3][:2] == ("failed", 3) and "ValueError: three is not allowed" in out[3][2]
        with pytest.raises(EvaluationFailed, match="three is not allowed"):
            ex.map(h.fails_on_three, range(6))
        seen = []
        assert ex.map(h.square, [3, 4], on_result=seen.append) == [9, 16]
        assert sorted(seen) == [9, 16]
    assert ray_session is not None  # still running: the executor attached and left it


def test_snake_run_same_results_local_one_and_two_workers(ray_session):
    cfg = h.tiny_config()
    local_log, local = h.evolve(cfg, LocalExecutor())
    for workers in (1, 2):
        cfg_ray = h.tiny_config("executor.kind=ray", f"executor.workers={workers}")
        with RayExecutor.from_config(cfg_ray.executor) as ex:
            log, result = h.evolve(cfg_ray, ex)
            assert ex.stats["tasks"] == sum(min(workers, r["evals"]) for r in local_log) + min(workers, 3)
        assert log == local_log, f"{workers} workers"
        assert h.same_genomes(result.best_genome, local.best_genome)
        assert result.best_fitness == local.best_fitness and not result.failures


def test_workers_stay_warm_tensorflow_imported_once_per_worker(ray_session):
    with RayExecutor(workers=2) as ex:
        first = ex.map(h.tf_probe, range(4))
        second = ex.map(h.tf_probe, range(4, 10))
        pids = {r["pid"] for r in first + second}
        assert pids == {info["pid"] for info in ex.worker_info()} and len(pids) == 2
        assert all(r["tf_imports"] == 1 for r in first + second)  # never re-imported
        assert all(r["intra"] == 1 and r["inter"] == 1 for r in first + second)  # one thread per worker
        assert sum(info["calls"] for info in ex.worker_info()) == 10


def test_shared_data_goes_to_the_object_store_once(ray_session):
    arr = np.arange(2_000_000, dtype=np.float32)  # 8 MB
    with RayExecutor(workers=2) as ex:
        handle = ex.share(arr)
        assert isinstance(handle, RaySharedValue)
        assert len(pickle.dumps((handle, 0))) < 1000  # tasks carry a reference, not the data
        out = ex.map(h.shared_probe, [(handle, i) for i in range(8)])
        out += ex.map(h.shared_probe, [(handle, i) for i in range(8, 12)])
    assert [r["i"] for r in out] == list(range(12))
    assert all(r["sum"] == float(arr.sum()) for r in out)
    assert all(r["fetches"] == 1 for r in out)  # each worker fetched it once and cached it
    assert len({r["pid"] for r in out}) == 2


def test_search_dataset_goes_to_the_object_store_once_same_results(ray_session):
    cfg = h.tiny_search_config()
    local_log, local = h.evolve(cfg, LocalExecutor())
    cfg_ray = h.tiny_search_config("executor.kind=ray", "executor.workers=2", "executor.chunk=1")
    problem = make_problem(cfg_ray)
    with RayExecutor.from_config(cfg_ray.executor) as ex:
        problem.share_data(ex)  # as the runner does before the first generation
        assert isinstance(problem.shared, RaySharedValue)
        task = problem.make_tasks(problem.init_genomes(np.random.default_rng(0), 2), 0, range(2), 1)[0]
        assert len(pickle.dumps(task)) < 5000  # a reference to the data, not the digits
        log, result = h.evolve(cfg_ray, ex, problem)
        counts = ex.map(h.fetch_counts, range(2))
    assert log == local_log
    # the final choice (3-fold cross-validation of the hall of fame, as digits_search.yaml asks)
    # ran on the workers too: the same folds, seeds and pooled accuracies
    assert problem.cv_trainings == 3 * len(result.candidates) == 6
    assert result.candidates == local.candidates
    assert result.best_fitness == local.best_fitness
    assert len({c["pid"] for c in counts}) == 2
    # both workers trained, each fetched the dataset exactly once
    assert all(c["fetches"] == {problem.shared.key: 1} for c in counts), counts
    shipped = problem.shared.get()
    assert len(shipped.y_test) == 0 and len(shipped.y_train) == len(problem.dataset.y_train)  # no test split


def test_hanging_evaluation_is_cancelled_and_scored_failed(ray_session):
    with RayExecutor(workers=2, eval_timeout_s=2.0) as ex:
        t0 = time.monotonic()
        out = ex.map(h.sleep_then_return, [0.1, 3600, 0.1, 0.2], on_error=lambda task, msg: ("failed", msg))
        assert time.monotonic() - t0 < 20
        assert out[0] == 0.1 and out[2:] == [0.1, 0.2]
        assert out[1][0] == "failed" and "timeout" in out[1][1] and "eval_timeout_s=2" in out[1][1]
        assert ex.stats["timeouts"] == 1
        assert ex.map(h.square, range(6)) == [0, 1, 4, 9, 16, 25]  # the killed worker came back
        with pytest.raises(EvaluationFailed, match="timeout"):
            ex.map(h.sleep_then_return, [3600])


def test_timeout_in_a_run_is_recorded_as_failed_evaluations(ray_session, tmp_path):
    # the limit counts from dispatch and so includes a fresh worker's first imports (numba,
    # the snake engine): it must stay well above a cold evaluation, even on a busy machine
    # (10 s was passed by every task of a generation once on a loaded 2-core AMD EPYC machine)
    cfg = h.tiny_config("executor.kind=ray", "executor.workers=2", "executor.eval_timeout_s=20")
    problem = h.MarkedProblem(make_problem(cfg), tmp_path, hang_generation=2)
    with RayExecutor.from_config(cfg.executor) as ex:
        log, result = h.evolve(cfg, ex, problem)
        assert ex.stats["timeouts"] == 1, (dict(ex.stats), result.failures)
    half = log[2]["evals"] // 2  # 2 workers: 2 tasks per generation; the first one hung
    assert [r["failed"] for r in log] == [0, 0, half, 0], result.failures
    assert sorted(f["index"] for f in result.failures) == list(range(half))
    assert {f["generation"] for f in result.failures} == {2}
    assert all("timeout" in f["error"] and "eval_timeout_s=20" in f["error"] for f in result.failures)


def test_worker_killed_mid_generation_same_results_as_undisturbed(ray_session, tmp_path):
    cfg = h.tiny_config("executor.kind=ray", "executor.workers=2")
    base = make_problem(cfg)
    problem = h.MarkedProblem(base, tmp_path, delay=0.5)
    # generation 0 had 2 tasks: the 3rd start is in generation 1, mid-task
    killed, thread = h.kill_worker_at_start(tmp_path, 3)
    try:
        with RayExecutor.from_config(cfg.executor) as ex:
            log, result = h.evolve(cfg, ex, problem)
            stats = dict(ex.stats)
    finally:
        killed["stop"] = True
        thread.join()
    assert "pid" in killed, "no worker was killed"
    assert stats["retries"] >= 1 and not result.failures
    pids_after = {pid for _, pid in h.start_files(tmp_path)[killed["after"]:]}
    assert killed["pid"] not in pids_after  # its evaluations went elsewhere (a restarted worker)

    undisturbed_log, undisturbed = h.evolve(cfg, LocalExecutor(), base)
    assert log == undisturbed_log
    assert h.same_genomes(result.best_genome, undisturbed.best_genome)
    assert result.best_fitness == undisturbed.best_fitness


def test_fake_gpus_assigned_and_shared_as_asked(ray_session):
    with RayExecutor(workers=4, cpus_per_eval=0.5, gpus_per_eval=0.5) as ex:
        infos = ex.worker_info()
        out = ex.map(h.gpu_probe, [0.3] * 16)
    assert sorted(i["cuda_visible_devices"] for i in infos) == ["0", "0", "1", "1"]
    for r in out:
        assert len(r["gpu_ids"]) == 1 and r["cvd"] == r["gpu_ids"][0]  # what Ray assigned
        assert r["growth"] == "true"  # TensorFlow allocates GPU memory as it needs it
    by_gpu = {}
    for r in out:
        by_gpu.setdefault(r["cvd"], []).append((r["start"], r["end"]))
    assert set(by_gpu) == {"0", "1"}
    assert all(h.max_overlap(spans) <= 2 for spans in by_gpu.values())  # 0.5 GPU each: 2 at once at most


@pytest.mark.parametrize("kwargs, fragment", [
    ({"gpus_per_eval": 3}, "no node can hold one evaluation"),
    ({"workers": 5, "cpus_per_eval": 0.5, "gpus_per_eval": 0.5}, "5 workers of 0.5 CPU and 0.5 GPU each do not fit"),
    ({"workers": 9, "cpus_per_eval": 0.5}, "has 4 CPUs and 2 GPUs (room for 8)"),
])
def test_cluster_without_the_requested_resources(ray_session, kwargs, fragment):
    with pytest.raises(InsufficientResources) as info:
        RayExecutor(**kwargs)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def _cli(args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "evonet", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_run_starts_ray_itself_quietly_same_results(evonet_env, tmp_path):
    temp_root = tempfile.mkdtemp(prefix="evt-", dir="/tmp")  # short: Ray's unix sockets live below it
    try:
        env = dict(evonet_env, RAY_TMPDIR=temp_root)
        out = tmp_path / "run"
        proc = _cli(["run", *sum((["--set", o] for o in h.TINY), []), "--set", "executor.kind=ray",
                     "--workers", "2", "--out", str(out)], env)
        assert proc.returncode == 0, proc.stderr
        assert os.listdir(temp_root) == []  # Ray's temporary files are gone
    finally:
        os.rmdir(temp_root)
    assert proc.stderr == "", proc.stderr  # quiet: no Ray start-up logs, C++ warnings included
    logbook = h.strip_timing([json.loads(x) for x in (out / "logbook.jsonl").read_text().splitlines()])
    local_log, _ = h.evolve(h.tiny_config(), LocalExecutor())
    assert logbook == local_log


def test_cli_missing_gpus_one_line_exit_2_before_the_run_directory(evonet_env, tmp_path):
    out = tmp_path / "run"
    proc = _cli(["run", "--set", "executor.kind=ray", "--set", "executor.gpus_per_eval=1", "--out", str(out)],
                evonet_env)
    assert proc.returncode == 2, proc.stderr
    errors = proc.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("evonet: error: executor.gpus_per_eval:"), proc.stderr
    assert "asks for 1 GPU" in errors[0] and "and 0 GPUs" in errors[0]
    assert not out.exists()


def test_executor_construction_errors_are_executor_errors():
    assert issubclass(InsufficientResources, ExecutorError)


def test_cli_bench_ray_json(evonet_env):
    proc = _cli(["bench", "ray", "--json", "--evals", "2", "--epochs", "1"], evonet_env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for key in ("serial_evals_per_s", "ray1_evals_per_s", "ray2_evals_per_s", "speedup_2_vs_1", "overhead_fraction"):
        assert isinstance(result[key], float) and result[key] >= 0, key
    assert result["identical_results"] is True
