"""The CUDA snake engine (evonet.envs.snake.cuda) without a GPU: its kernel run by numba's
CUDA simulator plays the CPU fused engine's games, game for game (both rule sets, both
observation sets, every activation, long games, several blocks); the kernel compiles to PTX
without one fused multiply-add (where libNVVM is installed); ``snake.device`` (auto, cpu,
cuda) and its errors: ``cuda`` without a GPU is one line and exit 2 before any work.

numba reads ``NUMBA_ENABLE_CUDASIM`` when it is first imported, so the simulated games are
played in a process of their own (tests/snake_cuda_cases.py), once for the module."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from evonet import config, nn
from evonet.core.errors import ConfigError
from evonet.envs.snake import fused
from evonet.envs.snake.rules import make_rules
from tests import snake_cuda_cases as cases

ROOT = Path(__file__).resolve().parents[1]


def _gpu_available() -> bool:
    from evonet.envs.snake.cuda import gpu_available

    return gpu_available()


@pytest.fixture(scope="module")
def simulated():
    """``(the JSON of NUMBA_ENABLE_CUDASIM=1 python -m tests.snake_cuda_cases, the CPU fused
    engine's results of every case)``: both computed at once, the simulator in its process."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "tests.snake_cuda_cases"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cpu = {case["id"]: cases.results_dict(fused.play_mlp(*cases.build(case))) for case in cases.CASES}
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-4000:]
    return json.loads(out), cpu


@pytest.mark.parametrize("case", cases.CASES, ids=[c["id"] for c in cases.CASES])
def test_the_simulated_kernel_plays_the_cpu_engines_games(simulated, case):
    spec, weights, rules, observation, seeds = cases.build(case)
    want = simulated[1][case["id"]]
    got = simulated[0]["cases"][case["id"]]
    for key in ("scores", "steps", "deaths", "won", "env_steps"):
        assert got[key] == want[key], f"{key}: CUDA {got[key]} != CPU {want[key]}"
    assert want["env_steps"] >= seeds.size * 2
    if case["id"].endswith(("-long", "-markreset")):  # long games: many apples, long bodies
        assert max(max(row) for row in want["scores"]) > 15
    if "markreset" in case["id"]:
        assert all(all(row) for row in want["won"])  # a won game: the whole board filled


def test_the_cuda_device_end_to_end_under_the_simulator(simulated):
    from evonet.problems.snake.evaluate import evaluate_weights

    simulated = simulated[0]

    assert simulated["simulator"] and simulated["status"] == [True, "simulator"]
    # auto never picks the simulator; cuda accepts it (that is how these tests run the kernel)
    assert simulated["resolve"] == {"auto": "cpu", "cpu": "cpu", "cuda": "cuda"}
    spec, weights, rules, observation, seeds = cases.build(cases.CASES[0])
    want = evaluate_weights(spec, weights, rules, observation, seeds, device="cpu")
    assert simulated["evaluate_weights"] == cases.results_dict(want)
    # a problem built from a config with snake.device: cuda scores its genomes as on the CPU
    assert simulated["problem_fitness"] == cases.problem_fitness("cpu")
    assert max(simulated["problem_fitness"]) > 0


def test_the_device_field_and_what_it_refuses():
    from evonet.problems.snake.config import resolve_device
    from evonet.problems.snake.problem import SnakeWeightsProblem

    assert config.load(None).snake.device == "auto"
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if _gpu_available() else "cpu")
    cfg = config.load(None, ["snake.device=cpu", "snake.observation=blog7"])
    problem = SnakeWeightsProblem.from_config(cfg)
    task = problem.make_tasks(np.zeros((2, problem.n_genes)), 0, [0, 1], 2)[0]
    assert task.device == "cpu" and problem.describe()["device"] == "cpu"
    assert "fused engine, all threads" in problem.banner()
    with pytest.raises(ConfigError, match="snake.device: unknown value 'gpu'"):
        config.load(None, ["snake.device=gpu"])
    # the batched engine is the CPU reference path: refused with cuda on any machine, first
    with pytest.raises(ConfigError, match="snake.device: cuda runs the fused engine, but snake.engine is batched"):
        config.load(None, ["snake.device=cuda", "snake.engine=batched"])
    with pytest.raises(ConfigError, match="snake.device: expected one of auto, cpu, cuda"):
        resolve_device("gpu")
    if not _gpu_available():
        with pytest.raises(ConfigError, match=r"^snake.device: cuda needs an NVIDIA GPU .*use snake.device=cpu"):
            config.load(None, ["snake.device=cuda"])


def test_cuda_without_a_gpu_exits_2_before_any_work(tmp_path, evonet_cmd, subprocess_env):
    if _gpu_available():
        pytest.skip("numba finds a GPU here: snake.device: cuda is valid")
    env = {k: v for k, v in subprocess_env.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = tmp_path / "run"
    proc = subprocess.run(evonet_cmd + ["run", "experiments/snake_weights.yaml", "--set", "snake.device=cuda",
                                        "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evonet: error: snake.device: cuda needs an NVIDIA GPU")
    assert "snake.device=cpu" in lines[0] and not out.exists()


def test_what_the_cuda_engine_refuses():
    from evonet.envs.snake import cuda
    from evonet.problems.snake.evaluate import evaluate_weights

    rules = make_rules("classic")
    seeds = np.zeros((1, 2), dtype=np.uint64)
    bad = nn.MLPSpec(7, (4,), 3, activation="softmax")
    with pytest.raises(fused.FusedUnsupported, match="network.activation: softmax is only an output activation"):
        cuda.play_mlp_cuda(bad, np.zeros((1, bad.n_params), np.float32), rules, "blog7", seeds)
    spec = nn.MLPSpec(7, (4,), 3)
    w = np.zeros((1, spec.n_params), np.float32)
    with pytest.raises(ValueError, match="threads: expected an integer >= 1, got 0"):
        cuda.play_mlp_cuda(spec, w, rules, "blog7", seeds, threads=0)
    with pytest.raises(ValueError, match="threads_per_block: expected an integer in 1..1024, got 0"):
        cuda.play_mlp_cuda(spec, w, rules, "blog7", seeds, threads_per_block=0)
    with pytest.raises(ValueError, match="observation 'vision' has 35 features but the network takes 7"):
        cuda.play_mlp_cuda(spec, w, rules, "vision", seeds)
    empty = cuda.play_mlp_cuda(spec, w[:0], rules, "blog7", seeds[:0])  # no game: no GPU needed
    assert empty.scores.shape == (0, 2) and empty.env_steps == 0
    with pytest.raises(ValueError, match="device: expected one of auto, cpu, cuda, got 'gpu'"):
        evaluate_weights(spec, w, rules, "blog7", seeds, device="gpu")
    with pytest.raises(ValueError, match="device: cuda runs the fused engine"):
        evaluate_weights(spec, w, rules, "blog7", seeds, engine="batched", device="cuda")
    from evonet.problems.snake.problem import SnakeWeightsProblem

    with pytest.raises(fused.FusedUnsupported, match="network.activation: softmax"):
        SnakeWeightsProblem(bad, "classic", 10, "blog7", 2, 1.0, device="cuda")
    with pytest.raises(ValueError, match="device: cuda runs the fused engine"):
        SnakeWeightsProblem(spec, "classic", 10, "blog7", 2, 1.0, engine="batched", device="cuda")
    with pytest.raises(ValueError, match="device: expected one of auto, cpu, cuda, got 'gpu'"):
        SnakeWeightsProblem(spec, "classic", 10, "blog7", 2, 1.0, device="gpu")
    # auto with a network only the batched engine runs: the CPU
    assert SnakeWeightsProblem(bad, "classic", 10, "blog7", 2, 1.0, device="auto").device == "cpu"
    if not _gpu_available():
        with pytest.raises(cuda.CudaUnavailable, match="^the CUDA snake engine needs a GPU that numba can use: "):
            cuda.play_mlp_cuda(spec, w, rules, "blog7", seeds)
        with pytest.raises(ConfigError, match="^snake.device: cuda needs an NVIDIA GPU"):
            evaluate_weights(spec, w, rules, "blog7", seeds, device="cuda")
        # auto plays on the CPU here
        auto = evaluate_weights(spec, w, rules, "blog7", seeds, device="auto")
        np.testing.assert_array_equal(auto.steps, fused.play_mlp(spec, w, rules, "blog7", seeds).steps)


def _nvvm_missing() -> str | None:
    """Why libNVVM cannot be loaded here (None: it can)."""
    try:
        from numba.cuda.cudadrv.nvvm import NVVM, LibDevice

        NVVM()
        LibDevice()
    except Exception as exc:  # noqa: BLE001
        return " ".join(str(exc).split())[:200] or type(exc).__name__
    return None


#: multiply-adds in PTX: fma.rn.f32, fma.rn.ftz.f32, fma.rn.f64, mad.rn.f32, ... (not the integer mad.lo)
FMA = re.compile(r"\b(?:fma|mad)(?:\.r[nzmp])?(?:\.ftz)?(?:\.sat)?\.f(?:16|32|64)\b")


def test_nvvm_contracts_a_plain_multiply_add():
    """The control of the test below: NVVM fuses ``a * b + c`` unless told not to."""
    reason = _nvvm_missing()
    if reason:
        pytest.skip(f"libNVVM is not installed here ({reason})")
    from numba import cuda, float32

    def mul_add(a, b, c):
        return a * b + c

    ptx, _ = cuda.compile_ptx(mul_add, (float32, float32, float32), device=True, cc=(9, 0))
    assert FMA.findall(ptx) == ["fma.rn.f32"]


def test_the_kernel_compiles_to_ptx_without_fused_multiply_adds():
    """One kernel holds every floating-point source the engine has: the forward pass, tanh32
    (hidden), exp64 (the sigmoid output), the observations' unit vectors and dot products
    (vision; blog7's share _unit). numba lowers the whole engine (every observation set, rule
    set and activation) before NVVM drops the branches this kernel does not take."""
    reason = _nvvm_missing()
    if reason:
        pytest.skip(f"libNVVM is not installed here ({reason})")
    import numba

    from evonet.envs.snake import cuda
    from evonet.envs.snake import engine as _e
    from evonet.envs.snake.arith import rn_add, rn_mul

    # the CPU versions typed in this process first: numba's inlining of overloads does not look
    # at their target, so CPU overloads inlined at numba's level would end up in the kernel
    assert numba.njit(fused.tanh32.py_func)(np.float32(0.5)) == fused.tanh32(np.float32(0.5))
    assert numba.njit(fused.exp64.py_func)(0.5) == fused.exp64(0.5)
    assert numba.njit(_e._unit.py_func)(3.0, 4.0) == (0.6, 0.8)
    assert numba.njit(lambda a, b: rn_add(rn_mul(a, b), rn_mul(b, a)))(0.5, 3) == 3.0
    spec = nn.MLPSpec(35, (8,), 3, activation="tanh", output_activation="sigmoid")
    ptx = cuda.compile_ptx(spec, make_rules("theailearner"), "vision", cc=(9, 0))
    assert ".entry" in ptx and ".target sm_90" in ptx
    assert FMA.findall(ptx) == []  # no fused multiply-add anywhere in the kernel
    # and every float add / mul has an explicit rounding mode, which ptxas never fuses either
    # (it may fuse a plain mul.f32 and add.f32 into an FFMA when it assembles the PTX)
    assert re.findall(r"\b(?:add|sub|mul)(?:\.ftz)?\.f(?:32|64)\b", ptx) == []
    # the forward pass and tanh32: float32 products and sums each rounded once; exp64 and the
    # observations: float64 ones
    assert "mul.rn.f32" in ptx and "add.rn.f32" in ptx and "mul.rn.f64" in ptx and "add.rn.f64" in ptx
    # IEEE division and square root, no flush to zero
    assert "div.rn.f" in ptx and not re.search(r"div\.(?:approx|full)|\.ftz", ptx)
    assert "sqrt.rn.f64" in ptx and "sqrt.approx" not in ptx
    assert " call" not in ptx.replace("\t", " ")  # every device function inlined
    ptxas = shutil.which("ptxas") or next((str(p) for p in Path("/usr/local").glob("cuda*/bin/ptxas")), None)
    if ptxas:  # it assembles for the H100 / H200
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "kernel.ptx"
            src.write_text(ptx)
            proc = subprocess.run([ptxas, "-arch=sm_90", "-v", str(src), "-o", str(Path(tmp) / "kernel.cubin")],
                                  capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
