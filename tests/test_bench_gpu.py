"""The GPU check's CPU paths: ``scripts/gpu_check.sh --quick`` end to end (the snake engine on
the CPU, trainings on worker processes with Keras on JAX, a short search), the CUDA engine's
path of the check under numba's CUDA simulator, and its bad arguments."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _env(tmp_path, **extra):
    env = dict(os.environ)
    env.update({"KERAS_HOME": str(tmp_path / "keras"), "MPLCONFIGDIR": str(tmp_path / "mpl"),
                "PYTHON": sys.executable, "OUT": str(tmp_path / "out")})
    env.update(extra)
    return env


def test_gpu_check_script_quick_runs_every_part_on_cpus(tmp_path):
    pytest.importorskip("jax")
    # XLA's optimizations off: compiling dominates these one-epoch trainings (as in the JAX pass)
    env = _env(tmp_path, XLA_FLAGS="--xla_backend_optimization_level=0")
    env.pop("KERAS_BACKEND", None)  # the script's own default: JAX
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--quick"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["keras_backend"] == "jax"
    assert result["snake_device"] == "cpu"  # no GPU here: auto picks the CPU
    rows = result["snake"]
    assert {r["observation"] for r in rows} == {"blog7", "vision"}
    assert [r["games"] for r in rows if r["observation"] == "vision"] == [64, 256]
    for r in rows:
        assert r["env_steps"] > 0 and r["steps_per_s"] > 0
        assert r["checked_games"] == 16 and r["mismatches"] == 0
    train = result["train"]
    assert [t["workers"] for t in train] == [1, 2]
    for t in train:
        assert t["trainings"] >= t["workers"] and 0.0 <= t["median_val_accuracy"] <= 1.0
        assert t["gpu_memory_mib_per_worker"] is None and t["peak_rss_mib_per_worker"] > 50
    search = result["search"]
    assert 0.5 < search["test_accuracy"] <= 1.0  # digits, 20 s of search: far above chance
    assert (Path(search["run_dir"]) / "best" / "summary.json").is_file()
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| vision | 256 |" in table and "trainings/min" in table
    # the search ran on the process pool, on JAX, and TensorFlow was never imported for it
    run_cfg = (Path(search["run_dir"]) / "config.yaml").read_text()
    assert "kind: processes" in run_cfg


def test_gpu_check_snake_part_on_the_cuda_engine_under_the_simulator(tmp_path):
    env = _env(tmp_path, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-m", "evonet", "bench", "gpu", "--parts", "snake", "--quick",
                           "--snake-device", "cuda", "--snake-exponents", "3", "--snake-observations", "blog7",
                           "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["snake_device"] == "cuda"
    for r in result["snake"]:
        assert r["games"] == 8 and r["checked_games"] == 8 and r["mismatches"] == 0 and r["env_steps"] > 0


@pytest.mark.parametrize("args, field", [
    (["--parts", "snake,gpu"], "--parts"),
    (["--snake-exponents", "3,x"], "--snake-exponents"),
    (["--snake-observations", "blog7,eyes"], "--snake-observations"),
    (["--data-path", "/nonexistent/mnist_5k.csv.gz"], "--data-path"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, field):
    proc = subprocess.run([sys.executable, "-m", "evonet", "bench", "gpu", *args], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("evonet")]
    assert len(lines) == 1 and field in lines[0], proc.stderr
