"""`evonet eval supervised`: the seed blog's 9-15 network trained on the heuristic's games.

Small runs only (a few data games, a few epochs, a few evaluation games); the full-size
figure (1000 games, about 23 under theailearner) is in the README's Results table.
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from evonet import nn, seeding
from evonet.evaluators.snake_train import cached_heuristic_dataset, supervised_baseline

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"data_games": 12, "epochs": 4, "batch_size": 128}


def run(cmd, env, timeout=300):
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def small():
    return supervised_baseline("theailearner", 50, seeding.evaluation_game_seeds(30), seed=0, **SMALL)


def test_trained_network_imitates_the_heuristic(small):
    t = small["training"]
    assert t["network"] == "7-9-15-3" and t["hidden"] == [9, 15] and t["params"] == 7 * 9 + 9 + 9 * 15 + 15 + 15 * 3 + 3
    assert t["data_games"] == 12 and t["training_steps"] > 12 * 100 and t["epochs_run"] <= 4
    assert t["imitation_accuracy"] > 0.9, t
    # on the heuristic's games of other training seeds (not the training data), the
    # network mostly takes the heuristic's action
    x, y = cached_heuristic_dataset("theailearner", 50, "blog7", 5, 1)
    pred = nn.act_greedy(small["spec"], nn.unflatten(small["spec"], small["weights"]), x)
    assert np.mean(pred == y) > 0.85
    scores = small["results"].scores[0]
    assert scores.shape == (30,) and scores.mean() > 8  # it plays: a random policy dies at length 3-4


def test_training_data_never_uses_evaluation_seeds():
    seeds = seeding.training_game_seeds(0, 0, [0], 200, purpose=seeding.PURPOSE_GAMES + 100)[0]
    assert np.all(seeds >= np.uint64(2**63))  # the seeds cached_heuristic_dataset plays


def test_same_seed_same_network_other_seed_other_network(small):
    again = supervised_baseline("theailearner", 50, seeding.evaluation_game_seeds(30), seed=0, **SMALL)
    assert np.array_equal(again["weights"], small["weights"])
    assert np.array_equal(again["results"].scores, small["results"].scores)
    other = supervised_baseline("theailearner", 50, seeding.evaluation_game_seeds(30), seed=1, **SMALL)
    assert not np.array_equal(other["weights"], small["weights"])


def test_cli_table_json_and_saved_agent(tmp_path, evonet_cmd, subprocess_env):
    out = tmp_path / "agent"
    args = ["eval", "supervised", "--data-games", "8", "--epochs", "2", "--games", "20", "--seed-start", "5"]
    proc = run(evonet_cmd + args + ["--out", str(out)], subprocess_env)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for fragment in ("rule set         theailearner, board 50x50", "20 on evaluation seeds 5..24",
                     "7-9-15-3 (relu, softmax)", "in 8 games on training seeds (seed 0)", "imitation accuracy"):
        assert fragment in text, text
    assert (out / "agent.json").is_file() and (out / "agent.keras").is_file() and (out / "model.keras").is_file()
    doc = json.loads((out / "agent.json").read_text())
    assert doc["policy"] == "supervised" and doc["rules"] == {"name": "theailearner", "width": 50, "height": 50}
    mean_line = next(line for line in text.splitlines() if line.startswith("mean "))
    # the saved agent plays the same games the same way
    proc = run(evonet_cmd + ["eval", str(out), "--games", "20", "--seed-start", "5", "--json"], subprocess_env)
    assert proc.returncode == 0, proc.stderr
    reloaded = json.loads(proc.stdout)
    assert f"{reloaded['mean']:.3f} ± {reloaded['ci95']:.3f}" in mean_line
    assert reloaded["mean"] == pytest.approx(doc["eval"]["mean"])
    # --json, on classic 10x10
    proc = run(evonet_cmd + ["eval", "supervised", "--rules", "classic", "--data-games", "8", "--epochs", "2",
                             "--games", "10", "--hidden", "12", "--json"], subprocess_env)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert (res["rules"], res["board"], res["seeds"], res["policy"]) == ("classic", "10x10", "evaluation seeds 0..9",
                                                                          "supervised")
    assert res["training"]["network"] == "7-12-3" and res["games"] == 10


@pytest.mark.parametrize("args, fragment", [
    (["supervised", "--hidden", "9,x"], "--hidden"),
    (["supervised", "--hidden", "0"], "--hidden"),
    (["supervised", "--data-games", "0"], "--data-games"),
    (["supervised", "--epochs", "-1"], "--epochs"),
    (["supervised", "--learning-rate", "nan"], "--learning-rate"),
    (["supervised", "--board", "5"], "--board"),
    (["heuristic", "--epochs", "3"], "only for `evonet eval supervised`"),
    (["random", "--out", "x"], "only for `evonet eval supervised`"),
])
def test_bad_arguments_exit_2(args, fragment, evonet_cmd, subprocess_env):
    proc = run(evonet_cmd + ["eval", *args], subprocess_env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evonet: error:") and fragment in lines[0], proc.stderr


def test_out_must_be_new_or_empty(tmp_path, evonet_cmd, subprocess_env):
    (tmp_path / "taken.txt").write_text("x")
    proc = run(evonet_cmd + ["eval", "supervised", "--out", str(tmp_path)], subprocess_env, timeout=120)
    assert proc.returncode == 2 and "not an empty directory" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.txt"]
