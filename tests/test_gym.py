"""Gymnasium problems (genome: gym): action mapping, seeds, chunk invariance, errors, runs."""

from __future__ import annotations

import io
import json

import cloudpickle
import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from evonet import config as config_mod
from evonet import seeding
from evonet.errors import ConfigError
from evonet.nn import MLPSpec
from evonet.problems.gym import GymProblem, evaluate_gym_task, evaluate_policy
from evonet.problems.gym import problem as problem_mod
from evonet.problems.gym.rollout import clear_env_cache, space_map


class ToyEnv(gymnasium.Env):
    """1-D observation, 1-D action in [-1, 1]; 5 steps of reward 1; an action above 0.5 raises."""

    def __init__(self, obs_space=None, act_space=None):
        self.observation_space = obs_space or spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = act_space or spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample() * 0, {}

    def step(self, action):
        if float(np.asarray(action).ravel()[0]) > 0.5:
            raise ValueError("boom: action too large")
        self.t += 1
        return self.observation_space.sample() * 0, 1.0, self.t >= 5, False, {}


def _dict_obs_env():
    return ToyEnv(obs_space=spaces.Dict({"a": spaces.Box(-1, 1, (1,))}))


def _image_obs_env():
    return ToyEnv(obs_space=spaces.Box(0, 1, (2, 2), np.float32))


def _multidiscrete_env():
    return ToyEnv(act_space=spaces.MultiDiscrete([2, 2]))


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def _problem(env="CartPole-v1", hidden=(4,), episodes=3, **kw):
    return GymProblem(env, GymProblem.spec_for_env(env, hidden), episodes, **kw)


# ----------------------------------------------------------------------------- mapping


def test_action_mapping_discrete_argmax():
    m = space_map(spaces.Box(-1, 1, (3,)), spaces.Discrete(4, start=2))
    assert (m.n_inputs, m.n_outputs) == (3, 4)
    out = np.array([[0.1, 0.9, -1.0, 0.3], [5.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    assert m.actions(out).tolist() == [3, 2]  # argmax + start


def test_action_mapping_box_clipped():
    m = space_map(spaces.Box(-1, 1, (3,)), spaces.Box(np.array([-2, 0], np.float32), np.array([2, 1], np.float32)))
    assert m.n_outputs == 2
    a = m.actions(np.array([[3.0, -0.5], [-0.5, 0.25]], dtype=np.float32))
    assert a.tolist() == [[2.0, 0.0], [-0.5, 0.25]]
    assert a.dtype == np.float32


def test_discrete_observation_one_hot():
    m = space_map(spaces.Discrete(5, start=1), spaces.Discrete(2))
    assert m.n_inputs == 5
    assert m.encode(3).tolist() == [0, 0, 1, 0, 0]


# ----------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_chunk_invariance_bit_identical(env):
    prob = _problem(env, hidden=(8,), episodes=3)
    genomes = prob.init_genomes(np.random.default_rng(1), 9) * 3
    whole = [r for t in prob.make_tasks(genomes, 2, range(9), 9) for r in evaluate_gym_task(t)]
    clear_env_cache()
    for chunk in (1, 4):
        parts = [r for t in prob.make_tasks(genomes, 2, range(9), chunk) for r in evaluate_gym_task(t)]
        assert [r.fitness for r in parts] == [r.fitness for r in whole]
        assert [r.metrics for r in parts] == [r.metrics for r in whole]
    assert len({r.fitness for r in whole}) > 1


def test_determinism_per_seed():
    def run(seed):
        prob = _problem("Pendulum-v1", episodes=2, run_seed=seed)
        g = prob.init_genomes(np.random.default_rng(0), 4)
        return [r.fitness for t in prob.make_tasks(g, 0, range(4), 4) for r in evaluate_gym_task(t)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_metrics_and_weight():
    prob = _problem("CartPole-v1", episodes=3)
    (task,) = prob.make_tasks(prob.init_genomes(np.random.default_rng(0), 2), 0, range(2), 2)
    for r in evaluate_gym_task(task):
        assert r.weight == 3 and r.error is None
        assert set(r.metrics) == {"steps", "max_score", "min_return"}
        assert r.metrics["min_return"] <= r.fitness <= r.metrics["max_score"]
        assert r.metrics["steps"] == pytest.approx(3 * r.fitness)  # CartPole: reward 1 per step


def test_training_seeds_disjoint_from_evaluation_seeds():
    prob = _problem(episodes=5)
    g = prob.init_genomes(np.random.default_rng(0), 6)
    for purpose in (seeding.PURPOSE_GAMES, seeding.PURPOSE_FINAL):
        for task in prob.make_tasks(g, 7, range(6), 4, purpose=purpose):
            assert task.seeds.dtype == np.uint64
            assert (task.seeds >= np.uint64(2**63)).all()
    rec = evaluate_policy("CartPole-v1", prob.spec, g[0], 10)
    assert rec["seeds"] == "evaluation seeds 0..9" and rec["episodes"] == 10
    assert 10 - 1 < 2**63


def test_evaluate_policy_stats():
    prob = _problem("Pendulum-v1")
    g = prob.init_genomes(np.random.default_rng(0), 1)[0]
    rec = evaluate_policy("Pendulum-v1", prob.spec, g, 12)
    assert rec["min"] <= rec["median"] <= rec["max"]
    assert rec["ci95"][0] < rec["mean"] < rec["ci95"][1]
    assert "student t" in rec["ci95_method"] and rec["env"] == "Pendulum-v1"
    assert rec == evaluate_policy("Pendulum-v1", prob.spec, g, 12)
    assert rec["mean_steps"] == 200


# ----------------------------------------------------------------------------- errors


def test_unknown_env_suggests_close_ids():
    with pytest.raises(ConfigError) as e:
        GymProblem.spec_for_env("CartPol-v1")
    text = _one_line(e)
    assert text.startswith("gym.env: unknown Gymnasium environment 'CartPol-v1' (did you mean 'CartPole-v1'")


def test_missing_dependency_names_the_extra(monkeypatch):
    def missing(env, env_kwargs=None):
        raise gymnasium.error.DependencyNotInstalled('Box2D is not installed, run `pip install "gymnasium[box2d]"`')

    monkeypatch.setattr(problem_mod, "make_env", missing)
    with pytest.raises(ConfigError) as e:
        GymProblem.spec_for_env("LunarLander-v3")
    text = _one_line(e)
    assert "LunarLander-v3 needs a missing dependency" in text and 'pip install "gymnasium[box2d]"' in text


@pytest.mark.parametrize("factory, words", [
    (_dict_obs_env, "observation space Dict"),
    (_image_obs_env, "observation space Box(0.0, 1.0, (2, 2)"),
    (_multidiscrete_env, "action space MultiDiscrete"),
])
def test_unsupported_spaces(factory, words):
    with pytest.raises(ConfigError) as e:
        GymProblem(factory, MLPSpec(1, (), 1), 1)
    assert words in _one_line(e)


def test_network_size_mismatch_names_both_sizes():
    with pytest.raises(ConfigError) as e:
        GymProblem("CartPole-v1", MLPSpec(5, (4,), 2), 1)
    assert "4 observation inputs" in _one_line(e) and "5 inputs" in str(e.value)
    with pytest.raises(ConfigError) as e:
        GymProblem("Pendulum-v1", MLPSpec(3, (4,), 2), 1)
    assert "1 action outputs" in _one_line(e) and "2 outputs" in str(e.value)


def test_config_errors_through_the_config(tmp_path):
    cfg = config_mod.from_dict({"genome": "gym", "gym": {"env": "Pendulm-v1"}})
    with pytest.raises(ConfigError, match="did you mean 'Pendulum-v1'"):
        GymProblem.from_config(cfg)


# ----------------------------------------------------------------------------- failures, factories


def test_failing_env_step_fails_only_its_genome():
    prob = GymProblem(ToyEnv, MLPSpec(1, (), 1), 2)
    genomes = np.array([[0.0, -1.0], [0.0, 1.0], [0.0, 0.2]], dtype=np.float32)  # actions -1, 1 (raises), 0.2
    results = [r for t in prob.make_tasks(genomes, 0, range(3), 3) for r in evaluate_gym_task(t)]
    assert [r.error is None for r in results] == [True, False, True]
    assert results[1].fitness == float("-inf") and results[1].weight == 0
    assert results[1].error == "ValueError: boom: action too large"
    assert results[0].fitness == results[2].fitness == 5.0


def test_factory_env_and_pickled_task():
    def factory():
        return gymnasium.make("CartPole-v1")

    spec = GymProblem.spec_for_env(factory, (4,))
    prob = GymProblem(factory, spec, 2)
    assert prob.describe()["env"].endswith("factory")
    g = prob.init_genomes(np.random.default_rng(0), 3)
    (task,) = prob.make_tasks(g, 0, range(3), 3)
    direct = evaluate_gym_task(task)
    again = evaluate_gym_task(cloudpickle.loads(cloudpickle.dumps(task)))
    assert [r.fitness for r in direct] == [r.fitness for r in again]
    ref = _problem("CartPole-v1", hidden=(4,), episodes=2)
    (task2,) = ref.make_tasks(g, 0, range(3), 3)
    assert [r.fitness for r in evaluate_gym_task(task2)] == [r.fitness for r in direct]
    with pytest.raises(ConfigError, match="only for an environment id"):
        GymProblem(factory, spec, 2, env_kwargs={"render_mode": None})


def test_describe_and_banner():
    prob = _problem("Pendulum-v1")
    d = prob.describe()
    assert d["genome"] == "gym" and d["env"] == "Pendulum-v1" and d["network"]["n_inputs"] == 3
    assert d["episodes"] == 3 and "clipped" in d["mapping"]["action"]
    json.dumps(d)
    assert "Pendulum-v1" in prob.banner() and prob.title() == "Pendulum-v1"


# ----------------------------------------------------------------------------- end to end


def test_run_end_to_end_writes_eval(tmp_path):
    from evonet.runner import run_experiment

    cfg = config_mod.from_dict({
        "name": "gym_tiny", "seed": 0, "genome": "gym",
        "gym": {"env": "CartPole-v1", "episodes": 2, "eval_episodes": 5},
        "network": {"hidden": [4]},
        "ga": {"algorithm": "cma_es", "population": 6, "generations": 2, "sigma": 0.5, "bound": 100.0,
               "hall_of_fame": 2, "final_games": 3},
        "log": {"tensorboard": False},
    })
    out = io.StringIO()
    run_dir, result = run_experiment(cfg, tmp_path / "run", stream=out)
    rec = json.loads((run_dir / "best" / "eval.json").read_text())
    assert rec["episodes"] == 5 and rec["env"] == "CartPole-v1" and rec["seeds"] == "evaluation seeds 0..4"
    assert (run_dir / "best" / "genome.npz").is_file() and (run_dir / "best" / "model.keras").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["eval"]["mean"] == rec["mean"]
    assert json.loads((run_dir / "problem.json").read_text())["genome"] == "gym"
    assert "evaluation of the best policy on CartPole-v1" in out.getvalue()
    # the saved Keras model reproduces the genome
    from evonet.genomes.weights import load_keras_weights

    spec, flat = load_keras_weights(run_dir / "best" / "model.keras")
    assert spec.sizes == (4, 4, 2) and np.array_equal(flat, result.best_genome)


def test_linear_policy_without_hidden_layers(tmp_path):
    """``network.hidden: []`` gives a linear policy (inputs -> outputs), saved and reloaded as Keras."""
    from evonet.genomes.weights import load_keras_weights, save_keras

    cfg = config_mod.from_dict({"genome": "gym", "gym": {"env": "CartPole-v1", "episodes": 2},
                                "network": {"hidden": []}})
    prob = GymProblem.from_config(cfg)
    assert prob.spec.sizes == (4, 2) and prob.n_genes == 4 * 2 + 2
    g = prob.init_genomes(np.random.default_rng(0), 3)
    (task,) = prob.make_tasks(g, 0, range(3), 3)
    assert all(r.error is None and r.fitness >= 1 for r in evaluate_gym_task(task))
    save_keras(tmp_path / "m.keras", prob.spec, g[0])
    spec, flat = load_keras_weights(tmp_path / "m.keras")
    assert spec.sizes == (4, 2) and np.array_equal(flat, g[0])
