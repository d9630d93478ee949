"""The fitness-function problem's section of ``evonet report``: the best vector."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def report_section(run_dir: Path, summary: dict) -> list[str]:
    from evonet.report import _num

    path = run_dir / "best" / "genome.npz"
    if not path.is_file():
        return []
    with np.load(path, allow_pickle=False) as data:
        genome = data["genome"]
    shown = ", ".join(f"{x:.4g}" for x in genome[:8]) + (", ..." if genome.size > 8 else "")
    return ["## Best genome", "", f"{genome.size} genes, fitness {_num(summary.get('final_fitness'))}: "
            f"[{shown}] (`best/genome.npz`)", ""]
