"""The CLI end to end in subprocesses: a tiny run, eval on it, and bad input."""

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = ["--set", "ga.population=8", "--set", "ga.generations=2", "--set", "snake.games=2",
        "--set", "ga.final_games=4", "--set", "eval_games=20", "--set", "ga.hall_of_fame=3"]


def run(cmd, env, cwd=ROOT, timeout=600):
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_tiny_run_then_eval(tmp_path, evonet_cmd, subprocess_env):
    out = tmp_path / "run"
    proc = run(evonet_cmd + ["run", "experiments/snake_weights.yaml", *TINY, "--out", str(out)], subprocess_env)
    assert proc.returncode == 0, proc.stderr
    # a live line per generation: initial + 2
    assert sum(line.startswith("gen ") for line in proc.stdout.splitlines()) == 3
    for rel in ["config.yaml", "problem.json", "logbook.jsonl", "logbook.csv", "fitness.png",
                "best/genome.npz", "best/agent.keras", "best/agent.json", "best/eval.json", "summary.json"]:
        assert (out / rel).is_file(), rel
    logbook = [json.loads(line) for line in (out / "logbook.jsonl").read_text().splitlines()]
    assert [r["gen"] for r in logbook] == [0, 1, 2]
    agent_meta = json.loads((out / "best/agent.json").read_text())
    assert agent_meta["observation"] == "vision" and agent_meta["rules"]["name"] == "classic"
    # the printed table names the rule set, the board and the seeds
    assert "classic" in proc.stdout and "10x10" in proc.stdout and "0..19" in proc.stdout

    proc = run(evonet_cmd + ["eval", str(out), "--games", "20", "--json"], subprocess_env)
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)
    stored = json.loads((out / "best/eval.json").read_text())
    assert table["mean"] == pytest.approx(stored["mean"])  # same agent, same seeds, same score
    assert table["seeds"] == "evaluation seeds 0..19"

    proc = run(evonet_cmd + ["eval", str(out), "--rules", "theailearner", "--games", "5"], subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert "theailearner" in proc.stdout and "50x50" in proc.stdout

    # watch without a screen: a GIF and PNG frames of the same game
    gif, frames = tmp_path / "agent.gif", tmp_path / "frames"
    env = dict(subprocess_env, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    proc = run(evonet_cmd + ["watch", str(out), "--seed", "3", "--gif", str(gif), "--frames", str(frames)], env)
    assert proc.returncode == 0, proc.stderr
    assert gif.stat().st_size > 1000
    steps = int(re.search(r"in (\d+) steps", proc.stdout).group(1))
    assert len(list(frames.glob("*.png"))) == steps + 1  # the start and every step
    assert "evaluation seed 3" in proc.stdout and "classic 10x10" in proc.stdout

    # by default, a median game of the stored benchmark table (its per-seed scores)
    scores = stored["scores"]
    assert len(scores) == 20 and sum(scores) / 20 == pytest.approx(stored["mean"])
    assert "scores" not in json.loads((out / "summary.json").read_text())["eval"]
    proc = run(evonet_cmd + ["watch", str(out), "--gif", str(tmp_path / "median.gif")], env)
    assert proc.returncode == 0, proc.stderr
    seed = int(re.search(r"showing evaluation seed (\d+): a median game", proc.stdout).group(1))
    assert sorted(scores)[9] == scores[seed]  # the lower median of 20
    assert f"score {scores[seed]} in" in proc.stdout  # the game shown is that benchmark game


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--set", "ga.population=1"], "ga.population"),
        (["--set", "snake.board=4"], "snake.board"),
        (["--set", "snake.rules=tetris"], "snake.rules"),
        (["--set", "ga.crossover.name=nope"], "ga.crossover.name"),
        (["--set", "ga.wat=1"], "ga.wat"),
        (["--set", "snake.threads=0"], "snake.threads"),
        (["--set", "snake.observation=cycle", "--set", "snake.board=11"], "snake.observation: cycle"),
    ],
)
def test_bad_config_exits_2_before_any_work(tmp_path, evonet_cmd, subprocess_env, args, fragment):
    out = tmp_path / "run"
    proc = run(evonet_cmd + ["run", *args, "--out", str(out)], subprocess_env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evonet: error:") and fragment in lines[0]
    assert not out.exists()


def test_invalid_yaml_file_exits_2(tmp_path, evonet_cmd, subprocess_env):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ga: [unclosed\n")
    proc = run(evonet_cmd + ["run", str(bad), "--out", str(tmp_path / "run")], subprocess_env, timeout=120)
    assert proc.returncode == 2 and "invalid YAML" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_non_empty_out_is_not_overwritten(tmp_path, evonet_cmd, subprocess_env):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    proc = run(evonet_cmd + ["run", *TINY, "--out", str(out)], subprocess_env, timeout=120)
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert (out / "keep.txt").read_text() == "precious" and len(list(out.iterdir())) == 1


def test_bad_cli_arguments_exit_2(evonet_cmd, subprocess_env, tmp_path):
    proc = run(evonet_cmd + ["eval", str(tmp_path), "--games", "0"], subprocess_env, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    proc = run(evonet_cmd + ["eval", str(tmp_path / "missing")], subprocess_env, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_eval_builtin_policies(evonet_cmd, subprocess_env):
    proc = run(evonet_cmd + ["eval", "heuristic", "--games", "200", "--json"], subprocess_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    heuristic = json.loads(proc.stdout)
    assert heuristic["policy"] == "heuristic" and heuristic["seeds"] == "evaluation seeds 0..199"
    assert 12 < heuristic["mean"] < 24  # the benchmark doc: about 18 apples on classic 10x10
    proc = run(evonet_cmd + ["eval", "random", "--games", "200", "--json"], subprocess_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["mean"] < 2  # a random policy: about 0-1 apples


@pytest.mark.parametrize("argv, key, value", [
    (["run", "experiments/snake_weights.yaml", "--set", "ga.population", "64"], "ga.population", "64"),
    (["run", "--set", "ga.population", "64", "experiments/snake_weights.yaml"], "ga.population", "64"),
    (["run", "--set", "seed=1", "--set=ga.generations", "5"], "ga.generations", "5"),
    (["resume", "runs/none", "--set", "ga.generations", "200"], "ga.generations", "200"),
    (["config", "--set", "ga.population", "64"], "ga.population", "64"),
])
def test_set_with_a_space_names_key_equals_value(tmp_path, monkeypatch, capsys, argv, key, value):
    """--set KEY VALUE: VALUE is not taken for the config file or an unknown argument."""
    from evonet.cli import main

    monkeypatch.chdir(ROOT)
    out = tmp_path / "run"
    assert main([*argv, *(["--out", str(out)] if argv[0] == "run" else [])]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"evonet: error: --set {key}: expected KEY=VALUE (got a space: write --set "
                            f"{key}={value})\n")
    assert captured.out == "" and not out.exists()


def test_set_without_a_value_says_key_equals_value(tmp_path, capsys):
    from evonet.cli import main

    assert main(["run", "--set", "ga.population", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["evonet: error: --set ga.population: expected KEY=VALUE, e.g. --set ga.population=64"]


def test_a_cycle_agent_on_a_board_without_a_cycle_exits_2(tmp_path, evonet_cmd, subprocess_env):
    import numpy as np

    from evonet.nn import MLPSpec
    from evonet.snake import save_agent

    spec = MLPSpec(7, (4,), 3, "tanh", "linear")
    save_agent(tmp_path / "best", spec, np.zeros(spec.n_params, np.float32), "cycle",
               {"name": "classic", "width": 10, "height": 10})
    for verb in (["eval"], ["watch", "--gif", str(tmp_path / "g.gif")]):
        proc = run(evonet_cmd + [verb[0], str(tmp_path), "--board", "9", *verb[1:]], subprocess_env, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("evonet: error: --board:") and "even number of cells" in lines[0]
    assert not (tmp_path / "g.gif").exists()
