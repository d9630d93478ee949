"""The snake problem's section of ``evonet report``: the best agent's benchmark table."""

from __future__ import annotations

from pathlib import Path


def report_section(run_dir: Path, summary: dict) -> list[str]:
    from evonet.report import evaluation_table, game_label

    return evaluation_table("Best agent on evaluation seeds", summary.get("eval"), game_label(run_dir, summary),
                            ("games", "mean", "ci95", "median", "min", "max", "win_rate", "steps_per_apple"))
