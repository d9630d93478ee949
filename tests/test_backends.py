"""Keras backends: the architecture search's trainer, refit, cross-validation, multi-fidelity
rungs and export under TensorFlow, JAX and PyTorch (docs/search.md, "Keras backends").

This process runs TensorFlow (the default); every JAX and PyTorch run is a subprocess, since
Keras fixes its backend at import. Under JAX and PyTorch: no TensorFlow import, one thread
per pool, the same seed gives the same results (the same process or another), a rung
continued from its state equals one straight training, and a ``.keras`` file exported under
one backend predicts the same under the others. Bad backends are one-line errors, exit 2,
before any work. (scripts/test.sh also runs the tests marked ``backends`` under JAX.)
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None
needs_jax = pytest.mark.skipif(not HAS_JAX, reason="jax is not installed (pip install -e '.[jax]')")
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install -e '.[torch]')")
OTHER = [pytest.param("jax", marks=needs_jax), pytest.param("torch", marks=needs_torch)]

# a tiny mlp space: dropout (random state), batch norm (moving statistics), every optimizer
SPACE = {"name": "tiny", "model": "mlp", "genes": {
    "n_layers": {"type": "int", "low": 1, "high": 2},
    "units_1": {"type": "int", "low": 4, "high": 16, "log": True},
    "units_2": {"type": "int", "low": 4, "high": 16, "log": True, "when": {"gene": "n_layers", "min": 2}},
    "dropout": {"type": "choice", "values": [0.0, 0.2]},
    "batch_norm": {"type": "bool"},
    "optimizer": {"type": "choice", "values": ["adam", "sgd_momentum", "rmsprop"]},
    "learning_rate": {"type": "choice", "values": [0.003, 0.03]},
    "batch_size": {"type": "choice", "values": [64, 128]},
}}


def env_for(backend: str | None, tmp_path: Path) -> dict:
    """This interpreter's environment with ``KERAS_BACKEND`` (None: unset); JAX compiles with
    XLA's optimizations off, which only makes these tiny trainings compile faster."""
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS")}
    env.update(KERAS_HOME=str(tmp_path / "keras"), MPLCONFIGDIR=str(tmp_path / "mpl"),
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
               XLA_FLAGS="--xla_backend_optimization_level=0")
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    return env


def python(code: str, env: dict, *args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def last_json(proc) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the trainer

TRAINER = r'''
import json, os, sys, time
import numpy as np
from dataclasses import replace
from evonet.data.datasets import DataRef, load_dataset
from evonet.keras_backend import save_model, threads_in_force
from evonet.problems.nas import accuracy
from evonet.problems.nas.accuracy import (TrainBudget, cross_validate_fold, refit_genome, train_genome,
                                          train_genome_rung, unpack_state)
from evonet.tf_utils import import_keras

OUT = sys.argv[1]
keras = import_keras()
backend = keras.backend.backend()
out = {"backend": backend}

# one thread: the busiest thread of a long computation does all of its work
if backend == "jax":
    import jax, jax.numpy as jnp
    def ticks():
        rows = {}
        for t in os.listdir("/proc/self/task"):
            try:
                f = open(f"/proc/self/task/{t}/stat").read().rsplit(")", 1)[1].split()
                rows[t] = int(f[11]) + int(f[12])
            except OSError:
                pass
        return rows
    a = jnp.asarray(np.random.default_rng(0).random((700, 700), dtype=np.float32))
    f = jax.jit(lambda a: (a @ a @ a).sum())
    f(a).block_until_ready()
    before, t0 = ticks(), time.process_time()
    while time.process_time() - t0 < 1.5:
        f(a).block_until_ready()
    after = ticks()
    used = sorted((after[t] - before.get(t, 0) for t in after), reverse=True)
    out["busiest_share"] = used[0] / max(1, sum(used))
    out["xla_flags"] = os.environ.get("XLA_FLAGS", "")
elif backend == "torch":
    import torch
    out["torch_threads"] = [torch.get_num_threads(), torch.get_num_interop_threads()]
out["threads_in_force"] = threads_in_force()

d = load_dataset(DataRef("digits"))
d = replace(d, x_train=d.x_train[:400], y_train=d.y_train[:400], x_val=d.x_val[:200], y_val=d.y_val[:200])
budget = TrainBudget(epochs=2, patience=1, max_params=100_000)
mlp = {"n_layers": 2, "units_1": 16, "units_2": 12, "dropout": 0.2, "batch_norm": True, "lr_schedule": "cosine",
       "batch_size": 64}
out["optimizers"] = {}
for opt in ("sgd", "sgd_momentum", "sgd_nesterov", "rmsprop", "adam", "adamw"):
    r, _ = train_genome({**mlp, "optimizer": opt, "learning_rate": 0.01, "momentum": 0.9}, "mlp", d, budget, seed=4)
    out["optimizers"][opt] = r.error or r.fitness
a, _ = train_genome(mlp, "mlp", d, budget, seed=7)
b, _ = train_genome(mlp, "mlp", d, budget, seed=7)
c, _ = train_genome(mlp, "mlp", d, budget, seed=8)
out["same_seed_same_result"] = a.error is None and a.fitness == b.fitness and a.metrics == b.metrics
out["other_seed_other_result"] = c.metrics["val_loss"] != a.metrics["val_loss"]
out["seed7"] = [a.fitness, a.metrics["val_loss"]]
refit, model = refit_genome(mlp, "mlp", d, budget, 7, 2)
out["refit"] = [refit.error, refit.metrics.get("epochs"), refit.metrics.get("train_examples")]
folds = [cross_validate_fold(mlp, "mlp", d, budget, 7, 2, f, 3, by_epoch=True) for f in range(2)]
out["cv"] = [[r.error, r.metrics.get("examples"), r.metrics.get("correct_by_epoch")] for r in folds]

# multi-fidelity: 0 -> 1 -> 2 gives the weights and optimizer state of 0 -> 2, live or rebuilt
def weights(state):
    _, _, m, o = unpack_state(state)
    return m + o
rungs = {}
for live in (4, 0):
    accuracy.keep_live_models(live)
    straight, s2 = train_genome_rung(mlp, "mlp", d, budget, 5, 2)
    first, s1 = train_genome_rung(mlp, "mlp", d, budget, 5, 1)
    cont, s12 = train_genome_rung(mlp, "mlp", d, budget, 5, 2, state=s1)
    rungs[live] = (straight.error is None and cont.error is None and cont.fitness == straight.fitness
                   and all(np.array_equal(x, y) for x, y in zip(weights(s2), weights(s12))))
out["rungs_equal"] = rungs

# a cnn with augmentation, batch norm and dropout: trains, is exported, predicts
cnn = {"conv_blocks": 1, "filters_1": 8, "kernel_1": 3, "dense_units": 16, "batch_norm": True, "dropout": 0.1,
       "shift": 0.1, "rotation": 0.05, "zoom": 0.1, "batch_size": 64}
r, model = train_genome(cnn, "cnn", d, TrainBudget(epochs=1, patience=0), seed=2, keep_model=True)
out["cnn"] = r.error or r.fitness
x = d.x_test[:32].astype(np.float32)
np.save(os.path.join(OUT, "pred.npy"), np.asarray(model.predict(x, verbose=0)))
save_model(model, os.path.join(OUT, "model.keras"))
out["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(out))
'''


@pytest.mark.parametrize("backend", OTHER)
def test_the_trainer_on_another_backend(backend, tmp_path):
    """Every optimizer, seeded determinism, refit, cross-validation, rungs continued from
    their state, a cnn with augmentation; one thread; no TensorFlow import."""
    out = last_json(python(TRAINER, env_for(backend, tmp_path), str(tmp_path), timeout=500))
    assert out["backend"] == backend and out["tensorflow_imported"] is False
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in out["optimizers"].values()), out["optimizers"]
    assert out["same_seed_same_result"] and out["other_seed_other_result"]
    assert out["refit"] == [None, 2.0, 600.0]
    assert all(e is None and n in (300.0, 300.0) and len(curve) == 2 for e, n, curve in out["cv"]), out["cv"]
    assert out["rungs_equal"] == {"4": True, "0": True}
    assert isinstance(out["cnn"], float)
    if backend == "jax":
        assert "--xla_cpu_multi_thread_eigen=false" in out["xla_flags"]
        assert "--xla_backend_optimization_level=0" in out["xla_flags"]  # the environment's flags kept
        assert out["threads_in_force"] == 1 and out["busiest_share"] > 0.9, out
    else:
        assert out["torch_threads"] == [1, 1] and out["threads_in_force"] == 1
    # the cnn exported there loads here (TensorFlow) and predicts the same
    here = predict_here(tmp_path / "model.keras")
    np.testing.assert_allclose(here, np.load(tmp_path / "pred.npy"), rtol=1e-5, atol=1e-5)


def test_input(n: int = 32) -> np.ndarray:
    from evonet.data.datasets import DataRef, load_dataset

    return load_dataset(DataRef("digits")).x_test[:n].astype(np.float32)


test_input.__test__ = False  # a helper, not a test


def predict_here(path: Path) -> np.ndarray:
    from evonet.keras_backend import load_model

    return np.asarray(load_model(path).predict(test_input(), verbose=0))


# ----------------------------------------------------------------------------- export

LOAD = r'''
import json, sys
import numpy as np
from evonet.keras_backend import load_model
from evonet.data.datasets import DataRef, load_dataset
m = load_model(sys.argv[1])
x = load_dataset(DataRef("digits")).x_test[:32].astype(np.float32)
np.save(sys.argv[2], np.asarray(m.predict(x, verbose=0)))
print(json.dumps({"backend": __import__("keras").backend.backend(),
                  "tensorflow_imported": "tensorflow" in sys.modules}))
'''


@pytest.mark.parametrize("backend", OTHER)
def test_a_model_exported_under_tensorflow_predicts_the_same_under(backend, tmp_path):
    from evonet.data.datasets import DataRef, load_dataset
    from evonet.keras_backend import save_model
    from evonet.problems.nas.accuracy import TrainBudget, train_genome
    from evonet.tf_utils import import_keras

    if import_keras().backend.backend() != "tensorflow":
        pytest.skip("exports under TensorFlow: this process runs another backend")
    genome = {"conv_blocks": 2, "filters_1": 8, "kernel_1": 3, "filters_2": 8, "kernel_2": 3, "pooling": "max",
              "dense_units": 16, "batch_norm": True, "dropout": 0.2, "shift": 0.1, "rotation": 0.05, "batch_size": 64}
    res, model = train_genome(genome, "cnn", load_dataset(DataRef("digits")), TrainBudget(epochs=1, patience=0),
                              seed=0, keep_model=True)
    assert res.error is None
    save_model(model, tmp_path / "tf.keras")
    ours = np.asarray(model.predict(test_input(), verbose=0))
    out = last_json(python(LOAD, env_for(backend, tmp_path), str(tmp_path / "tf.keras"), str(tmp_path / "p.npy")))
    assert out == {"backend": backend, "tensorflow_imported": False}
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), ours, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- whole searches

RUN = r'''
import json, sys
from evonet.cli import main
codes = [main(["run", sys.argv[1], "--out", out, *sys.argv[3:]]) for out in sys.argv[2].split(",")]
print(json.dumps({"codes": codes, "tensorflow_imported": "tensorflow" in sys.modules,
                  "backend": __import__("keras").backend.backend()}))
'''


def write_config(tmp_path: Path, name: str = "tiny_backends", tensorboard: bool = False, **ga) -> Path:
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    cfg = {"name": name, "seed": 3, "genome": "hyperparameters", "eval_games": 0,
           "search": {"space": str(space), "dataset": "digits", "epochs": 2, "patience": 1, "final_folds": 2},
           "ga": {k: v for k, v in {"population": 3, "offspring": 2, "generations": 1, "hall_of_fame": 2,
                                    "final_games": 1, **ga}.items() if v is not None},
           "log": {"tensorboard": tensorboard, "progress": "lines"}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def outcome(run_dir: Path) -> dict:
    """What a run found: its best summary (timings dropped) and every evaluation's figures."""
    best = json.loads((run_dir / "best" / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    drop = ("seconds", "finalize_seconds", "model")
    best = {k: v for k, v in best.items() if k not in drop}
    best["refit"] = {k: v for k, v in best["refit"].items() if k != "seconds"}
    return {"best": best, "evaluations": [{k: v for k, v in r.items() if k != "seconds"} for r in rows]}


@needs_jax
def test_a_search_under_jax_reproduces_itself_and_multi_fidelity_runs(tmp_path):
    """KERAS_BACKEND=jax: a search with 2-fold cross-validation and refit, twice (the second
    in another process) gives the same evaluations, best genome and test accuracy; a
    multi-fidelity (aging, successive halving) search runs; TensorFlow is never imported, not
    even for the TensorBoard scalars."""
    cfg = write_config(tmp_path, tensorboard=True)
    asha = write_config(tmp_path, "tiny_asha", algorithm="aging", lag=2, offspring=None, generations=2,
                        selection={"name": "tournament", "tournsize": 2}, cxpb=0.0,
                        fidelity={"min_budget": 1, "max_budget": 2, "reduction_factor": 2})
    env = env_for("jax", tmp_path)
    first = last_json(python(RUN, env, str(cfg), str(tmp_path / "a")))
    again = last_json(python(RUN, env, str(cfg), str(tmp_path / "b")))
    fid = last_json(python(RUN, env, str(asha), str(tmp_path / "asha")))
    for out in (first, again, fid):
        assert out == {"codes": [0], "tensorflow_imported": False, "backend": "jax"}
    a, b = outcome(tmp_path / "a"), outcome(tmp_path / "b")
    assert a == b
    best = a["best"]
    assert best["backend"] == "jax" and best["cross_validation"]["folds"] == 2
    assert best["refit"]["train_examples"] == 1437
    assert 0.0 < best["test_accuracy"] <= 1.0
    assert json.loads((tmp_path / "a" / "problem.json").read_text())["backend"] == "jax"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "a" / "tensorboard"))
    acc.Reload()
    logbook = [json.loads(line) for line in (tmp_path / "a" / "logbook.jsonl").read_text().splitlines()]
    assert [(e.step, e.value) for e in acc.Scalars("fitness/best")] == [
        (r["gen"], pytest.approx(r["best"])) for r in logbook]
    rows = outcome(tmp_path / "asha")["evaluations"]
    assert {r.get("budget") for r in rows} == {1.0, 2.0} and all(r["error"] is None for r in rows)
    # the model exported under JAX loads here (TensorFlow) and predicts raw images
    pred = predict_here(tmp_path / "a" / "best" / "model.keras")
    assert pred.shape == (32, 10) and np.allclose(pred.sum(axis=1), 1.0, atol=1e-4)


@needs_torch
def test_search_backend_torch_from_the_config(tmp_path):
    """search.backend: torch (no KERAS_BACKEND in the environment) puts PyTorch in force."""
    cfg = write_config(tmp_path)
    out = last_json(python(RUN, env_for(None, tmp_path), str(cfg), str(tmp_path / "t"), "--set",
                           "search.backend=torch"))
    assert out == {"codes": [0], "tensorflow_imported": False, "backend": "torch"}
    best = outcome(tmp_path / "t")["best"]
    assert best["backend"] == "torch" and best["cross_validation"]["folds"] == 2
    assert "search:\n" in (tmp_path / "t" / "config.yaml").read_text()
    assert "backend: torch" in (tmp_path / "t" / "config.yaml").read_text()


# ----------------------------------------------------------------------------- bad input


@needs_jax
def test_bad_backends_exit_2_with_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    from evonet import keras_backend
    from evonet.cli import main

    real = importlib.util.find_spec
    cfg = write_config(tmp_path)
    never = tmp_path / "never"

    def run(*sets) -> str:
        args = [a for s in sets for a in ("--set", s)]
        code = main(["run", str(cfg), "--out", str(never), *args])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and not never.exists(), (code, err)
        return err

    err = run("search.backend=tensorflw")
    assert "search.backend: unknown value 'tensorflw' (did you mean 'tensorflow'?)" in err
    assert "choose from tensorflow, jax, torch" in err
    monkeypatch.setattr(keras_backend.importlib.util, "find_spec",
                        lambda name, *a: None if name == "jax" else real(name, *a))
    err = run("search.backend=jax")
    assert 'search.backend: backend jax is not installed in this Python; pip install "jax[cpu]"' in err
    monkeypatch.setattr(keras_backend.importlib.util, "find_spec", real)
    monkeypatch.setenv("KERAS_BACKEND", "mxnet")
    err = run()
    assert "KERAS_BACKEND: unknown Keras backend 'mxnet'; choose from tensorflow, jax, torch" in err
    monkeypatch.delenv("KERAS_BACKEND")
    # Keras already imported with one backend, another asked for: no silent switch
    monkeypatch.setattr(keras_backend, "loaded_backend", lambda: "tensorflow")
    err = run("search.backend=jax")  # jax: the test extra installs it, torch is optional
    assert ("search.backend: jax, but Keras is already imported with the tensorflow backend in this process; "
            "set KERAS_BACKEND=jax before importing keras") in err


def test_backend_precedence_and_one_thread_flags(monkeypatch):
    from evonet import keras_backend as kb

    monkeypatch.setattr(kb, "loaded_backend", lambda: None)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert kb.requested_backend() == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert kb.requested_backend() == "jax" and kb.requested_backend("torch") == "torch"
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setattr(kb, "loaded_backend", lambda: "torch")  # a Keras imported already (keras.json)
    assert kb.requested_backend() == "torch"
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    kb._xla_flags_one_thread()
    kb._xla_flags_one_thread()  # idempotent
    assert os.environ["XLA_FLAGS"] == ("--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=false "
                                      "intra_op_parallelism_threads=1")


def test_importing_evonet_imports_no_backend():
    code = ("import sys, evonet, evonet.keras_backend, evonet.tf_utils, evonet.problems.nas.accuracy\n"
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-2000:]


def test_the_plain_tensorboard_writer_is_read_by_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from evonet.tblog import PlainEventWriter, crc32c

    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    w = PlainEventWriter(tmp_path)
    w.scalars(0, [("fitness/best", 0.5), ("speed/seconds_per_generation", 12.25)])
    w.scalars(1, [("fitness/best", 0.75)])
    w.scalars(2, [])
    w.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"fitness/best", "speed/seconds_per_generation"}
    assert [(e.step, e.value) for e in acc.Scalars("fitness/best")] == [(0, 0.5), (1, 0.75)]


def test_a_run_resumes_only_on_the_backend_it_trained_on():
    from evonet.core.errors import ConfigError
    from evonet.data.datasets import DataRef
    from evonet.problems.nas.accuracy import TrainBudget
    from evonet.problems.nas.problem import HyperparamProblem
    from evonet.problems.nas.space import SearchSpace, resolve_space_path

    space = SearchSpace.load(resolve_space_path("dense_classifier"))
    problem = HyperparamProblem(space, DataRef("digits"), TrainBudget(epochs=1), 0)
    state = problem.get_state()
    assert state["backend"] == problem.backend
    problem.set_state(state)
    problem.set_state({k: v for k, v in state.items() if k != "backend"})  # a checkpoint from before the field
    other = "torch" if problem.backend != "torch" else "jax"
    with pytest.raises(ConfigError) as info:
        problem.set_state({**state, "backend": other})
    assert str(info.value) == (f"search.backend: this run trained on the {other} backend, the resume would train on "
                               f"{problem.backend}; resume it with KERAS_BACKEND={other}")


@needs_jax
def test_the_python_api_refuses_a_backend_its_keras_does_not_run(tmp_path):
    import evonet
    from evonet.core.errors import ConfigError
    from evonet.tf_utils import import_keras

    keras = import_keras()
    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"  # both installed by the test extra

    def build(hp):
        raise AssertionError("never built: the backend is checked first")

    x, y = np.zeros((20, 4), np.float32), np.arange(20) % 2
    with pytest.raises(ConfigError, match=f"search.backend: {other}, but Keras is already imported with the "
                                          f"{keras.backend.backend()} backend"):
        evonet.search(build, x, y, backend=other, out=tmp_path / "never", progress="none")
    assert not (tmp_path / "never").exists()
