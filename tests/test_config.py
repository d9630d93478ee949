"""Experiment config loading: defaults, overrides, and one-line errors for bad input."""

from pathlib import Path

import pytest
import yaml

from evonet import config
from evonet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_embedded_defaults_equal_the_main_experiment_file():
    from_file = config.to_dict(config.load(ROOT / "experiments" / "snake_weights.yaml"))
    defaults = config.to_dict(config.load(None))
    assert from_file == defaults


def test_every_experiment_file_is_valid():
    files = sorted((ROOT / "experiments").glob("*.yaml"))
    assert files
    for path in files:
        config.load(path)


def test_overrides_are_typed_yaml_values():
    cfg = config.load(None, ["ga.population=64", "network.hidden=[8, 4]", "snake.rules=theailearner",
                             "ga.mutation={name: polynomial, eta: 20}"])
    assert cfg.snake.board == 50  # the rule set's own board when none is given
    assert cfg.ga.population == 64
    assert cfg.network.hidden == [8, 4]
    assert cfg.snake.rules == "theailearner"
    assert cfg.ga.mutation["name"] == "polynomial" and cfg.ga.mutation["eta"] == 20
    # operator defaults are filled in
    assert "indpb" in cfg.ga.mutation


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["ga.population=1"], "ga.population: must be >= 2"),
        (["snake.board=4"], "snake.board: must be >= 5"),
        (["snake.rules=clasic"], "snake.rules: unknown value 'clasic' (did you mean 'classic'?)"),
        (["ga.populaton=10"], "ga.populaton: unknown key (did you mean 'population'?)"),
        (["ga.population=ten"], "ga.population: expected an integer"),
        (["ga.population=2.5"], "ga.population: expected an integer"),
        (["ga.cxpb=1.5"], "ga.cxpb: must be <= 1"),
        (["network.hidden=[4, 0]"], "network.hidden[1]: must be >= 1"),
        (["ga.crossover={name: sbxx}"], "ga.crossover.name"),
        (["ga.mutation={name: gaussian, sigmaa: 1}"], "ga.mutation.sigmaa"),
        (["snake.rules=theailearner", "snake.board=10"], "snake.board: theailearner"),
        (["snake.threads=0"], "snake.threads: must be >= 1"),
        (["snake.observation=cycle", "snake.board=9"], "snake.observation: cycle needs a board with an even number"),
        (["snake.engine=gpu"], "snake.engine: unknown value 'gpu'"),
        (["ga.algorithm=mu_plus_lambda", "ga.cxpb=0.7", "ga.mutpb=0.6"], "ga.cxpb: mu_plus_lambda needs cxpb + mutpb <= 1"),
        (["ga.reevaluate=maybe"], "ga.reevaluate: expected true or false"),
        (["bogus=1"], "bogus: unknown key"),
        (["ga=3"], "ga: expected a mapping"),
        (["ga.population"], "expected KEY=VALUE"),
    ],
)
def test_bad_values_give_one_line_naming_the_field(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        config.load(None, overrides)
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message


def test_invalid_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nga: {population: [\n")
    with pytest.raises(ConfigError) as err:
        config.load(bad)
    assert str(bad) in str(err.value) and "invalid YAML" in str(err.value)


def test_top_level_must_be_a_mapping(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        config.load(bad)


def test_missing_file():
    with pytest.raises(ConfigError, match="no such config file"):
        config.load("does/not/exist.yaml")


def test_dump_round_trips():
    cfg = config.load(None, ["seed=7", "ga.generations=3"])
    again = config.from_dict(yaml.safe_load(config.dump_yaml(cfg)))
    assert config.to_dict(again) == config.to_dict(cfg)


def test_every_field_is_documented():
    rows = config.describe()
    assert len(rows) > 20
    for key, _tp, _default, text in rows:
        assert text, f"{key} has no doc"
