"""A multi-fidelity architecture search with aging evolution, end to end: SIGKILLed in the
middle of a rung's training and resumed, it equals the uninterrupted run (logbook, every job,
the archive of (genome, budget) results and the best genome); promotions continue their
parent's training; the run reports utilization, its rungs and learning curves, and deletes
its training states when complete. Bad schedules are one-line errors before any training."""

from __future__ import annotations

import io
import json
import signal
from pathlib import Path

import yaml

from evonet import config
from evonet.cli import main
from test_resume import PRELUDE, driver, read_logbook, resume, strip
from test_search_resume import SPACE, archive

# the 11th training: after generation 1's checkpoint (8 results told), mid-way through generation 2
KILL_MID_RUNG = PRELUDE + """
orig_map = executors.LocalExecutor.map
calls = [0]
def map_(self, fn, tasks, on_error=None, on_result=None):
    calls[0] += 1
    if calls[0] == 11:
        os.kill(os.getpid(), signal.SIGKILL)
    return orig_map(self, fn, tasks, on_error, on_result)
executors.LocalExecutor.map = map_
"""


def write_config(tmp_path: Path, **ga) -> Path:
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    cfg = {"name": "tiny_asha", "seed": 5, "genome": "hyperparameters", "eval_games": 0,
           "search": {"space": str(space), "dataset": "digits", "epochs": 3, "patience": 0},
           "ga": {"algorithm": "aging", "population": 4, "generations": 3, "lag": 3, "hall_of_fame": 2,
                  "final_games": 1, "selection": {"name": "tournament", "tournsize": 2},
                  "mutation": {"name": "gaussian", "mu": 0.0, "sigma": 0.25, "indpb": 0.5},
                  "fidelity": {"min_budget": 1, "max_budget": 3, "reduction_factor": 2}, **ga},
           "log": {"tensorboard": False, "progress": "lines"}}
    path = tmp_path / "tiny_asha.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def jobs(run_dir: Path) -> list:
    rows = [json.loads(line) for line in (run_dir / "jobs.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "t")} for r in rows]


def test_sigkilled_multi_fidelity_search_resumes_exactly(tmp_path, subprocess_env):
    from evonet.runner import run_experiment

    cfg_path = write_config(tmp_path)
    reference = tmp_path / "reference"
    run_experiment(config.load(cfg_path), reference, stream=io.StringIO())
    ref_jobs = jobs(reference)
    assert len(ref_jobs) == 16 and {j["rung"] for j in ref_jobs} == {0, 1, 2}  # rungs 1, 2 and 3 epochs
    by_id = {j["job"]: j for j in ref_jobs}
    for j in ref_jobs:
        if j["parent"] is not None:  # a promotion continued its parent's training
            assert j["metrics"]["from_epoch"] == by_id[j["parent"]]["budget"] and j["member"] == by_id[j["parent"]]["member"]

    run_dir = tmp_path / "run"
    proc = driver(KILL_MID_RUNG, ["run", str(cfg_path), "--out", str(run_dir)], subprocess_env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err
    # generation 1's checkpoint is written by a background thread while the next trainings run:
    # on a loaded machine it may still be on its way when the driver dies (the resume is exact either way)
    assert json.loads((run_dir / "checkpoints" / "latest").read_text())["generation"] in (0, 1)
    assert list((run_dir / "fidelity").glob("job-*.state"))  # the states a resume continues from
    assert resume(run_dir) == 0
    assert strip(read_logbook(run_dir)) == strip(read_logbook(reference))
    assert jobs(run_dir) == ref_jobs
    assert archive(run_dir) == archive(reference) and any("budget" in r for r in archive(reference))
    a, b = (json.loads((d / "best" / "summary.json").read_text()) for d in (run_dir, reference))
    for key in ("trainings", "genome", "hash", "search_fitness", "test_accuracy"):
        assert a[key] == b[key], key

    summary = json.loads((reference / "summary.json").read_text())
    assert 0 < summary["utilization"] <= 1 and summary["asynchronous"]["mode"] == "reproducible"
    assert summary["fidelity_state_bytes"] > 0 and not (reference / "fidelity").exists()
    assert main(["report", str(reference)]) == 0
    report = (reference / "report" / "report.md").read_text()
    assert "## Asynchronous jobs" in report and "| rung | budget | trainings |" in report
    assert (reference / "report" / "learning_curves.png").stat().st_size > 1000


def test_bad_schedules_exit_2_before_the_run_directory(tmp_path, capsys):
    cfg_path = write_config(tmp_path)
    for sets, fragment in ((["ga.fidelity.max_budget=5"], "ga.fidelity.max_budget: 5 epochs is above the problem's "
                                                          "limit, 3 (search.epochs)"),
                           (["ga.fidelity.reduction_factor=1"], "ga.fidelity.reduction_factor: must be > 1"),
                           (["ga.fidelity.min_budget=1.5"], "ga.fidelity.min_budget: budgets are whole epochs"),
                           (["search.fitness=snake", "search.space=snake_mlp"], "has no evaluation budget")):
        out = tmp_path / "never"
        code = main(["run", str(cfg_path), "--out", str(out), *[a for s in sets for a in ("--set", s)]])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and fragment in err[0], (sets, err)
        assert not out.exists()


def test_a_resume_may_not_change_the_rung_schedule(tmp_path, capsys):
    cfg_path = write_config(tmp_path, fidelity={"min_budget": 1, "max_budget": 2, "reduction_factor": 2})
    run_dir = tmp_path / "run"
    assert main(["run", str(cfg_path), "--out", str(run_dir), "--quiet", "--set", "ga.generations=0"]) == 0
    capsys.readouterr()
    before = (run_dir / "logbook.jsonl").read_text()
    for overrides in (["ga.fidelity.max_budget=3"], ["ga.algorithm=mu_plus_lambda", "ga.fidelity=null"]):
        sets = [a for o in overrides for a in ("--set", o)]
        assert resume(run_dir, "--force", *sets, "--set", "ga.generations=2") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "cannot change on resume" in err[0], err
    assert (run_dir / "logbook.jsonl").read_text() == before
