"""Architecture search's section of ``evonet report``: the best network and its scores."""

from __future__ import annotations

from pathlib import Path


def report_section(run_dir: Path, summary: dict) -> list[str]:
    from evonet.report import _md, _num, evaluation_table

    best = summary.get("best")
    if not isinstance(best, dict):
        return evaluation_table("Best agent on evaluation seeds", summary.get("eval"), None,
                                ("games", "mean", "ci95", "median", "min", "max"))
    lines = ["## Best network", "", "| hyperparameter | value |", "|---|---|"]
    lines += [f"| {_md(k)} | {_md(v)} |" for k, v in (best.get("genome") or {}).items()]
    lines += ["", "| | |", "|---|---|"]
    for key in ("params", "search_fitness", "val_accuracy", "test_accuracy", "best_epoch", "trainings",
                "cache_hits", "evaluations"):
        if best.get(key) is not None:
            lines.append(f"| {key} | {_num(best[key])} |")
    ens = best.get("ensemble")
    if isinstance(ens, dict):  # search.ensemble: the exported model averages several genomes
        lines.append(f"| exported model | an ensemble of {ens.get('size')} genomes, {_num(ens.get('params'))} parameters |")
        if ens.get("best_genome_test_accuracy") is not None:
            lines.append(f"| best genome alone: test_accuracy | {_num(ens['best_genome_test_accuracy'])} |")
    ev = summary.get("eval")
    if isinstance(ev, dict):  # snake fitness: the trained network's games
        lines += [""] + evaluation_table("Its games on evaluation seeds", ev, None,
                                         ("games", "mean", "ci95", "median", "min", "max"))
    return lines + [""]
