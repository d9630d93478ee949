"""Snake agents: save / load from every kind of path, playing, and load errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from evonet import nn
from evonet.envs.snake.observations import OBSERVATIONS, observe
from evonet.envs.snake.reference import SnakeGame
from evonet.envs.snake.rules import make_rules
from evonet.errors import EvonetError
from evonet.genomes.weights import init_weights, save_keras
from evonet.nn import MLPSpec
from evonet.snake import Agent, AgentLoadError, load_agent, save_agent
from evonet.tf_utils import configure_tensorflow

RULES = {"name": "classic", "width": 10, "height": 10}


@pytest.fixture(scope="module", autouse=True)
def _tf():
    configure_tensorflow(1)


def _spec(observation: str) -> MLPSpec:
    return MLPSpec(OBSERVATIONS[observation], (9, 15), 3, "tanh", "linear")


def _weights(spec: MLPSpec, seed: int) -> np.ndarray:
    return init_weights(spec, np.random.default_rng(seed), 1, "uniform", bound=1.0)[0]


def _states(n_games: int = 3, max_steps: int = 60):
    """Real game states (body, apple, heading, width, height) from games with random moves."""
    rules = make_rules("classic", 10, 10)
    rng = np.random.default_rng(0)
    states = []
    for seed in range(n_games):
        game = SnakeGame(rules, seed)
        for _ in range(max_steps):
            if game.done:
                break
            states.append((list(game.body), game.apple, game.heading, rules.width, rules.height))
            game.step(int(rng.integers(3)))
    return states


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory holding a saved agent in best/."""
    root = tmp_path_factory.mktemp("run")
    spec = _spec("blog7")
    flat = _weights(spec, 1)
    save_agent(root / "best", spec, flat, "blog7", RULES, extra={"seed": np.int64(3), "fitness": np.float32(1.5)})
    return root, spec, flat


def _expected_actions(spec, flat, observation, states):
    obs = np.stack([observe(observation, *s) for s in states])
    return np.argmax(nn.forward(spec, nn.unflatten(spec, flat), obs), axis=-1)


def test_saved_files(run_dir):
    root, spec, _ = run_dir
    best = root / "best"
    assert sorted(p.name for p in best.iterdir()) == ["agent.json", "agent.keras"]  # no temp files
    doc = json.loads((best / "agent.json").read_text())
    assert doc == {
        "format": "evonet-snake-agent",
        "version": 1,
        "observation": "blog7",
        "rules": RULES,
        "network": spec.to_dict(),
        "seed": 3,
        "fitness": 1.5,
    }
    assert zipfile.is_zipfile(best / "agent.keras")


@pytest.mark.parametrize("which", ["run dir", "agent dir", "agent.json", "agent.keras"])
def test_load_from_each_path_plays_like_nn(run_dir, which):
    root, spec, flat = run_dir
    path = {
        "run dir": root,
        "agent dir": root / "best",
        "agent.json": root / "best" / "agent.json",
        "agent.keras": root / "best" / "agent.keras",
    }[which]
    agent = load_agent(str(path) if which == "run dir" else path)
    assert agent.observation == "blog7" and agent.rules == RULES and agent.spec == spec
    assert agent.path == root / "best" / "agent.json" and agent.info == {"seed": 3, "fitness": 1.5}
    assert agent.weights.dtype == np.float32 and np.array_equal(agent.weights, flat)

    states = _states()
    expected = _expected_actions(spec, flat, "blog7", states)
    assert len(set(expected.tolist())) > 1  # the check is not trivially constant
    got = [agent.act(*s) for s in states]
    assert all(type(a) is int for a in got)
    assert got == expected.tolist()
    obs = np.stack([observe("blog7", *s) for s in states])
    assert agent.act_batch(obs).tolist() == expected.tolist()
    assert agent.act_batch(obs[0]).shape == ()


def test_vision_agent_and_lazy_keras_model(tmp_path):
    spec = MLPSpec(OBSERVATIONS["vision"], (16, 16), 3, "relu", "linear")
    flat = _weights(spec, 2)
    save_agent(tmp_path, spec, flat, "vision", {"name": "classic", "width": 10, "height": 10, "extra_rule": 1})
    agent = load_agent(tmp_path)
    assert agent.rules["extra_rule"] == 1
    states = _states(2, 40)
    assert [agent.act(*s) for s in states] == _expected_actions(spec, flat, "vision", states).tolist()
    assert agent._model is None  # playing does not build Keras
    model = agent.model
    assert np.array_equal(np.concatenate([w.ravel() for w in model.get_weights()]), flat)
    obs = np.stack([observe("vision", *s) for s in states])
    np.testing.assert_allclose(np.asarray(model(obs)), agent.outputs(obs), rtol=1e-5, atol=1e-5)


def test_in_memory_agent_and_apple_none():
    spec = _spec("blog7")
    agent = Agent("blog7", RULES, spec, _weights(spec, 4))
    body, heading = [(5, 5), (4, 5), (3, 5)], (1, 0)
    a = agent.act(body, None, heading, 10, 10)
    assert a == int(np.argmax(agent.outputs(observe("blog7", body, None, heading, 10, 10))))
    with pytest.raises(ValueError, match=f"expected {spec.n_params} weights"):
        Agent("blog7", RULES, spec, np.zeros(3))


def test_save_agent_rejects_bad_input(tmp_path):
    spec = _spec("blog7")
    flat = _weights(spec, 1)
    cases = [
        (dict(observation="vision"), "has 35 features but the network takes 7 inputs"),
        (dict(observation="smell"), "unknown observation 'smell'"),
        (dict(rules={"name": "classic", "width": 10}), "rules: missing 'height'"),
        (dict(rules={"name": "classic", "width": 0, "height": 10}), "rules.width must be an integer >= 1"),
        (dict(extra={"format": "x"}), "reserved agent.json keys: format"),
        (dict(flat=flat[:-1]), f"expected {spec.n_params} weights"),
    ]
    for change, message in cases:
        args = dict(spec=spec, flat=flat, observation="blog7", rules=RULES, extra=None) | change
        with pytest.raises(ValueError, match=message):
            save_agent(tmp_path / "a", **args)
    assert not (tmp_path / "a").exists()  # nothing written for a rejected agent


# ----------------------------------------------------------------------------- load errors


@pytest.fixture
def agent_dir(tmp_path):
    spec = _spec("blog7")
    save_agent(tmp_path / "agent", spec, _weights(spec, 1), "blog7", RULES)
    return tmp_path / "agent"


def _load_error(path) -> str:
    with pytest.raises(AgentLoadError) as info:
        load_agent(path)
    message = str(info.value)
    assert isinstance(info.value, EvonetError) and "\n" not in message
    return message


def _edit_json(agent_dir, **changes):
    path = agent_dir / "agent.json"
    doc = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    path.write_text(json.dumps(doc))


def test_missing_paths(tmp_path, agent_dir):
    assert _load_error(tmp_path / "nope").endswith("nope: no such file or directory")
    (tmp_path / "empty").mkdir()
    assert "no agent.json in it or in" in _load_error(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hi")
    assert "expected a run directory" in _load_error(tmp_path / "notes.txt")
    (agent_dir / "agent.keras").unlink()
    assert _load_error(agent_dir).endswith("agent.json: missing agent.keras next to it")


def test_keras_file_without_json(tmp_path):
    spec = _spec("blog7")
    save_keras(tmp_path / "agent.keras", spec, _weights(spec, 1))
    assert _load_error(tmp_path / "agent.keras").endswith("agent.keras: no agent.json next to it")


def test_corrupt_json(agent_dir):
    (agent_dir / "agent.json").write_text('{"format": "evonet-snake-agent", ')
    assert "corrupt agent file (invalid JSON" in _load_error(agent_dir)


def test_wrong_format(agent_dir):
    _edit_json(agent_dir, format="something-else")
    assert "not an evonet snake agent (format 'something-else'" in _load_error(agent_dir)
    (agent_dir / "agent.json").write_text("[1, 2]")
    assert "not an evonet snake agent" in _load_error(agent_dir / "agent.json")


def test_newer_version_and_missing_fields(agent_dir):
    _edit_json(agent_dir, version=2)
    assert "version 2 is newer" in _load_error(agent_dir)
    _edit_json(agent_dir, version=1, observation=None)
    assert "corrupt agent file (missing 'observation')" in _load_error(agent_dir)
    _edit_json(agent_dir, observation="blog7", network={"n_inputs": 7})
    assert "corrupt agent file (network:" in _load_error(agent_dir)
    _edit_json(agent_dir, network=_spec("blog7").to_dict(), observation="smell")
    assert "unknown observation 'smell'" in _load_error(agent_dir)


def test_corrupt_or_foreign_keras(agent_dir):
    (agent_dir / "agent.keras").write_bytes(b"garbage")
    assert "agent.keras: cannot load the model: " in _load_error(agent_dir)


def test_model_that_does_not_match_json(agent_dir):
    other = MLPSpec(7, (4,), 3, "tanh", "linear")
    save_keras(agent_dir / "agent.keras", other, _weights(other, 1))
    assert "does not match agent.json" in _load_error(agent_dir)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_run_files_get_the_mode_the_umask_allows(tmp_path, umask, mode):
    """Atomic writes go through a temporary file (mkstemp makes it 0600): the final files
    must have the mode a plain open() gives, 0666 less the umask."""
    import os
    import stat

    from evonet import store as store_mod

    old = os.umask(umask)
    try:
        store = store_mod.RunStore.create(tmp_path / "run")
        store.write_json("summary.json", {"a": 1})
        store.write_text("config.yaml", "seed: 0\n")
        store.save_genome("best/genome.npz", np.zeros(3))
        spec = _spec("blog7")
        save_agent(store.file("best"), spec, _weights(spec, 1), "blog7", RULES)
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == mode
    for rel in ("summary.json", "config.yaml", "best/genome.npz", "best/agent.json", "best/agent.keras"):
        assert stat.S_IMODE(store.file(rel).stat().st_mode) == mode, rel
    old = os.umask(umask)
    try:  # the umask is read without being changed
        assert store_mod.current_umask() == umask and os.umask(umask) == umask
    finally:
        os.umask(old)



def test_watch_shows_a_median_game_by_default(tmp_path, capsys):
    """Without --seed, evonet watch plays a median game: of the per-seed scores in
    best/eval.json when they are for these rules, else of evaluation seeds 0..100."""
    import re

    from evonet import seeding
    from evonet.cli import main
    from evonet.envs.snake.rules import make_rules as rules_of
    from evonet.evaluators.snake import evaluate_weights
    from evonet.snake import load_agent, median_game, representative_seed

    assert median_game([5, 0, 9, 3, 7]) == 0  # sorted 0 3 [5] 7 9
    assert median_game([4, 1, 4, 4, 9, 0]) == 0  # lower median 4; of its seeds 0, 2, 3 the first
    spec = _spec("blog7")
    best = tmp_path / "run" / "best"
    save_agent(best, spec, _weights(spec, 1), "blog7", RULES)
    agent = load_agent(tmp_path / "run")
    classic = rules_of("classic", 10, 10)

    # no eval.json: the median game of evaluation seeds 0..100, played now
    seeds = seeding.evaluation_game_seeds(101)
    scores = evaluate_weights(spec, agent.weights[None], classic, "blog7", seeds[None]).scores[0]
    seed, why = representative_seed(agent, classic)
    assert scores[seed] == np.median(scores) and "evaluation seeds 0..100" in why

    # a benchmark table with per-seed scores: its median game (seed 7 here), seed 0 its worst
    table = [0] + [10] * 6 + [20] + [30] * 7
    doc = {"rules": RULES, "observation": "blog7", "seeds": "evaluation seeds 0..14", "seed_start": 0,
           "scores": table}
    (best / "eval.json").write_text(json.dumps(doc))
    assert representative_seed(agent, classic)[0] == 7
    # ... but not for other rules (then it is played on seeds 0..100 of those)
    other = rules_of("classic", 12, 12)
    assert "evaluation seeds 0..100" in representative_seed(agent, other)[1]

    capsys.readouterr()
    assert main(["watch", str(tmp_path / "run"), "--gif", str(tmp_path / "g.gif"), "--max-frames", "2"]) == 0
    out = capsys.readouterr().out
    assert "showing evaluation seed 7: a median game (score 20) of its 15 benchmark games in best/eval.json; " \
           "watch another game with --seed N" in out
    assert re.search(r"evaluation seed 7 \(median game\): score \d+", out)
    assert main(["watch", str(tmp_path / "run"), "--seed", "3", "--gif", str(tmp_path / "h.gif"),
                 "--max-frames", "2"]) == 0
    out = capsys.readouterr().out
    assert "median" not in out and "evaluation seed 3: score" in out


def test_agent_plays_the_evaluated_games_move_for_move(tmp_path):
    """Agent.act uses the evaluator's forward pass: a game played one move at a time through
    the public API is the game evaluate_weights played (no near-tie allowance)."""
    from evonet.bench.snake import FLAGSHIP_SPEC, flagship_weights
    from evonet.envs.snake import SnakeGame
    from evonet.envs.snake.rules import make_rules as rules_of
    from evonet.evaluators.snake import evaluate_weights
    from evonet.snake import load_agent

    genome = flagship_weights(1)[0]
    save_agent(tmp_path / "best", FLAGSHIP_SPEC, genome, "vision", RULES)
    agent = load_agent(tmp_path / "best")
    rules = rules_of("classic", 10, 10)
    seeds = np.arange(6, dtype=np.uint64)
    res = evaluate_weights(FLAGSHIP_SPEC, genome[None], rules, "vision", seeds[None])
    assert res.scores.mean() > 40  # long games: many forward passes
    for g, seed in enumerate(seeds):
        game = SnakeGame(rules, int(seed))
        while not game.done:
            game.step(agent.act(game.body, game.apple, game.heading, rules.width, rules.height))
        assert (game.score, game.steps, game.won) == (res.scores[0, g], res.steps[0, g], res.won[0, g])


def test_a_lookahead_agent_observes_under_its_own_rule_set(tmp_path):
    """`lookahead` depends on the rule set: an agent saved for theailearner observes under
    theailearner's rules, so its games move for move are the ones the fused engine plays."""
    from evonet.envs.snake import fused
    from tests.test_observations import lookahead_rule_weights

    spec = MLPSpec(5, (), 3)
    weights = lookahead_rule_weights()
    save_agent(tmp_path / "best", spec, weights, "lookahead", {"name": "theailearner", "width": 20, "height": 20})
    agent = load_agent(tmp_path / "best")
    rules = make_rules("theailearner", 20, 20)
    seeds = np.arange(3, dtype=np.uint64)
    res = fused.play_mlp(spec, weights[None], rules, "lookahead", seeds[None])
    differs = 0
    for g, seed in enumerate(seeds):
        game = SnakeGame(rules, int(seed))
        while not game.done:
            x = agent.observe(game.body, game.apple, game.heading, rules.width, rules.height)
            differs += not np.array_equal(x, observe("lookahead", game.body, game.apple, game.heading, 20, 20))
            game.step(agent.act(game.body, game.apple, game.heading, rules.width, rules.height))
        assert (game.score, game.steps) == (res.scores[0, g], res.steps[0, g])
    assert res.steps.sum() > 1000 and differs > 0  # long games, some states the classic rules see otherwise
    # played under other rules (evonet eval/watch --rules), it observes under those
    classic = make_rules("classic", 10, 10)
    res = fused.play_mlp(spec, weights[None], classic, "lookahead", seeds[None])
    for g, seed in enumerate(seeds):
        game = SnakeGame(classic, int(seed))
        while not game.done:
            game.step(agent.act(game.body, game.apple, game.heading, 10, 10, rules="classic"))
        assert (game.score, game.steps) == (res.scores[0, g], res.steps[0, g])
