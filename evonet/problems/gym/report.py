"""The Gymnasium problem's section of ``evonet report``: the best policy on evaluation episodes."""

from __future__ import annotations

from pathlib import Path


def report_section(run_dir: Path, summary: dict) -> list[str]:
    from evonet.report import _md, evaluation_table

    ev = summary.get("eval")
    lines = evaluation_table("Best policy on evaluation episodes", ev, None,
                             ("episodes", "mean", "ci95", "ci95_method", "median", "min", "max", "std", "mean_steps"))
    if lines and isinstance(ev, dict) and ev.get("env"):
        lines.insert(2, f"Environment {_md(ev['env'])}; the policy is `best/model.keras`.")
        lines.insert(3, "")
    return lines
