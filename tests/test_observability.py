"""Progress (live line on a terminal, lines elsewhere), TensorBoard scalars, and
`evonet report` (plots, markdown, failed evaluations, Pareto front)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evonet import config, seeding
from evonet.executors import LocalExecutor
from evonet.loop import evaluate, run_evolution
from evonet.problems import make_problem
from evonet.progress import ProgressBar, choose_mode, format_duration
from evonet.strategy import GeneticAlgorithm

ROOT = Path(__file__).resolve().parents[1]

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["ga.algorithm=mu_plus_lambda", "ga.population=8", "snake.games=2", "ga.final_games=4", "ga.hall_of_fame=3", "eval_games=0"]


class Tty(io.StringIO):
    def isatty(self):
        return True


def make(overrides=()):
    cfg = config.load(None, TINY + list(overrides))
    problem = make_problem(cfg)
    genomes = problem.init_genomes(seeding.generator(cfg.seed, seeding.PURPOSE_INIT), cfg.ga.population)
    ga = GeneticAlgorithm(cfg.ga, genomes, problem.low, problem.up,
                          seeding.generator(cfg.seed, seeding.PURPOSE_STRATEGY))
    return cfg, problem, ga


# ----------------------------------------------------------------------------- progress


def test_progress_bar_line_counts_evaluations_and_estimates_the_end():
    now = [0.0]
    out = Tty()
    bar = ProgressBar(out, generations=10, min_interval=0.0, clock=lambda: now[0])
    bar.on_start({"start_generation": 0})
    bar.on_generation_start(0, 8)
    now[0] = 1.0
    bar.on_evaluations(4, 8)
    assert "evals 4/8" in bar.line() and "4.0 evals/s" in bar.line() and "ETA ?" in bar.line()
    now[0] = 2.0
    bar.on_evaluations(8, 8)
    bar.on_generation({"gen": 0, "best": 3.5, "mean": 1.25, "evals": 8, "seconds": 2.0}, None)
    line = bar.line()
    assert line.startswith("gen  0/10 [") and "best    3.50" in line and "mean    1.25" in line
    assert "ETA 20s" in line  # 10 more generations of 2 s
    bar.on_generation_start(1, 16)
    now[0] = 3.0
    assert "ETA 19s" in bar.line()
    text = out.getvalue()
    assert "\r" in text and "\n" not in text  # one line, rewritten in place
    bar.on_generation({"gen": 10, "best": 4, "mean": 2, "evals": 16, "seconds": 1.0}, None)
    assert out.getvalue().endswith("\n")  # the last generation ends the line
    # a budget shortens the estimate
    budget = ProgressBar(Tty(), generations=100, max_seconds=30, clock=lambda: now[0])
    budget.on_start({"elapsed": 25.0})
    budget.t_session = 3.0
    assert budget.eta() == pytest.approx(5.0)
    assert format_duration(3725) == "1h02m" and format_duration(75) == "1m15s"


def test_progress_mode_follows_the_terminal():
    assert choose_mode("auto", Tty()) == "bar"
    assert choose_mode("auto", io.StringIO()) == "lines"
    assert choose_mode("none", Tty()) == "none"


def test_executor_reports_each_task_and_a_custom_executor_works():
    from evonet.core.executor import Executor

    _, problem, ga = make()
    genomes = np.asarray(ga.population, dtype=np.float32)
    seen = []
    a = evaluate(problem, LocalExecutor(), genomes, 0, 3, on_result=seen.append)
    assert seen == [3, 3, 2]

    class Reversed(Executor):  # runs the tasks last to first, returns them in order
        def map(self, fn, tasks, on_error=None, on_result=None):
            tasks = list(tasks)
            out = [fn(t) for t in reversed(tasks)][::-1]
            for r in out:
                on_result(r)
            return out

    seen.clear()
    b = evaluate(problem, Reversed(), genomes, 0, 3, on_result=seen.append)
    assert seen == [3, 3, 2]
    assert [r.fitness for r in a] == [r.fitness for r in b]


def test_bar_on_a_terminal_and_lines_in_the_log(tmp_path):
    from evonet.runner import run_experiment

    cfg = config.load(None, TINY + ["ga.generations=2", "log.tensorboard=false", "log.progress=auto"])
    out = Tty()
    run_dir, _ = run_experiment(cfg, tmp_path / "run", stream=out)
    text = out.getvalue()
    assert "\r" in text and "ETA" in text
    assert "best game" not in text  # no per-generation lines on the terminal, the live line only
    log = (run_dir / "run.log").read_text()
    assert sum(line.startswith("gen ") for line in log.splitlines()) == 3 and "\r" not in log
    assert "evonet run snake_weights" in log and "wrote" in log


# ----------------------------------------------------------------------------- TensorBoard


@pytest.mark.parametrize("writer", ["plain", "tensorflow"])
def test_tensorboard_scalars_per_generation(tmp_path, writer):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from evonet.tblog import TensorBoardLogger

    _, problem, ga = make()
    result = run_evolution(ga, problem, LocalExecutor(), 3, 0, 4,
                           hooks=[TensorBoardLogger(tmp_path / "tb", writer=writer)])
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["tensors"]) | set(acc.Tags()["scalars"])
    assert {"fitness/best", "fitness/mean", "fitness/std", "population/diversity",
            "speed/evaluations_per_s"} <= tags
    if writer == "plain":  # simple_value scalars
        best = {e.step: e.value for e in acc.Scalars("fitness/best")}
    else:  # tf.summary writes tensors
        import tensorflow as tf

        best = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("fitness/best")}
    assert best == {r["gen"]: pytest.approx(r["best"]) for r in result.logbook}


def test_a_snake_run_imports_neither_tensorflow_nor_keras(tmp_path):
    """TensorBoard logging and the export of the best network (agent.keras) are written
    without TensorFlow: a snake run pays neither its import time nor its memory."""
    code = (
        "import sys\n"
        "from evonet.cli import main\n"
        f"code = main(['run', '--out', {str(tmp_path / 'run')!r}, '--set', 'ga.generations=2', '--set', 'ga.population=8',"
        " '--set', 'eval_games=20', '--set', 'snake.games=2', '--set', 'ga.final_games=4'])\n"
        "assert code == 0, code\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=300, capture_output=True)
    run = tmp_path / "run"
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    from evonet.snake import load_agent

    agent = load_agent(run / "best")
    assert agent.spec.n_params == 627


# ----------------------------------------------------------------------------- report


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    """A tiny run in which one task of generation 1 raises."""
    import evonet.problems.snake_weights as sw
    from evonet.runner import run_experiment

    real = sw.evaluate_snake_task
    calls = [0]

    def flaky(task):
        calls[0] += 1
        if calls[0] == 5:
            raise RuntimeError("simulated | worker crash")
        return real(task)

    out = tmp_path_factory.mktemp("report") / "run"
    cfg = config.load(None, TINY + ["ga.generations=3", "executor.chunk=4", "log.tensorboard=false"])
    mp = pytest.MonkeyPatch()
    mp.setattr(sw, "evaluate_snake_task", flaky)
    try:
        run_experiment(cfg, out, stream=io.StringIO())
    finally:
        mp.undo()
    return out


def test_failures_are_kept_with_their_errors(failing_run):
    failures = [json.loads(line) for line in (failing_run / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 4 and {f["generation"] for f in failures} == {1}
    assert all("RuntimeError: simulated | worker crash" in f["error"] for f in failures)
    summary = json.loads((failing_run / "summary.json").read_text())
    assert summary["failures"] == 4


def test_report_writes_readable_plots_and_lists_failures(failing_run, capsys):
    from evonet.cli import main

    assert main(["report", str(failing_run)]) == 0
    assert "report.md" in capsys.readouterr().out
    report = failing_run / "report"
    for name in ["fitness.png", "diversity.png", "eval_time.png"]:
        data = (report / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
    assert not (report / "pareto.png").exists()  # one objective
    md = (report / "report.md").read_text()
    assert "## Failed evaluations" in md and "RuntimeError: simulated \\| worker crash" in md
    assert "| 1 | 8 |" in md  # generation 1, index 8 (the third task of 4 genomes)
    assert "![fitness](fitness.png)" in md and "finished: all 3 generations done" in md


def test_report_of_an_unfinished_two_objective_run(tmp_path):
    """A synthetic run directory: no summary yet, a checkpoint whose fitness has two objectives."""
    from evonet.checkpoint import save_checkpoint
    from evonet.report import pareto_front, write_report

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"run_id": "r"}))
    (run_dir / "config.yaml").write_text("name: nas\nseed: 4\nga: {generations: 9}\nsearch: {objectives: accuracy+params}\n")
    rng = np.random.default_rng(0)
    logbook = [{"gen": g, "evals": 6, "best": 0.5 + g / 10, "mean": 0.4 + g / 12, "std": 0.1, "min": 0.2,
                "diversity": 1.0 / (g + 1), "failed": 0, "seconds": 1.5} for g in range(4)]
    (run_dir / "logbook.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logbook) + '{"gen": 4, "be')
    (run_dir / "eval_times.jsonl").write_text(json.dumps({"gen": 0, "seconds": list(rng.uniform(1, 3, 30))}) + "\n")
    acc = rng.uniform(0.5, 1.0, 12)
    params = rng.integers(1000, 100000, 12).astype(float)
    state = {"population": {"genomes": rng.normal(size=(12, 5)), "fitness": [[a, p] for a, p in zip(acc, params)],
                            "games": [1] * 12, "errors": [None] * 12},
             "fitness_weights": [1.0, -1.0]}
    save_checkpoint(run_dir, {"generation": 3, "run_id": "r", "strategy": state, "loop": {"logbook": logbook}})
    md = write_report(run_dir).read_text()
    assert (run_dir / "report" / "pareto.png").read_bytes().startswith(PNG)
    assert "## Pareto front" in md and "not finished" in md and "evonet resume" in md
    assert "| generations | 3 of 9 |" in md
    # the front: no other point has higher accuracy and fewer parameters
    mask = pareto_front(np.c_[acc, params], [1.0, -1.0])
    for i in np.flatnonzero(mask):
        assert not np.any((acc >= acc[i]) & (params <= params[i]) & ((acc > acc[i]) | (params < params[i])))
    assert mask.sum() >= 1 and not mask.all()


def test_report_errors_are_one_line(tmp_path, capsys):
    from evonet.cli import main

    assert main(["report", str(tmp_path / "missing")]) == 2
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("evonet: error:") for line in err)


def test_report_names_the_rule_set_and_board_of_its_scores(failing_run, tmp_path):
    from evonet.report import write_report

    md = write_report(failing_run, tmp_path / "a").read_text()  # from problem.json (no eval table)
    assert "| game (the scores' rule set and board) | classic rules, 10x10 board |" in md
    assert "Snake scores: classic rules, 10x10 board." in md

    run_dir = tmp_path / "run"  # a finished run with a benchmark table, on the other rule set
    run_dir.mkdir()
    (run_dir / "logbook.jsonl").write_text(json.dumps({"gen": 0, "evals": 4, "best": 9.0, "mean": 3.0, "std": 1.0,
                                                       "elapsed": 1.0}) + "\n")
    (run_dir / "problem.json").write_text(json.dumps({"genome": "weights", "rules": "classic", "board": "10x10"}))
    ev = {"rules": {"name": "theailearner", "width": 50, "height": 50}, "seeds": "evaluation seeds 0..9",
          "games": 10, "mean": 12.5}
    (run_dir / "summary.json").write_text(json.dumps({"name": "t", "seed": 1, "eval": ev}))
    md = write_report(run_dir).read_text()
    assert "| game (the scores' rule set and board) | theailearner rules, 50x50 board |" in md
    assert "evaluation seeds 0..9, theailearner rules, 50x50 board" in md

    (run_dir / "summary.json").unlink()  # accuracy fitness: no game named
    (run_dir / "problem.json").write_text(json.dumps({"genome": "hyperparameters", "fitness": "accuracy"}))
    md = write_report(run_dir).read_text()
    assert "rules" not in md and "Snake scores" not in md


def test_eval_time_axis_leaves_out_the_compile_time_of_first_generations():
    from evonet.report import eval_time_axis

    rng = np.random.default_rng(0)
    later = rng.uniform(0.010, 0.020, 200)
    seconds = np.r_[np.full(8, 5.0), later]  # generation 0: numba compiles
    first = np.r_[np.ones(8, bool), np.zeros(200, bool)]
    upper, above = eval_time_axis(seconds, first)
    assert upper == pytest.approx(np.percentile(later, 99)) and upper < 0.02
    assert above == 8 + int(np.count_nonzero(later > upper))
    # no outliers: the whole range, nothing cut
    assert eval_time_axis(later, np.zeros(200, bool)) == (later.max(), 0)
    # only first-generation times: nothing to scale by but themselves
    assert eval_time_axis(np.full(3, 5.0), np.ones(3, bool)) == (5.0, 0)


def test_report_eval_time_section_says_where_the_axis_stops(tmp_path):
    from evonet.report import write_report

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rng = np.random.default_rng(1)
    logbook = [{"gen": g, "evals": 50, "best": 1.0, "mean": 0.5, "std": 0.1, "elapsed": g} for g in range(5)]
    (run_dir / "logbook.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logbook))
    # generation 0 and generation 3 (the first of the session resumed from 2) compile
    (run_dir / "run.json").write_text(json.dumps({"run_id": "r", "resumes": [{"from_generation": 2}]}))
    (run_dir / "eval_times.jsonl").write_text("".join(
        json.dumps({"gen": g, "seconds": list(rng.uniform(3, 4, 50) if g in (0, 3) else rng.uniform(0.01, 0.02, 50))})
        + "\n" for g in range(5)))
    md = write_report(run_dir).read_text()
    assert (run_dir / "report" / "eval_time.png").read_bytes().startswith(PNG)
    line = next(x for x in md.splitlines() if "axis stops" in x)
    assert "the 99th percentile of the later generations (0.01" in line
    assert "counting the 102 slower evaluations" in line  # the 100 compiling ones and the later top 1% (2 of 150)
    assert line.startswith("The first generation of a session includes the compile time (median 3.")
