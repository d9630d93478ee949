"""A hyperparameter search SIGKILLed after generation 1's checkpoint and resumed equals the
uninterrupted run: logbook, cache hits, trainings, archive and best genome (the problem's
evaluation cache, genomes and counters are checkpointed: HyperparamProblem.get_state)."""

from __future__ import annotations

import io
import json
import signal
from pathlib import Path

import yaml

from evonet import config
from test_resume import PRELUDE, driver, read_logbook, resume, strip

SPACE = {"name": "tiny", "model": "mlp", "genes": {
    "n_layers": {"type": "int", "low": 1, "high": 2},
    "units_1": {"type": "int", "low": 4, "high": 16, "log": True},
    "units_2": {"type": "int", "low": 4, "high": 16, "log": True, "when": {"gene": "n_layers", "min": 2}},
    "learning_rate": {"type": "choice", "values": [0.003, 0.03]},
}}
# generation 1's checkpoint is complete on disk: die at once (as a SIGKILL from outside would)
KILL_AFTER_GEN_1 = PRELUDE + """
orig_commit = checkpoint.commit_checkpoint
def commit(run_dir, prepared, keep=2):
    path = orig_commit(run_dir, prepared, keep)
    if path.name == "gen-000001":
        os.kill(os.getpid(), signal.SIGKILL)
    return path
checkpoint.commit_checkpoint = commit
"""


def write_config(tmp_path: Path) -> Path:
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    cfg = {"name": "tiny_search", "seed": 3, "genome": "hyperparameters", "eval_games": 0,
           "search": {"space": str(space), "dataset": "digits", "epochs": 1, "patience": 0},
           "ga": {"population": 4, "generations": 3, "reevaluate": True, "hall_of_fame": 2, "final_games": 1,
                  "selection": {"name": "best"}, "crossover": {"name": "uniform", "indpb": 0.5},
                  "mutation": {"name": "gaussian", "mu": 0.0, "sigma": 0.15, "indpb": 0.3}},
           "executor": {"chunk": 2}, "log": {"tensorboard": False, "progress": "lines"}}
    path = tmp_path / "tiny_search.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def archive(run_dir: Path) -> list:
    rows = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_sigkilled_search_resumes_with_its_cache_and_equals_the_uninterrupted_run(tmp_path, subprocess_env):
    from evonet.runner import run_experiment

    cfg_path = write_config(tmp_path)
    reference = tmp_path / "reference"
    run_experiment(config.load(cfg_path), reference, stream=io.StringIO())

    run_dir = tmp_path / "run"
    proc = driver(KILL_AFTER_GEN_1, ["run", str(cfg_path), "--out", str(run_dir)], subprocess_env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err
    assert json.loads((run_dir / "checkpoints" / "latest").read_text())["generation"] == 1
    assert not (run_dir / "summary.json").exists()
    state = json.loads((run_dir / "checkpoints" / "gen-000001" / "state.json").read_text())
    assert state["problem"]["trainings"] > 0 and state["problem"]["cache"]  # the cache is in the checkpoint

    assert resume(run_dir) == 0
    assert strip(read_logbook(run_dir)) == strip(read_logbook(reference))
    a = json.loads((run_dir / "best" / "summary.json").read_text())
    b = json.loads((reference / "best" / "summary.json").read_text())
    assert sum(r["cache_hits"] for r in read_logbook(reference)) > 0  # re-evaluated parents: cache hits
    for key in ("trainings", "cache_hits", "evaluations", "genome", "hash", "search_fitness"):
        assert a[key] == b[key], key
    assert archive(run_dir) == archive(reference)
    pareto = [[{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((d / "best" / "pareto.json").read_text())]
              for d in (run_dir, reference)]
    assert pareto[0] == pareto[1]
