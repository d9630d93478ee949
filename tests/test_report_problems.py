"""`evonet report` gives each problem its own section (ProblemKind.report)."""

import numpy as np

import evonet
from evonet.report import write_report


def test_function_and_gym_runs_get_their_own_report_sections(tmp_path):
    f = evonet.evolve(n_genes=4, fitness=lambda g, s: -(g ** 2).sum(axis=1), generations=3, seed=0,
                      out=tmp_path / "f", progress="none", tensorboard=False)
    text = write_report(f.run_dir).read_text()
    assert "## Best genome" in text and "4 genes" in text and "Best agent on evaluation seeds" not in text

    import keras

    policy = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="tanh"), keras.layers.Dense(1)])
    g = evonet.evolve(policy, env="Pendulum-v1", population=6, generations=1, episodes=1, eval_episodes=3,
                      max_steps=20, out=tmp_path / "g", progress="none", tensorboard=False)
    text = write_report(g.run_dir).read_text()
    assert "## Best policy on evaluation episodes" in text and "Environment Pendulum-v1" in text
    assert "| episodes | 3 |" in text
    assert np.isclose(g.summary["eval"]["mean"], g.evaluate(episodes=3)["mean"])  # the same evaluation seeds
