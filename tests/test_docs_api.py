"""docs/api.md's examples run as written: every ```python block, in order, in one namespace."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_the_page_has_examples():
    assert len(blocks()) >= 6


@pytest.mark.slow
def test_every_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    for i, code in enumerate(blocks()):
        exec(compile(code, f"{DOC.name} block {i + 1}", "exec"), namespace)  # noqa: S102 - our own docs
    out = capsys.readouterr().out
    assert "fitness returned shape (3,) for 2 genomes" in out
    for run in ("mine", "cartpole", "rastrigin", "regress"):
        assert (tmp_path / "runs" / run / "summary.json").is_file(), run
