"""``evonet bench search --methods ray_tune_asha``: Ray Tune's ASHA scheduler under the same
budget and final protocol as the other methods (it starts its own one-CPU Ray instance)."""

from __future__ import annotations

import json

import pytest

from evonet.cli import main

pytestmark = pytest.mark.ray


def test_ray_tune_asha_searches_within_the_budget_and_gives_the_common_row(tmp_path, capsys):
    pytest.importorskip("ray.tune")
    # 40 s: Ray's own start-up counts in the budget, and takes 10 s or more on a loaded 2-core machine
    assert main(["bench", "search", "--budget-s", "40", "--seeds", "5,", "--dataset", "digits", "--epochs", "3",
                 "--methods", "ray_tune_asha", "--out", str(tmp_path), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)["methods"]["ray_tune_asha"]
    row = json.loads((tmp_path / "ray_tune_asha-seed5.json").read_text())
    assert 0.5 < r["median_test_accuracy"] <= 1 and r["test_accuracy"] == [row["test_accuracy"]]
    # ASHA stops most trials at the grace period: fewer epochs than trainings x epochs cap
    assert row["trainings"] >= 3 and row["trainings"] <= row["epochs_trained"] < 3 * row["trainings"]
    assert 1 <= row["best_epoch"] <= 3 and set(row["values"]) >= {"layers", "units_0", "activation", "lr"}
    assert row["trace"] and all(t <= 40 for t, _ in row["trace"])
    assert row["trace"][-1][1] == pytest.approx(row["val_accuracy"])  # the best epoch finished in the budget
    assert 0 < row["utilization"] <= 1
