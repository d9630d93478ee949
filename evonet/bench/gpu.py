"""The GPU check, ``evonet bench gpu`` (docs/gpu.md): three measurements in one run.

1. **snake**: env-steps per second of the snake engine on ``2**12`` to ``2**20`` parallel
   games (classic 10 x 10; the blog7 observation with the 7-9-15-3 network and the vision
   observation with the flagship 35-16-3 network, both with networks that play long games),
   on the device ``snake.device`` would pick (``--snake-device``); a seeded sample of each
   size's games is played again on the CPU's fused engine and compared game for game
   (score, steps, cause of death).
2. **train**: trainings per minute of the cnn space's default genome (mnist5k, or digits)
   with 1, 2, 4 and 8 worker processes sharing the GPU (``executor.kind: processes`` with
   ``gpus_per_eval = 1 / workers``), Keras on the backend of ``KERAS_BACKEND`` (the check
   script sets ``jax``), and the memory each worker holds (GPU memory from ``nvidia-smi``;
   on a machine without a GPU, the workers' peak resident memory).
3. **search**: a short architecture search end to end (``experiments/mnist5k_search.yaml``
   on the process pool, the GPU shared by its workers): wall time and the test accuracy of
   its ``best/summary.json``.

Without a GPU every part runs on the CPUs (``--quick`` sizes it for the test suite), so the
script is tested on every CI run; the figures that matter come from a GPU machine.
:func:`bench_gpu` returns the JSON the command prints and writes; :func:`table` renders it.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: the full check's sizes (about 8 minutes on an H200)
FULL = {"exponents": tuple(range(12, 21)), "observations": ("blog7", "vision"), "snake_seconds": 2.0, "sample": 512, "train_workers": (1, 2, 4, 8),
        "train_seconds": 40.0, "train_epochs": 5, "search_seconds": 150.0, "search_workers": 8,
        "dataset": "mnist5k", "space": "search_spaces/cnn_classifier.yaml", "search_extra": ()}
#: ``--quick``: the test suite's (CPUs, a minute or two)
QUICK = {"exponents": (6, 8), "observations": ("blog7", "vision"), "snake_seconds": 0.2, "sample": 16, "train_workers": (1, 2),
         "train_seconds": 2.0, "train_epochs": 1, "search_seconds": 10.0, "search_workers": 2,
         "dataset": "digits", "space": "search_spaces/dense_classifier.yaml",
         "search_extra": ("ga.population=2", "ga.generations=1", "ga.hall_of_fame=1", "search.final_folds=0")}


def gpu_info() -> dict:
    """The GPUs ``nvidia-smi`` lists (name, memory, driver); empty without one."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {"gpus": []}
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"gpus": []}
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "memory": parts[1], "driver": parts[2]})
    return {"gpus": gpus}


def _gpu_memory_by_pid() -> dict[int, float]:
    """MiB of GPU memory each process holds (``nvidia-smi``); empty without one."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    try:
        out = subprocess.run([exe, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    used = {}
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            try:
                used[int(parts[0])] = float(parts[1])
            except ValueError:
                pass
    return used


# ----------------------------------------------------------------------------- snake


def _snake_workloads():
    from evonet.bench.snake import BLOG_SPEC, FLAGSHIP_SPEC, flagship_weights, heuristic_like_weights

    return {"blog7": (BLOG_SPEC, heuristic_like_weights().astype(np.float32)),
            "vision": (FLAGSHIP_SPEC, flagship_weights(1)[0])}


def _player(device: str):
    """``play(spec, weights, rules, observation, seeds)`` of the engine on ``device``."""
    if device == "cuda":
        from evonet.envs.snake.cuda import play_mlp_cuda

        return play_mlp_cuda
    from evonet.envs.snake.fused import play_mlp

    return play_mlp


def bench_snake_device(exponents, device: str, seconds: float, sample: int, seed: int = 0,
                       observations=("blog7", "vision")) -> list[dict]:
    """Env-steps/s on ``2**e`` parallel games for each exponent and observation (8 games per
    network), repeated with fresh seeds for at least ``seconds``; ``sample`` games of each size
    (drawn with ``seed``) checked against the CPU's fused engine."""
    from evonet.envs.snake.fused import play_mlp
    from evonet.envs.snake.rules import make_rules

    rules = make_rules("classic")
    play = _player(device)
    rows = []
    rng = np.random.default_rng(seed)
    for observation in observations:
        spec, genome = _snake_workloads()[observation]
        warm = False
        for e in exponents:
            n = 2 ** int(e)
            games = 8 if n >= 8 else n
            nets = n // games
            weights = np.tile(genome, (nets, 1))
            base = np.arange(n, dtype=np.uint64).reshape(nets, games)
            if not warm:  # compile (and the CUDA context) outside the timing
                play(spec, weights[:1], rules, observation, base[:1, :1])
                warm = True
            total, reps, first = 0, 0, None
            start = time.perf_counter()
            while reps == 0 or time.perf_counter() - start < seconds:
                result = play(spec, weights, rules, observation, base + np.uint64(reps * n))
                if first is None:
                    first = result
                total += int(result.env_steps)
                reps += 1
            elapsed = time.perf_counter() - start
            # a sample of the first repetition's games, again on the CPU
            k = min(int(sample), n)
            pick = np.sort(rng.choice(n, size=k, replace=False))
            rows_i, cols_i = np.divmod(pick, games)
            cpu = play_mlp(spec, weights[rows_i], rules, observation, base[rows_i, cols_i].reshape(k, 1))
            got = [np.asarray(getattr(first, f))[rows_i, cols_i] for f in ("scores", "steps", "deaths")]
            want = [np.asarray(getattr(cpu, f))[:, 0] for f in ("scores", "steps", "deaths")]
            mismatches = int(np.sum(np.any(np.stack([g != w for g, w in zip(got, want)]), axis=0)))
            rows.append({"observation": observation, "games": n, "networks": nets, "reps": reps,
                         "seconds": elapsed, "env_steps": total, "steps_per_s": total / elapsed,
                         "mean_steps_per_game": float(np.mean(first.steps)),
                         "checked_games": k, "mismatches": mismatches})
    return rows


# ----------------------------------------------------------------------------- train


def _worker_peak(_task=None) -> dict:
    """In a worker: its pid and peak resident memory (MiB)."""
    return {"pid": os.getpid(), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def _search_config(dataset: str, data_path: str | None, epochs: int, extra: list[str] | None = None,
                   space: str | None = None):
    from evonet.core import config as config_mod

    experiment = "mnist5k_search" if dataset == "mnist5k" else "digits_search"
    overrides = [f"search.epochs={epochs}"] + ([f"search.space={space}"] if space else []) + list(extra or [])
    if data_path and dataset == "mnist5k":
        overrides.append(f"search.data_path={data_path}")
    return experiment, overrides, config_mod.load(experiment, overrides)


def bench_train(workers_list, seconds: float, epochs: int, dataset: str, data_path: str | None,
                gpus: int, space: str | None = None) -> list[dict]:
    """Trainings per minute of the cnn space's default genome with N workers sharing the GPU
    (``gpus_per_eval = 1 / N``; without a GPU, N CPU workers), each worker warmed up first."""
    from evonet.executors import ProcessExecutor
    from evonet.problems.nas.problem import HyperparamProblem

    _, _, cfg = _search_config(dataset, data_path, epochs, space=space)
    problem = HyperparamProblem.from_config(cfg)
    genome = problem.space.encode(problem.space.defaults())
    rows = []
    for n in workers_list:
        per_eval = (1.0 / n) if gpus else 0.0
        with ProcessExecutor(workers=n, gpus_per_eval=per_eval) as ex:
            problem.share_data(ex)
            task = problem.make_tasks(genome[None, :], 0, [0], 1)[0]
            fn = problem.evaluate_task
            # warm-up: every worker trains once (imports, XLA compilation, the data)
            warm = ex.map(fn, [task] * n)
            errors = [r[0].error for r in warm if r[0].error]
            if errors:
                raise RuntimeError(f"bench gpu: the warm-up training failed: {errors[0]}")
            done, accuracy = 0, []
            start = time.perf_counter()
            for _ in range(n):
                ex.submit(fn, task)
            while True:
                for _ticket, res in ex.wait():
                    done += 1
                    accuracy.append(float(res[0].fitness))
                    if time.perf_counter() - start < seconds:
                        ex.submit(fn, task)
                if time.perf_counter() - start >= seconds and ex.idle() >= n:
                    break
            elapsed = time.perf_counter() - start
            gpu_mem = _gpu_memory_by_pid()
            peaks = ex.map(_worker_peak, [None] * n)
        pids = {p["pid"] for p in peaks}
        worker_gpu = [mib for pid, mib in gpu_mem.items() if pid in pids]
        rows.append({"workers": n, "gpus_per_eval": per_eval, "trainings": done, "seconds": elapsed,
                     "trainings_per_min": 60.0 * done / elapsed,
                     "median_val_accuracy": float(np.median(accuracy)) if accuracy else None,
                     "gpu_memory_mib_per_worker": (float(np.mean(worker_gpu)) if worker_gpu else None),
                     "peak_rss_mib_per_worker": float(np.mean([p["rss_mb"] for p in peaks]))})
    base = rows[0]["trainings_per_min"] if rows else 0.0
    for r in rows:
        r["speedup_vs_1"] = r["trainings_per_min"] / base if base else None
    return rows


# ----------------------------------------------------------------------------- search


def bench_search_run(seconds: float, workers: int, dataset: str, data_path: str | None, epochs: int,
                     gpus: int, out: Path, space: str | None = None, more=()) -> dict:
    """One architecture search on the process pool (the GPU shared by ``workers``): wall time
    and the test accuracy of its ``best/summary.json``."""
    from evonet.api import run

    per_eval = (1.0 / workers) if gpus else 0.0
    extra = ["executor.kind=processes", f"executor.workers={workers}", f"executor.gpus_per_eval={per_eval:g}",
             f"stop.max_seconds={seconds:g}", f"ga.lag={2 * workers}", *more]
    experiment, overrides, _ = _search_config(dataset, data_path, epochs, extra, space=space)
    if dataset == "digits":  # digits_search.yaml is a generational run: the budget ends it all the same
        overrides = [o for o in overrides if not o.startswith("ga.lag=")]
    start = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        outcome = run(experiment, overrides, out=out, stream=quiet)
    wall = time.perf_counter() - start
    best = json.loads((outcome.run_dir / "best" / "summary.json").read_text())
    return {"experiment": experiment, "overrides": overrides, "wall_s": wall,
            "test_accuracy": best.get("test_accuracy"), "val_accuracy": best.get("val_accuracy"),
            "trainings": outcome.summary.get("trainings", outcome.summary.get("evaluations")),
            "run_dir": str(outcome.run_dir)}


# ----------------------------------------------------------------------------- all


def bench_gpu(quick: bool = False, parts=("snake", "train", "search"), snake_device: str = "auto",
              data_path: str | None = None, out: str | Path | None = None, **sizes) -> dict:
    """Run the check's ``parts``; returns the JSON (see the module doc). ``sizes`` overrides
    :data:`FULL` / :data:`QUICK` entries."""
    plan = dict(QUICK if quick else FULL)
    unknown = set(sizes) - set(plan)
    if unknown:
        raise ValueError(f"bench_gpu: unknown sizes {sorted(unknown)}")
    plan.update({k: v for k, v in sizes.items() if v is not None})
    info = gpu_info()
    gpus = len(info["gpus"])
    from evonet.problems.snake.config import resolve_device

    device = resolve_device(snake_device)
    result = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(), "cpu": platform.processor(),
              "cores": os.cpu_count(), "python": platform.python_version(), **info,
              "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"), "quick": quick, "plan": plan,
              "snake_device": device}
    out = Path(out) if out else Path(tempfile.mkdtemp(prefix="evonet-gpu-"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if "snake" in parts:
        result["snake"] = bench_snake_device(plan["exponents"], device, plan["snake_seconds"], plan["sample"],
                                             observations=plan["observations"])
    if "train" in parts:
        result["train"] = bench_train(plan["train_workers"], plan["train_seconds"], plan["train_epochs"],
                                      plan["dataset"], data_path, gpus, space=plan["space"])
    if "search" in parts:
        result["search"] = bench_search_run(plan["search_seconds"], plan["search_workers"], plan["dataset"],
                                            data_path, 20 if not quick else 1, gpus, out / "search_run",
                                            space=plan["space"], more=plan["search_extra"])
    result["wall_s"] = time.perf_counter() - started
    return result


def table(result: dict) -> str:
    """The check's JSON as Markdown tables."""
    gpus = ", ".join(f"{g['name']} ({g['memory']}, driver {g['driver']})" for g in result.get("gpus", [])) or "none"
    lines = [f"GPU check of {result['date']} on {result['host']}: GPU {gpus}; {result['cores']} cores; "
             f"Python {result['python']}; Keras backend {result['keras_backend']}; snake device "
             f"{result['snake_device']}; {result['wall_s']:.0f} s in all.", ""]
    if "snake" in result:
        lines += ["| observation | parallel games | env-steps/s | mean steps per game | games checked | mismatches |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in result["snake"]:
            lines.append(f"| {r['observation']} | {r['games']:,} | {r['steps_per_s']:,.0f} | "
                         f"{r['mean_steps_per_game']:.1f} | {r['checked_games']} | {r['mismatches']} |")
        lines.append("")
    if "train" in result:
        lines += ["| workers | GPU per worker | trainings | trainings/min | x 1 worker | GPU MiB per worker | "
                  "peak RSS MiB per worker |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for r in result["train"]:
            mem = "-" if r["gpu_memory_mib_per_worker"] is None else f"{r['gpu_memory_mib_per_worker']:.0f}"
            lines.append(f"| {r['workers']} | {r['gpus_per_eval']:g} | {r['trainings']} | "
                         f"{r['trainings_per_min']:.1f} | {r['speedup_vs_1']:.2f} | {mem} | "
                         f"{r['peak_rss_mib_per_worker']:.0f} |")
        lines.append("")
    if "search" in result:
        s = result["search"]
        lines += [f"Search: `{s['experiment']}` with {' '.join('--set ' + o for o in s['overrides'])}: "
                  f"test accuracy {s['test_accuracy']}, {s['wall_s']:.0f} s in all.", ""]
    return "\n".join(lines)


def main_json(result: dict, out: Path) -> tuple[Path, Path]:
    """Write ``gpu_check.json`` and ``gpu_check.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / "gpu_check.json", out / "gpu_check.md"
    jpath.write_text(json.dumps(result, indent=1, default=str) + "\n")
    mpath.write_text(table(result) + "\n")
    return jpath, mpath


if __name__ == "__main__":  # pragma: no cover
    print(table(bench_gpu(quick="--quick" in sys.argv)))
