"""A real 2-node Ray cluster on this machine: two `ray start` processes on 127.0.0.1 with
token authentication, inside the loopback-only namespace; `evonet run --address` drives it
from a subprocess, like a user would."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import ray_helpers as h
from conftest import worker_env
from evonet.executors import LocalExecutor

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(path: Path, text: str, proc, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{path.read_text(errors='replace')}")
        time.sleep(0.2)
    raise TimeoutError(f"ray start did not report {text!r}:\n{path.read_text(errors='replace')}")


def _stop(proc) -> None:
    """Stop one `ray start --block` (it stops the Ray processes it started), then its group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session (start_new_session): only what it started
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def cluster():
    token = secrets.token_hex(32)
    temp = tempfile.mkdtemp(prefix="evc-", dir="/tmp")  # short: Ray's unix sockets live below it
    port = _free_port()
    env = worker_env({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", f"--temp-dir={temp}",
              "--disable-usage-stats", "--object-store-memory=200000000"]
    procs = []
    try:
        for name, args in (("head", ["--head", f"--port={port}", "--include-dashboard=false"]),
                           ("worker", [f"--address=127.0.0.1:{port}"])):
            log = Path(temp, f"{name}.log")
            proc = subprocess.Popen([RAY, "start", *args, *common], env=env, stdout=log.open("w"),
                                    stderr=subprocess.STDOUT, start_new_session=True)
            procs.append(proc)
            _wait_for(log, "Ray runtime started", proc)
        yield {"address": f"127.0.0.1:{port}", "env": env}
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


def _cli(args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "evonet", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


TINY_ARGS = sum((["--set", o] for o in h.TINY), [])


def test_evonet_run_on_two_nodes_same_results_as_local(cluster, tmp_path):
    out = tmp_path / "run"
    # 2 workers of 1 CPU on two 1-CPU nodes: one worker on each node
    proc = _cli(["run", *TINY_ARGS, "--address", cluster["address"], "--workers", "2", "--out", str(out)],
                dict(cluster["env"], KERAS_HOME=str(tmp_path / "keras"), MPLCONFIGDIR=str(tmp_path / "mpl")))
    assert proc.returncode == 0, proc.stderr
    logbook = h.strip_timing([json.loads(x) for x in (out / "logbook.jsonl").read_text().splitlines()])
    local_log, local = h.evolve(h.tiny_config(), LocalExecutor())
    assert logbook == local_log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_fitness"] == local.best_fitness and summary["failures"] == 0


def test_ray_address_honoured_and_a_missing_token_is_one_line(cluster, tmp_path):
    env = dict(cluster["env"], RAY_ADDRESS=cluster["address"])
    env.pop("RAY_AUTH_TOKEN")
    env.pop("RAY_AUTH_MODE")
    out = tmp_path / "run"
    proc = _cli(["run", "--set", "executor.kind=ray", "--out", str(out)], env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    errors = proc.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("evonet: error: "), proc.stderr
    assert cluster["address"] in errors[0] and "RAY_AUTH_TOKEN" in errors[0]
    assert not out.exists()


USER_SCRIPT = '''
import json, sys
import numpy as np
import evonet

SHIFT = np.linspace(-1, 1, 6)  # a module-level value of the script, captured by the function

def shifted_sphere(genomes, seeds):  # defined in __main__: it reaches the workers by value
    import os
    return -((genomes - SHIFT) ** 2).sum(axis=1) + 0 * len(os.getpid().__str__())

kw = dict(n_genes=6, fitness=shifted_sphere, population=8, generations=5, seed=1, progress="none",
          tensorboard=False)
ray = evonet.evolve(out=sys.argv[1] + "/ray", executor="ray", address=sys.argv[2], workers=2, chunk=2, **kw)
local = evonet.evolve(out=sys.argv[1] + "/local", **kw)
out = {"ray": [g["best"] for g in ray.logbook], "local": [g["best"] for g in local.logbook],
       "ray_best": ray.best_fitness, "local_best": local.best_fitness}

# a Gymnasium environment given by a factory of this script, and a Keras policy
import gymnasium, keras

def short_pendulum():
    return gymnasium.wrappers.TimeLimit(gymnasium.make("Pendulum-v1"), max_episode_steps=30)

policy = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
gkw = dict(env=short_pendulum, population=6, generations=2, episodes=2, eval_episodes=3, seed=2,
           progress="none", tensorboard=False)
g_ray = evonet.evolve(policy, out=sys.argv[1] + "/gym_ray", executor="ray", address=sys.argv[2], workers=2, **gkw)
g_local = evonet.evolve(policy, out=sys.argv[1] + "/gym_local", **gkw)
out["gym"] = [[g["best"] for g in r.logbook] for r in (g_ray, g_local)]

# a build function of this script: architecture search on Ray workers
from evonet.data import load_digits
x, y = load_digits()
x = (x[:400] / 16.0).astype("float32")
y = y[:400]

def build(hp):
    m = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(),
                          keras.layers.Dense(hp.Int("units", 4, 32, log=True), activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
    m.compile(keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-2, log=True)), "sparse_categorical_crossentropy",
              metrics=["accuracy"])
    return m

skw = dict(epochs=1, population=2, generations=0, seed=0, progress="none", tensorboard=False, hall_of_fame=1,
           selection={"name": "tournament", "tournsize": 2})
s_ray = evonet.search(build, x, y, out=sys.argv[1] + "/nas_ray", executor="ray", address=sys.argv[2], workers=2, **skw)
s_local = evonet.search(build, x, y, out=sys.argv[1] + "/nas_local", **skw)
out["nas"] = [[g["best"] for g in r.logbook] for r in (s_ray, s_local)]
out["nas_hp"] = [s_ray.best_hyperparameters, s_local.best_hyperparameters]
print(json.dumps(out))
'''


def test_functions_of_a_user_script_reach_workers_on_two_nodes(cluster, tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT)
    env = dict(cluster["env"], KERAS_HOME=str(tmp_path / "keras"), MPLCONFIGDIR=str(tmp_path / "mpl"))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), cluster["address"]], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ray"] == out["local"] and out["ray_best"] == out["local_best"]
    assert json.loads((tmp_path / "ray" / "summary.json").read_text())["failures"] == 0
    # an env factory and a Keras build function of the script reach the workers too
    assert out["gym"][0] == out["gym"][1]
    assert out["nas"][0] == out["nas"][1] and out["nas_hp"][0] == out["nas_hp"][1]
    for run in ("gym_ray", "nas_ray"):
        assert json.loads((tmp_path / run / "summary.json").read_text())["failures"] == 0, run
