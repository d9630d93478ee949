"""Kill and resume: a run killed (SIGKILL) during evaluations or during a checkpoint write,
or stopped with Ctrl-C / SIGTERM, continues with `evonet resume` to exactly the logbook
and best genome of an uninterrupted run of the same seed."""

from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from evonet import config
from evonet.cli import main

TIMING = {"seconds", "evals_per_s", "env_steps_per_s", "elapsed", "utilization"}
GENERATIONS = 6
TINY = ["ga.population=8", "snake.games=2", "ga.final_games=4", "ga.hall_of_fame=3", "eval_games=0",
        "executor.chunk=2", "log.tensorboard=false", "log.progress=lines"]
SET = [arg for item in TINY for arg in ("--set", item)]

# a driver: patches evonet in the child process, then runs the CLI. The patches only
# interrupt the run (kill, signal, slow down); they change nothing it computes.
PRELUDE = """
import os, signal, sys, time
from evonet import checkpoint, executors, loop
"""
KILL_DURING_EVALUATION = PRELUDE + """
orig_map = executors.LocalExecutor.map
calls = [0]
def map_(self, fn, tasks, on_error=None, on_result=None):
    calls[0] += 1
    if calls[0] == 4:  # generation 3: die after its first task
        done = [0]
        def fn2(task):
            done[0] += 1
            if done[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(task)
        return orig_map(self, fn2, tasks, on_error, on_result)
    return orig_map(self, fn, tasks, on_error, on_result)
executors.LocalExecutor.map = map_
"""
KILL_DURING_CHECKPOINT_WRITE = PRELUDE + """
orig_write = checkpoint._write_file
def write(path, data):
    if path.name == "arrays.npz" and ".tmp-gen-000003" in str(path):  # half of generation 3's arrays
        with open(path, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            os.fsync(fh.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return orig_write(path, data)
checkpoint._write_file = write
"""
SLOW = PRELUDE + """
orig_evaluate = loop.evaluate
def slow(*args, **kw):
    time.sleep(0.4)
    return orig_evaluate(*args, **kw)
loop.evaluate = slow
"""
RUN_CLI = """
from evonet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def strip(logbook):
    return [{k: v for k, v in rec.items() if k not in TIMING} for rec in logbook]


def read_logbook(run_dir: Path):
    return [json.loads(line) for line in (run_dir / "logbook.jsonl").read_text().splitlines()]


def best_genome(run_dir: Path) -> np.ndarray:
    with np.load(run_dir / "best" / "genome.npz", allow_pickle=False) as data:
        return data["genome"]


def driver(code: str, args, env, **kw):
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code) + RUN_CLI, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (in process)."""
    from evonet.runner import run_experiment

    out = tmp_path_factory.mktemp("reference") / "run"
    cfg = config.load(None, TINY + [f"ga.generations={GENERATIONS}"])
    run_experiment(cfg, out, stream=io.StringIO())
    return out


def resume(run_dir, *extra, capsys=None) -> int:
    return main(["resume", str(run_dir), "--quiet", *extra])


def assert_same_as_reference(run_dir: Path, reference: Path):
    assert strip(read_logbook(run_dir)) == strip(read_logbook(reference))
    np.testing.assert_array_equal(best_genome(run_dir), best_genome(reference))
    a = json.loads((run_dir / "summary.json").read_text())
    b = json.loads((reference / "summary.json").read_text())
    assert a["final_fitness"] == b["final_fitness"] and a["evaluations"] == b["evaluations"]


@pytest.mark.parametrize("when, code", [("evaluations", KILL_DURING_EVALUATION),
                                        ("checkpoint write", KILL_DURING_CHECKPOINT_WRITE)])
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, subprocess_env, reference, when, code):
    run_dir = tmp_path / "run"
    proc = driver(code, ["run", *SET, "--set", f"ga.generations={GENERATIONS}", "--out", str(run_dir)],
                  subprocess_env)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"the driver was to kill itself during the {when}"
    latest = json.loads((run_dir / "checkpoints" / "latest").read_text())
    # generation 3 never completed its checkpoint; during the evaluations, generation 2's may
    # still have been on its way to the disk (checkpoints are written by a background thread)
    saved = latest["generation"]
    assert saved == 2 if when == "checkpoint write" else saved in (1, 2)
    assert not (run_dir / "summary.json").exists()
    if when == "checkpoint write":
        # the half-written checkpoint is a temporary directory; the good ones are intact
        assert list((run_dir / "checkpoints").glob(".tmp-gen-000003-*"))
        assert not (run_dir / "checkpoints" / "gen-000003").exists()
        assert (run_dir / "checkpoints" / "gen-000002").is_dir()
        # gen 3 was logged before its checkpoint (and gen 4 too while gen 3's was being written): resume drops them
        assert len(read_logbook(run_dir)) in (4, 5)

    assert resume(run_dir) == 0
    assert_same_as_reference(run_dir, reference)
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("gen-*")) == ["gen-000005", "gen-000006"]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["resumes"][0]["from_generation"] == saved


@pytest.mark.parametrize("signals, code", [((signal.SIGINT,), 130), ((signal.SIGINT, signal.SIGINT), 130),
                                           ((signal.SIGTERM,), 143)])
def test_ctrl_c_saves_a_checkpoint_and_resume_completes(tmp_path, subprocess_env, reference, signals, code,
                                                        capsys):
    run_dir = tmp_path / "run"
    proc = driver(SLOW, ["run", *SET, "--set", f"ga.generations={GENERATIONS}", "--out", str(run_dir)],
                  subprocess_env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until generation 1 is logged
        log = run_dir / "logbook.jsonl"
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    if code == 143:  # meanwhile, the running run cannot be resumed a second time
        assert resume(run_dir) == 2
        assert "in use by another evonet process (pid" in capsys.readouterr().err
    time.sleep(0.1)  # inside the (slowed) evaluations of the next generation
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"evonet resume {run_dir}" in err
    latest = json.loads((run_dir / "checkpoints" / "latest").read_text())
    assert 1 <= latest["generation"] < GENERATIONS
    if signals == (signal.SIGINT,):  # the generation under way was finished and saved
        assert "stopping after this generation" in err
        assert len(read_logbook(run_dir)) == latest["generation"] + 1
    assert not (run_dir / "summary.json").exists()

    assert resume(run_dir) == 0
    assert_same_as_reference(run_dir, reference)


def _tree_digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_changed_config_is_refused_without_force_and_nothing_is_written(tmp_path, reference, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    before = _tree_digest(run_dir)
    # a finished run: nothing to do unless it may go on
    assert resume(run_dir) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the run is complete" in err[0] and "ga.generations" in err[0]
    # settings that change the results: refused, listed (key: old -> new)
    assert resume(run_dir, "--set", "ga.population=10", "--set", "ga.generations=8", "--set", "seed=3") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evonet: error:")
    assert "seed: 0 -> 3" in err[0] and "ga.population: 8 -> 10" in err[0] and "--force" in err[0]
    assert "ga.generations" not in err[0]  # a safe change is not what blocks it
    assert _tree_digest(run_dir) == before
    # an unknown key is a config error like everywhere else
    assert resume(run_dir, "--set", "ga.generatons=8") == 2
    assert "did you mean 'generations'" in capsys.readouterr().err
    assert _tree_digest(run_dir) == before
    # --force accepts them, and records it
    assert resume(run_dir, "--set", "ga.population=10", "--set", "ga.generations=7", "--force") == 0
    info = json.loads((run_dir / "run.json").read_text())
    assert info["resumes"][-1]["forced"] is True
    assert "ga.population: 8 -> 10" in info["resumes"][-1]["changes"]
    assert len(read_logbook(run_dir)) == 8


def test_raising_generations_continues_like_a_longer_run(tmp_path, reference):
    """Resume a finished 6-generation run to 8: the same as a run of 8 from the start."""
    import shutil

    from evonet.runner import run_experiment

    longer = tmp_path / "longer"
    run_experiment(config.load(None, TINY + ["ga.generations=8"]), longer, stream=io.StringIO())
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    assert resume(run_dir, "--set", "ga.generations=8") == 0
    assert strip(read_logbook(run_dir)) == strip(read_logbook(longer))
    np.testing.assert_array_equal(best_genome(run_dir), best_genome(longer))
    assert "ga.generations: 6 -> 8" in (run_dir / "run.log").read_text()
    assert config.load(run_dir / "config.yaml").ga.generations == 8


def test_sigterm_swallowed_inside_an_evaluation_still_stops_at_the_next_task(tmp_path, reference, monkeypatch,
                                                                           capsys):
    """SIGTERM landing in library code that swallows every exception (a TensorFlow/Keras
    callback) still ends the run: exit 143, generation 2 abandoned, generation 1 saved."""
    import os

    from evonet import loop
    from evonet.problems.snake_weights import SnakeWeightsProblem

    real_task, real_evaluate = SnakeWeightsProblem.evaluate_task.fget, loop.evaluate
    at = {"gen": None, "tasks": 0}

    def evaluate(problem, executor, genomes, generation, *args, **kw):
        at.update(gen=generation, tasks=0)
        return real_evaluate(problem, executor, genomes, generation, *args, **kw)

    def evaluate_task(self):
        fn = real_task(self)

        def swallowing(task):
            at["tasks"] += 1
            if at["gen"] == 2 and at["tasks"] == 1:  # generation 2, its first task
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.05)  # the handler runs here, inside the try
                except BaseException:  # noqa: BLE001 - what a callback that swallows errors does
                    pass
            return fn(task)

        return swallowing

    monkeypatch.setattr(loop, "evaluate", evaluate)
    monkeypatch.setattr(SnakeWeightsProblem, "evaluate_task", property(evaluate_task))
    run_dir = tmp_path / "run"
    code = main(["run", *SET, "--set", f"ga.generations={GENERATIONS}", "--out", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 143, err
    assert read_logbook(reference)[2]["evals"] > 2  # generation 2 has more than one task (chunk 2) ...
    assert at == {"gen": 2, "tasks": 1}  # ... and its others were not run
    assert f"SIGTERM: generation 1 is saved (checkpoints/gen-000001); continue with: evonet resume {run_dir}" in err
    assert json.loads((run_dir / "checkpoints" / "latest").read_text())["generation"] == 1
    assert len(read_logbook(run_dir)) == 2 and not (run_dir / "summary.json").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone with the run

    monkeypatch.undo()
    assert resume(run_dir) == 0
    assert_same_as_reference(run_dir, reference)
