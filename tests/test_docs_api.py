"""docs/api.md's examples run as written: every ```python block, in order, in one namespace."""

import re
import json
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def blocks(doc: Path = DOC) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", doc.read_text(), flags=re.S | re.M)


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


def run_blocks(doc: Path, skip_with: str | None = None) -> dict:
    namespace: dict = {"__name__": "__main__"}
    for i, code in enumerate(blocks(doc)):
        if skip_with is not None and skip_with in code:
            continue
        exec(compile(code, f"{doc.name} block {i + 1}", "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


def test_the_gym_page_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = run_blocks(DOC.with_name("gym.md"))
    assert set(ns["stats"]) >= {"mean", "ci95", "median"} and ns["stats"]["episodes"] == 100


@pytest.mark.slow
def test_the_search_page_api_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = run_blocks(DOC.with_name("search.md"), skip_with="runs/digits_search-...")  # that one needs a finished run
    assert (tmp_path / "runs" / "mine" / "summary.json").is_file() and ns["r"].best_hyperparameters


def test_the_async_page_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = run_blocks(DOC.with_name("async.md"))
    assert ns["r"].summary["utilization"] > 0 and ns["s"].best_hyperparameters
    rungs = {json.loads(line)["budget"] for line in (tmp_path / "runs" / "aging-search" / "jobs.jsonl").read_text().splitlines()}
    assert rungs == {1.0, 2.0, 4.0}
    budgeted = ns["s"].summary  # the last example: stopped by the budget, its cross-validation inside it
    assert budgeted["stopped"]["rule"] == "max_seconds" and "estimated for the final choice" in budgeted["stopped"]["reason"]
    assert budgeted["best"]["cross_validation"]["folds"] == 3
