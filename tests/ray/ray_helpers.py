"""Test-only evaluations for the Ray tests.

Ray workers import this module by name (the session fixture puts tests/ray on their
PYTHONPATH), so everything here is plain, module-level and picklable.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evonet import config, seeding
from evonet.loop import run_evolution
from evonet.problems import make_problem
from evonet.problems.snake_weights import evaluate_snake_task
from evonet.strategy import GeneticAlgorithm

TINY = ["ga.algorithm=mu_plus_lambda", "ga.population=8", "ga.generations=3", "snake.games=2", "ga.final_games=4", "ga.hall_of_fame=3",
        "eval_games=20"]
TIMING = {"seconds", "evals_per_s", "env_steps_per_s", "elapsed", "utilization"}


def tiny_config(*overrides: str):
    return config.load(None, [*TINY, *overrides])


def strip_timing(logbook: list[dict]) -> list[dict]:
    return [{k: v for k, v in rec.items() if k not in TIMING} for rec in logbook]


def evolve(cfg, executor, problem=None):
    """The runner's evolution (same seeds, same strategy) with any executor and problem."""
    problem = problem or make_problem(cfg)
    genomes = problem.init_genomes(seeding.generator(cfg.seed, seeding.PURPOSE_INIT), cfg.ga.population)
    ga = GeneticAlgorithm(cfg.ga, genomes, problem.low, problem.up,
                          seeding.generator(cfg.seed, seeding.PURPOSE_STRATEGY))
    result = run_evolution(ga, problem, executor, cfg.ga.generations, cfg.executor.chunk, cfg.ga.final_games)
    return strip_timing(result.logbook), result


# ----------------------------------------------------------------------------- small functions


def square(x):
    return x * x


def fails_on_three(x):
    if x == 3:
        raise ValueError("three is not allowed")
    return x


def sleep_then_return(seconds):
    time.sleep(seconds)
    return seconds


TF_IMPORTS = 0  # how many times this process imported TensorFlow


def tf_probe(i):
    """Import Keras the way evaluations do; report the process and its TensorFlow imports."""
    global TF_IMPORTS
    if "tensorflow" not in sys.modules:
        TF_IMPORTS += 1
    from evonet.tf_utils import import_keras

    import_keras()
    import tensorflow as tf

    return {"i": i, "pid": os.getpid(), "tf_imports": TF_IMPORTS,
            "intra": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter": tf.config.threading.get_inter_op_parallelism_threads()}


def shared_probe(task):
    """task = (handle, i): read the shared array; report this process's fetches of it."""
    from evonet.executors import SHARED_FETCHES, resolve

    handle, i = task
    arr = resolve(handle)
    return {"i": i, "pid": os.getpid(), "fetches": SHARED_FETCHES[handle.key], "sum": float(arr.sum())}


def gpu_probe(seconds):
    """What a GPU evaluation sees: CUDA_VISIBLE_DEVICES, Ray's GPU ids, its time span."""
    import ray

    start = time.time()
    time.sleep(seconds)
    return {"pid": os.getpid(), "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "growth": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH"),
            "start": start, "end": time.time()}


# ----------------------------------------------------------------------------- snake with side effects


@dataclass(frozen=True)
class MarkedTask:
    """A snake task plus test instructions: write a start file, sleep, maybe hang."""

    task: object
    piddir: str
    delay: float
    hang: bool = False


def marked_snake_task(t: MarkedTask):
    Path(t.piddir, f"{time.time_ns()}-{os.getpid()}").touch()
    if t.hang:
        time.sleep(3600)
    time.sleep(t.delay)
    return evaluate_snake_task(t.task)


class MarkedProblem:
    """The snake problem whose evaluations mark their start (pid files), sleep ``delay``,
    and hang in the first task of generation ``hang_generation``. Same results otherwise."""

    def __init__(self, base, piddir, delay=0.0, hang_generation=None):
        self.base, self.piddir, self.delay, self.hang_generation = base, str(piddir), delay, hang_generation
        self.n_genes, self.low, self.up = base.n_genes, base.low, base.up

    def __getattr__(self, name):
        return getattr(self.base, name)

    def init_genomes(self, rng, n):
        return self.base.init_genomes(rng, n)

    def make_tasks(self, genomes, generation, indices, chunk, **kw):
        tasks = self.base.make_tasks(genomes, generation, indices, chunk, **kw)
        return [MarkedTask(t, self.piddir, self.delay, hang=(generation == self.hang_generation and k == 0))
                for k, t in enumerate(tasks)]

    @property
    def evaluate_task(self):
        return marked_snake_task

    def failed_results(self, task, error):
        return self.base.failed_results(task.task, error)


def start_files(piddir) -> list[tuple[int, int]]:
    """(time_ns, pid) of every evaluation start, in order."""
    out = []
    for p in Path(piddir).iterdir():
        t, pid = p.name.split("-")
        out.append((int(t), int(pid)))
    return sorted(out)


def kill_worker_at_start(piddir, n: int):
    """A thread that SIGKILLs the worker of the ``n``-th evaluation start (mid-task); returns
    ``(killed, thread)``: ``killed`` gets ``pid`` and ``after`` (starts seen); set
    ``killed["stop"]`` and join the thread when the run is over."""
    import signal
    import threading

    killed: dict = {}

    def killer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed.get("stop"):
            starts = start_files(piddir)
            if len(starts) >= n:
                _, pid = starts[-1]
                os.kill(pid, signal.SIGKILL)
                killed.update(pid=pid, after=len(starts))
                return
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return killed, thread


def max_overlap(spans) -> int:
    """The largest number of (start, end) spans open at one time."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda ev: (ev[0], ev[1]))
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def same_genomes(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def fetch_counts(_):
    """This worker's pid and how many times it fetched each shared object."""
    from evonet.executors import SHARED_FETCHES

    return {"pid": os.getpid(), "fetches": dict(SHARED_FETCHES)}


def tiny_search_config(*overrides: str):
    """A digits architecture search small enough for a test (dense nets, one epoch)."""
    root = Path(__file__).resolve().parents[2]
    return config.load(root / "experiments" / "digits_search.yaml", [
        "search.space=dense_classifier", "ga.population=4", "ga.offspring=4", "ga.generations=1",
        "search.epochs=1", "search.patience=0", "ga.hall_of_fame=2", *overrides])
