"""Property tests: malformed configs thrown at the loader and at the CLI are rejected with
a one-line ConfigError / exit code 2, never a traceback."""

from __future__ import annotations

import contextlib
import copy
import io
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evonet import config
from evonet.cli import main
from evonet.errors import ConfigError

DEFAULTS = config.to_dict(config.load(None))
SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def _paths(node, prefix=()):
    """Every key path of the default config, sections and leaves."""
    for key, value in node.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from _paths(value, prefix + (key,))


PATHS = list(_paths(DEFAULTS))
WORDS = sorted({p[-1] for p in PATHS} | {"tournament", "blend", "gaussian", "classic", "vision", "tanh",
                                         "mu_plus_lambda", "auto", "bar"})


@st.composite
def typo(draw, word):
    """A near miss of ``word``: a character dropped, doubled, swapped, or changed."""
    if len(word) < 2:
        return word + "x"
    i = draw(st.integers(0, len(word) - 2))
    kind = draw(st.sampled_from(["drop", "double", "swap", "change", "upper"]))
    if kind == "drop":
        return word[:i] + word[i + 1:]
    if kind == "double":
        return word[:i] + word[i] * 2 + word[i + 1:]
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == "upper":
        return word.upper()
    return word[:i] + draw(st.sampled_from("aeiouxyz_")) + word[i + 1:]


@st.composite
def malformed(draw):
    """The default config with a few random mutations: junk values, typos in keys and
    values, deleted keys, extra keys, wrong nesting."""
    data = copy.deepcopy(DEFAULTS)
    if draw(st.booleans()):  # architecture search: the search section and its space file are checked too
        data["genome"] = "hyperparameters"
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS))
        parent = data
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        key = path[-1]
        action = draw(st.sampled_from(["junk", "typo_key", "typo_value", "delete", "extra", "number", "wrap"]))
        if action == "junk":
            parent[key] = draw(junk)
        elif action == "typo_key" and key in parent:
            parent[draw(typo(key))] = parent.pop(key)
        elif action == "typo_value":
            parent[key] = draw(typo(str(parent.get(key))))
        elif action == "delete":
            parent.pop(key, None)
        elif action == "extra":
            parent[draw(st.sampled_from(WORDS) | st.text(max_size=6))] = draw(junk)
        elif action == "number":
            parent[key] = draw(st.integers(-(2**65), 2**65) | st.floats())
        else:
            parent[key] = [parent.get(key)]
    return data


def assert_accepted_or_one_line(data):
    try:
        config.from_dict(data)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message, message


@SETTINGS
@given(malformed())
def test_loader_rejects_mutated_configs_with_one_line(data):
    assert_accepted_or_one_line(data)


@SETTINGS
@given(junk)
def test_loader_rejects_arbitrary_values_with_one_line(data):
    assert_accepted_or_one_line(data)
    assert_accepted_or_one_line({"ga": data})
    assert_accepted_or_one_line({"stop": data, "log": data})


def run_cli(argv) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def assert_exit_ok_or_2_one_line(code, err):
    assert code in (0, 2)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("evonet: error:"), err


@SETTINGS
@given(malformed() | junk)
def test_cli_rejects_malformed_config_files_with_exit_2(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exp.yaml"
        path.write_text(yaml.safe_dump(data))
        assert_exit_ok_or_2_one_line(*run_cli(["config", str(path)]))


@SETTINGS
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_cli_rejects_files_that_are_not_yaml_mappings(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exp.yaml"
        path.write_bytes(raw)
        assert_exit_ok_or_2_one_line(*run_cli(["config", str(path)]))


@SETTINGS
@given(st.lists(st.sampled_from([".".join(p) for p in PATHS]).flatmap(
    lambda key: st.tuples(st.just(key) | typo(key), st.text(max_size=12) | junk.map(yaml.safe_dump))
).map(lambda kv: f"{kv[0]}={kv[1]}") | st.text(max_size=20), min_size=1, max_size=3))
def test_cli_rejects_bad_overrides_with_exit_2(overrides):
    argv = ["config"]
    for text in overrides:
        argv += ["--set", text]
    assert_exit_ok_or_2_one_line(*run_cli(argv))


@pytest.mark.parametrize("text", [
    "ga: {population: [1, 2]}\n",
    "stop: {stagnaton: 3}\n",
    "checkpoint: 7\nlog: {progress: bars}\n",
])
def test_run_subprocess_rejects_malformed_files(tmp_path, evonet_cmd, subprocess_env, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = tmp_path / "run"
    proc = subprocess.run(evonet_cmd + ["run", str(path), "--out", str(out)], env=subprocess_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evonet: error:"), proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
    if "stagnaton" in text:
        assert "did you mean 'stagnation'" in lines[0]


def test_new_sections_are_typed_and_documented():
    rows = {key: (tp, doc) for key, tp, _default, doc in config.describe()}
    for key in ["checkpoint.every", "checkpoint.keep", "stop.target_fitness", "stop.stagnation",
                "stop.max_seconds", "stop.max_evaluations", "log.progress", "log.tensorboard"]:
        assert key in rows and rows[key][1], key
    assert rows["log.progress"][0] == "'auto' | 'bar' | 'lines' | 'none'"


ROOT = Path(__file__).resolve().parents[1]
SPACE = yaml.safe_load((ROOT / "search_spaces" / "dense_classifier.yaml").read_text())
SPACE_PATHS = list(_paths(SPACE))


@st.composite
def malformed_space(draw):
    """The dense_classifier search space with a few random mutations."""
    data = copy.deepcopy(SPACE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(SPACE_PATHS))
        parent = data
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        key = path[-1]
        action = draw(st.sampled_from(["junk", "typo_key", "delete", "extra", "number"]))
        if action == "junk":
            parent[key] = draw(junk)
        elif action == "typo_key" and key in parent:
            parent[draw(typo(key))] = parent.pop(key)
        elif action == "delete":
            parent.pop(key, None)
        elif action == "extra":
            parent[draw(st.text(max_size=6))] = draw(junk)
        else:
            parent[key] = draw(st.integers(-(2**65), 2**65) | st.floats())
    return data


@settings(max_examples=120, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(malformed_space())
def test_cli_rejects_malformed_search_spaces_with_exit_2(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "space.yaml"
        path.write_text(yaml.safe_dump(data))
        assert_exit_ok_or_2_one_line(*run_cli(["config", "--set", "genome=hyperparameters",
                                               "--set", f"search.space={path}"]))
