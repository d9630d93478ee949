"""Executors without starting Ray: the in-process executor, and the Ray executor's input
checks that fail before any Ray process starts (the Ray tests proper live in tests/ray)."""

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evonet import cli, config
from evonet.errors import DependencyNotInstalled, EvonetError
from evonet.executors import (ClusterUnreachable, ExecutorError, LocalExecutor, RayExecutor, SharedValue,
                              make_executor, resolve)

ROOT = Path(__file__).resolve().parents[1]


def _boom(x):
    if x == 2:
        raise ValueError("two")
    return -x


def test_local_map_in_order_with_errors_and_progress():
    ex = LocalExecutor()
    assert ex.map(abs, [-3, 1, -2]) == [3, 1, 2]
    seen = []
    out = ex.map(_boom, [1, 2, 3], on_error=lambda task, msg: (task, msg), on_result=seen.append)
    assert out == [-1, (2, "ValueError: two"), -3] and seen == out
    with pytest.raises(ValueError):
        ex.map(_boom, [2])
    with ex as same:
        assert same is ex and same.workers == 1


def test_local_share_is_the_value_itself():
    arr = np.ones(3)
    handle = LocalExecutor().share(arr)
    assert isinstance(handle, SharedValue) and resolve(handle) is arr
    assert resolve(arr) is arr  # plain values pass through


def test_make_executor_local():
    assert isinstance(make_executor(config.load(None)), LocalExecutor)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"workers": 0}, "executor.workers: must be >= 1, got 0"),
    ({"gpus_per_eval": 1.5}, "executor.gpus_per_eval: above 1 it must be a whole number"),
    ({"eval_timeout_s": 0}, "executor.eval_timeout_s: must be > 0"),
    ({"max_retries": -1}, "executor.max_retries: must be >= 0"),
    ({"address": "no-port-here"}, "executor.address: expected HOST:PORT"),
])
def test_ray_executor_rejects_bad_arguments_before_starting_anything(kwargs, fragment):
    with pytest.raises(ExecutorError, match=fragment):
        RayExecutor(**kwargs)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def test_unreachable_address_is_a_fast_one_line_error():
    address = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(ClusterUnreachable) as info:
        RayExecutor(address=address)
    assert address in str(info.value) and "ray start --head" in str(info.value)
    assert isinstance(info.value, EvonetError) and "\n" not in str(info.value)


def test_ray_address_environment_variable_is_honoured(monkeypatch):
    address = f"127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(ClusterUnreachable, match=address):
        make_executor(config.load(None, ["executor.kind=ray"]))


def test_cli_unreachable_address_exit_2_before_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["run", "--address", f"127.0.0.1:{_closed_port()}", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("evonet: error: cannot reach a Ray cluster at 127.0.0.1:")
    assert err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("args", [["--workers", "0"], ["--set", "executor.workers=0"]])
def test_cli_zero_workers_exit_2(tmp_path, capsys, args):
    out = tmp_path / "run"
    code = cli.main(["run", "--set", "executor.kind=ray", *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "workers" in err
    assert not out.exists()


def test_missing_ray_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(DependencyNotInstalled, match=r"pip install 'ray>=2.40'"):
        RayExecutor(workers=1)


def test_import_evonet_does_not_import_ray():
    code = "import sys, evonet, evonet.executors, evonet.cli, evonet.runner; print('ray' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_training_evaluation_reads_shared_data_and_is_deterministic():
    from evonet.evaluators.keras_train import TrainTask, digits_data, evaluate_train_task

    ex = LocalExecutor()
    handle = ex.share(digits_data())
    params = {"hidden": [16], "epochs": 2}
    a, b, c = ex.map(evaluate_train_task, [TrainTask(params, 1, handle), TrainTask(params, 1, handle),
                                          TrainTask(params, 2, handle)])
    assert a[0].error is None and 0.2 < a[0].fitness <= 1.0  # validation accuracy (10 classes: 0.1 by chance)
    assert a[0].fitness == b[0].fitness and a[0].metrics == b[0].metrics  # same seed, same result
    assert c[0].metrics["val_loss"] != a[0].metrics["val_loss"]
    broken = ex.map(evaluate_train_task, [TrainTask({"hidden": [-1]}, 1, handle)])[0][0]
    assert broken.error and broken.fitness == float("-inf")
