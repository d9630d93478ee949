"""``evonet report RUN_DIR``: PNG plots and a markdown summary of a run.

Works on a finished run, a running one and a crashed one alike: it reads only what the
run writes as it goes (``logbook.jsonl``, ``eval_times.jsonl``, ``failures.jsonl``,
the latest checkpoint) and, when present, ``summary.json``. Writes into
``RUN_DIR/report/`` (or ``--out``):

* ``fitness.png``: best, mean, mean ± std and min fitness per generation;
* ``diversity.png``: population diversity (mean per-gene standard deviation) per generation;
* ``eval_time.png``: histogram of the seconds per evaluation (its axis leaves out the
  compile time of a session's first generation when that would squash the rest);
* ``pareto.png``: the last population in objective space with its Pareto front, only
  when the fitness has two objectives;
* ``report.md``: the figures, the rule set and board of the snake scores, the stop reason, the benchmark of the best agent, and
  every failed evaluation with its error.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from evonet.core.store import RunDirError, RunStore, atomic_write_bytes, atomic_write_text

MAX_FAILURES_LISTED = 200


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _dedupe(logbook: list[dict]) -> list[dict]:
    """One record per generation (the last one written), in generation order."""
    by_gen: dict[int, dict] = {}
    for rec in logbook:
        if isinstance(rec, dict) and isinstance(rec.get("gen"), int):
            by_gen[rec["gen"]] = rec
    return [by_gen[g] for g in sorted(by_gen)]


def plot_fitness(logbook: list[dict], path: Path, title: str) -> Path:
    plt = _pyplot()
    gens = np.array([r["gen"] for r in logbook])
    best, mean, std = (np.array([r[k] for r in logbook], dtype=float) for k in ("best", "mean", "std"))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.fill_between(gens, mean - std, mean + std, color="tab:blue", alpha=0.2, label="mean ± std")
    ax.plot(gens, best, label="best", color="tab:green", lw=2)
    ax.plot(gens, mean, label="mean", color="tab:blue")
    if all("min" in r for r in logbook):
        ax.plot(gens, [r["min"] for r in logbook], label="min", color="tab:gray", lw=0.8, ls=":")
    stops = [r for r in logbook if r.get("stop")]
    for r in stops:
        ax.axvline(r["gen"], color="tab:red", lw=0.8, ls="--", label="stopped")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def plot_diversity(logbook: list[dict], path: Path, title: str) -> Path | None:
    recs = [r for r in logbook if isinstance(r.get("diversity"), (int, float))]
    if not recs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    ax.plot([r["gen"] for r in recs], [r["diversity"] for r in recs], color="tab:purple", lw=1.5)
    ax.set_xlabel("generation")
    ax.set_ylabel("mean per-gene std")
    ax.set_title(f"population diversity: {title}")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def eval_time_axis(seconds: np.ndarray, first: np.ndarray | None = None) -> tuple[float, int]:
    """The upper end of the evaluation-time axis, and how many evaluations lie beyond it.

    The first generation of a session compiles the game (numba) and its evaluations can
    take far longer than the rest, which would squash every other bar of the histogram
    into its first bin. ``first`` marks those evaluations: the axis goes up to the 99th
    percentile of the others when something lies beyond twice that, else to the maximum.
    """
    seconds = np.asarray(seconds, dtype=float)
    top = float(seconds.max())
    later = seconds[~first] if first is not None and len(first) == len(seconds) else seconds
    if later.size == 0:
        return top, 0
    cut = float(np.percentile(later, 99))
    if cut <= 0 or top <= 2 * cut:
        return top, 0
    return cut, int(np.count_nonzero(seconds > cut))


def plot_eval_times(seconds: np.ndarray, path: Path, title: str, first: np.ndarray | None = None) -> Path | None:
    """Histogram of the seconds per evaluation; ``first``: the evaluations of a session's
    first generation (compile time), left out of the axis scaling (see :func:`eval_time_axis`)."""
    if seconds.size == 0:
        return None
    plt = _pyplot()
    upper, above = eval_time_axis(seconds, first)
    scale, unit = (1e3, "ms") if np.median(seconds) < 1.0 else (1.0, "s")
    fig, ax = plt.subplots(figsize=(7, 4.0 if above else 3.5), dpi=110)
    shown = np.minimum(seconds, upper) * scale  # slower ones in the last bin
    low = min(float(shown.min()), upper * scale)
    ax.hist(shown, bins=min(50, max(5, int(np.sqrt(seconds.size)))), range=(low, upper * scale),
            color="tab:orange", edgecolor="white")
    med = float(np.median(seconds)) * scale
    ax.axvline(med, color="black", lw=1, ls="--", label=f"median {med:.3g} {unit}")
    xlabel = f"{unit} per evaluation"
    if above:  # said under the axis: the last bar is not what it seems
        xlabel += (f"\naxis cut at the 99th percentile of the later generations ({upper * scale:.3g} {unit}): the last "
                   f"bin also counts {above} slower evaluations\n(a session's first generation includes the "
                   f"compile time; slowest {seconds.max():.3g} s)")
    ax.set_xlabel(xlabel, fontsize=None if not above else 8)
    ax.set_ylabel("evaluations")
    ax.set_title(f"evaluation time ({seconds.size} evaluations): {title}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def pareto_front(points: np.ndarray, weights) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (n, k) under DEAP ``weights``
    (positive: maximise, negative: minimise)."""
    w = np.sign(np.asarray(weights, dtype=float))
    scaled = points * w  # larger is better in every column
    n = len(scaled)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = np.all(scaled >= scaled[i], axis=1) & np.any(scaled > scaled[i], axis=1)
        if dominated.any():
            mask[i] = False
    return mask


def plot_pareto(points: np.ndarray, weights, path: Path, title: str, names=("objective 1", "objective 2")) -> Path:
    plt = _pyplot()
    front = pareto_front(points, weights)
    order = np.argsort(points[front, 0])
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    ax.scatter(points[~front, 0], points[~front, 1], s=14, color="tab:gray", alpha=0.6, label="population")
    ax.plot(points[front, 0][order], points[front, 1][order], "-o", color="tab:red", ms=5,
            label=f"Pareto front ({int(front.sum())})")
    sense = ["max" if w > 0 else "min" for w in weights]
    ax.set_xlabel(f"{names[0]} ({sense[0]})")
    ax.set_ylabel(f"{names[1]} ({sense[1]})")
    ax.set_title(f"last population: {title}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _md(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _num(value: Any, fmt: str = ".4g") -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, fmt)
    return "-" if value is None else _md(value)


def game_label(run_dir: Path, summary: dict) -> str | None:
    """The snake game the run's scores come from, e.g. ``classic rules, 10x10 board``
    (from the benchmark table, ``best/eval.json``, or ``problem.json``); None when the
    fitness is not a snake score (accuracy, a gym environment, a function)."""
    sources = [summary.get("eval"), _read_json(run_dir / "best" / "eval.json")]
    for ev in sources:
        rules = ev.get("rules") if isinstance(ev, dict) else None
        if isinstance(rules, dict) and rules.get("name"):
            w, h = rules.get("width"), rules.get("height")
            return f"{rules['name']} rules" + (f", {w}x{h} board" if w and h else "")
    problem = _read_json(run_dir / "problem.json")
    if not isinstance(problem, dict):
        return None
    if problem.get("genome") == "hyperparameters":
        if problem.get("fitness") != "snake" or not isinstance(problem.get("snake"), dict):
            return None
        problem = problem["snake"]
    rules, board = problem.get("rules"), problem.get("board")
    if not isinstance(rules, str):
        return None
    if isinstance(board, int):
        board = f"{board}x{board}"
    return f"{rules} rules" + (f", {board} board" if board else "")


def problem_section(genome, run_dir: Path, summary: dict, game: str | None) -> list[str]:
    """The report section of the run's problem: its genome kind's ``report`` function
    (``ProblemKind.report``, ``"module:function"``: ``(run_dir, summary) -> markdown lines``),
    else a table of the final best's evaluation figures when the summary has them."""
    import importlib

    from evonet.core.config import PROBLEM_KINDS, load_plugins

    load_plugins()
    kind = PROBLEM_KINDS.get(genome) if isinstance(genome, str) else None
    if kind is not None and kind.report:
        module, _, attr = kind.report.partition(":")
        return list(getattr(importlib.import_module(module), attr)(run_dir, summary))
    return evaluation_table("Best agent on evaluation seeds", summary.get("eval"), game,
                            ("games", "mean", "ci95", "median", "min", "max", "win_rate", "steps_per_apple"))


def evaluation_table(heading: str, ev, game: str | None, keys) -> list[str]:
    """A markdown table of the evaluation figures ``keys`` of ``ev`` (empty without them)."""
    if not isinstance(ev, dict):
        return []
    where = ", ".join(_md(x) for x in (ev.get("seeds"), game) if x)
    lines = [f"## {heading}", "", where, "", "| | |", "|---|---|"]
    lines += [f"| {key} | {_num(ev[key])} |" for key in keys if key in ev]
    return lines + [""]


def plot_learning_curves(jobs: list[dict], path: Path, title: str) -> Path | None:
    """Multi-fidelity runs: every member's fitness against the budget it reached, one line per
    member through its rungs, coloured by the highest rung it reached (None: no budgets)."""
    rows = [j for j in jobs if j.get("budget") is not None and j.get("fitness") is not None]
    if not rows:
        return None
    plt = _pyplot()
    by_member: dict[int, list] = {}
    for j in rows:
        by_member.setdefault(int(j["member"]), []).append((float(j["budget"]), float(j["fitness"]), int(j["rung"])))
    top = max(r for pts in by_member.values() for _, _, r in pts)
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for pts in by_member.values():
        pts.sort()
        reached = max(r for _, _, r in pts)
        color = cmap(reached / max(1, top))
        ax.plot([b for b, _, _ in pts], [f for _, f, _ in pts], "-o", ms=2.5, lw=0.8, alpha=0.35 + 0.5 * reached / max(1, top),
                color=color)
    for r in range(top + 1):
        ax.plot([], [], "-o", color=cmap(r / max(1, top)), label=f"reached rung {r}")
    ax.set_xscale("log")
    ax.minorticks_off()
    budgets = sorted({b for pts in by_member.values() for b, _, _ in pts})
    ax.set_xticks(budgets)
    ax.set_xticklabels([f"{b:g}" for b in budgets])
    ax.set_xlabel("budget (the problem's unit: epochs for a search)")
    ax.set_ylabel("fitness at the rung")
    ax.set_title(f"{title}: {len(by_member)} members")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def rung_table(jobs: list[dict]) -> list[str]:
    """Per rung: trainings started there (new members or promotions), promoted on, stopped
    there (never promoted), failed."""
    rungs = sorted({int(j["rung"]) for j in jobs})
    if not rungs or all(j.get("budget") is None for j in jobs):
        return []
    reached: dict[int, int] = {}
    for j in jobs:
        reached[int(j["member"])] = max(reached.get(int(j["member"]), -1), int(j["rung"]))
    lines = ["| rung | budget | trainings | promoted | stopped there | failed |", "|---|---|---|---|---|---|"]
    for r in rungs:
        here = [j for j in jobs if int(j["rung"]) == r]
        members = {int(j["member"]) for j in here}
        promoted = sum(1 for m in members if reached[m] > r)
        failed = sum(1 for j in here if j.get("error"))
        budget = here[0].get("budget")
        lines.append(f"| {r} | {_num(budget)} | {len(here)} | {promoted} | {len(members) - promoted - failed} | {failed} |")
    return lines


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the plots and ``report.md``; returns the path of ``report.md``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    store = RunStore(run_dir)
    out = Path(out) if out is not None else run_dir / "report"
    logbook = _dedupe(store.read_jsonl("logbook.jsonl", tolerant=True))
    checkpoint = None
    try:
        from evonet.core.checkpoint import CheckpointError, load_checkpoint

        checkpoint = load_checkpoint(run_dir)
    except CheckpointError:
        checkpoint = None
    if not logbook and checkpoint is not None:
        logbook = _dedupe(checkpoint.state["loop"]["logbook"])
    if not logbook:
        raise RunDirError(f"{run_dir}: not a run directory, or no generation finished yet (no logbook.jsonl)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"{out}: cannot create the report directory ({exc.strerror})") from None

    summary = _read_json(run_dir / "summary.json") or {}
    cfg = _read_yaml(run_dir / "config.yaml")
    name = summary.get("name") or cfg.get("name") or run_dir.name
    seed = summary.get("seed", cfg.get("seed", "?"))
    title = f"{name}, seed {seed}"
    failures = [f for f in store.read_jsonl("failures.jsonl", tolerant=True) if isinstance(f, dict)]
    # the first generation of every session (the run's, and each resume's) compiles the game
    run_info = _read_json(run_dir / "run.json") or {}
    firsts = {0} | {int(r["from_generation"]) + 1 for r in (run_info.get("resumes") or [])
                    if isinstance(r, dict) and isinstance(r.get("from_generation"), int)}
    times = [(rec.get("gen"), [s for s in rec.get("seconds", []) if isinstance(s, (int, float))])
             for rec in store.read_jsonl("eval_times.jsonl", tolerant=True) if isinstance(rec, dict)]
    seconds = np.array([s for _, secs in times for s in secs], dtype=float)
    first = np.array([gen in firsts for gen, secs in times for _ in secs], dtype=bool)

    plots: dict[str, Path | None] = {
        "fitness": plot_fitness(logbook, out / "fitness.png", title),
        "diversity": plot_diversity(logbook, out / "diversity.png", title),
        "eval_time": plot_eval_times(seconds, out / "eval_time.png", title, first),
        "pareto": None,
    }
    jobs = [j for j in store.read_jsonl("jobs.jsonl", tolerant=True) if isinstance(j, dict) and "rung" in j]
    plots["learning_curves"] = plot_learning_curves(jobs, out / "learning_curves.png", title) if jobs else None
    n_objectives = 1
    if checkpoint is not None:
        s_state = checkpoint.state.get("strategy", {})
        values = [v for v in s_state.get("population", {}).get("fitness", []) if v is not None]
        weights = s_state.get("fitness_weights") or ([1.0] * len(values[0]) if values else [1.0])
        n_objectives = len(weights)
        if n_objectives == 2 and values:
            points = np.array(values, dtype=float)
            spec = str((cfg.get("search") or {}).get("objectives") or "")
            names = tuple(spec.split("+")) if spec.count("+") == 1 else ("objective 1", "objective 2")
            plots["pareto"] = plot_pareto(points, weights, out / "pareto.png",
                                          f"{title}, generation {checkpoint.generation}", names)

    last = logbook[-1]
    generations = summary.get("generations", (cfg.get("ga") or {}).get("generations", "?"))
    stop = summary.get("stopped") or {}
    if summary:
        status = f"finished: {stop.get('reason', 'done')}"
    elif checkpoint is not None:
        status = (f"not finished (running, stopped or crashed); latest checkpoint {checkpoint.name}: "
                  f"`evonet resume {run_dir}` continues it")
    else:
        status = "not finished; no checkpoint"
    game = game_label(run_dir, summary)
    lines = [f"# Run report: {_md(name)}", "", f"`{run_dir}` — {_md(status)}", "", "| | |", "|---|---|"]
    rows = [
        ("seed", seed),
        *([("game (the scores' rule set and board)", game)] if game else []),
        ("generations", f"{last['gen']} of {generations}"),
        ("evaluations", summary.get("evaluations", sum(int(r.get("evals", 0)) for r in logbook))),
        ("best fitness, last generation", _num(last.get("best"))),
        ("mean fitness, last generation", _num(last.get("mean"))),
        ("best fitness, all generations", _num(max(r["best"] for r in logbook))),
        ("diversity, last generation", _num(last.get("diversity"))),
        ("final fitness (hall of fame, fresh games)",
         f"{_num(summary['final_fitness'])} over {summary.get('final_games')} games" if "final_fitness" in summary else "-"),
        ("evolution time", f"{_num(last.get('elapsed'), '.1f')} s"),
        ("failed evaluations", len(failures)),
        ("objectives", n_objectives),
    ]
    if summary.get("utilization") is not None:
        rows.append(("worker utilization", f"{_num(summary['utilization'], '.3f')} ({summary.get('workers', '?')} "
                                           f"workers)"))
    if summary.get("asynchronous"):
        a = summary["asynchronous"]
        rows.append(("asynchronous", f"{a.get('mode')}" + (f", lag {a.get('lag')}" if a.get("mode") == "reproducible"
                                                          else " (not reproducible)")))
    if stop:
        rows.append(("stopped", stop.get("reason")))
    if summary.get("resumes"):
        rows.append(("resumed", f"{len(summary['resumes'])} time(s), from generation(s) "
                                 + ", ".join(str(r.get("from_generation")) for r in summary["resumes"])))
    lines += [f"| {k} | {_md(v)} |" for k, v in rows]
    lines += ["", "## Fitness", ""]
    if game:
        lines += [f"Snake scores: {_md(game)}.", ""]
    lines += ["![fitness](fitness.png)", ""]
    if plots["diversity"]:
        lines += ["## Population diversity", "", "Mean over genes of the population's per-gene standard deviation.",
                  "", "![diversity](diversity.png)", ""]
    if plots["eval_time"]:
        lines += ["## Evaluation time", "",
                  f"{seconds.size} evaluations: median {np.median(seconds):.4g} s, "
                  f"95th percentile {np.percentile(seconds, 95):.4g} s, max {seconds.max():.4g} s, "
                  f"total {seconds.sum():.4g} s (a task's time shared by the genomes it evaluates)."]
        upper, above = eval_time_axis(seconds, first)
        if above:
            compile_note = (f"The first generation of a session includes the compile time (median "
                            f"{np.median(seconds[first]):.4g} s against {np.median(seconds[~first]):.4g} s later): "
                            if first.any() and (~first).any() else "")
            lines += ["", f"{compile_note}the plot's axis stops at the 99th percentile of the later generations "
                          f"({upper:.4g} s), its last bin counting the {above} slower evaluations."]
        lines += ["", "![evaluation time](eval_time.png)", ""]
    if jobs:
        table = rung_table(jobs)
        lines += ["## Asynchronous jobs", "", f"{len(jobs)} jobs told, {len({j['member'] for j in jobs})} members."]
        if table:
            lines += ["", "Successive halving: trainings per rung, members promoted on from it, members whose "
                          "training stopped there.", "", *table]
        if plots.get("learning_curves"):
            lines += ["", "Every member's fitness after each rung's budget (its training continued from one rung to "
                          "the next), coloured by the highest rung it reached.", "",
                      "![learning curves](learning_curves.png)"]
        lines.append("")
    if plots["pareto"]:
        lines += ["## Pareto front", "", f"The population of generation {checkpoint.generation} in objective space.",
                  "", "![pareto front](pareto.png)", ""]
    lines += problem_section(cfg.get("genome"), run_dir, summary, game)
    lines += ["## Failed evaluations", ""]
    if not failures:
        lines += ["None.", ""]
    else:
        counts = Counter(_md(f.get("error")) for f in failures)
        lines += [f"{len(failures)} failed evaluation(s); by error:", "", "| count | error |", "|---|---|"]
        lines += [f"| {n} | {err} |" for err, n in counts.most_common()]
        lines += ["", "| generation | index | error |", "|---|---|---|"]
        lines += [f"| {f.get('generation')} | {f.get('index')} | {_md(f.get('error'))} |"
                  for f in failures[:MAX_FAILURES_LISTED]]
        if len(failures) > MAX_FAILURES_LISTED:
            lines.append(f"\n... and {len(failures) - MAX_FAILURES_LISTED} more in failures.jsonl")
        lines.append("")
    lines += ["## Logbook", "", "| gen | evals | best | mean | std | diversity | failed | seconds |",
              "|---|---|---|---|---|---|---|---|"]
    step = max(1, len(logbook) // 25)
    shown = logbook[::step] + ([last] if logbook[::step][-1] is not last else [])
    for r in shown:
        lines.append(f"| {r['gen']} | {r.get('evals', '-')} | {_num(r.get('best'))} | {_num(r.get('mean'))} | "
                     f"{_num(r.get('std'))} | {_num(r.get('diversity'))} | {r.get('failed', '-')} | "
                     f"{_num(r.get('seconds'), '.3g')} |")
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _read_yaml(path: Path) -> dict:
    try:
        import yaml

        data = yaml.safe_load(path.read_text())
        return data if isinstance(data, dict) else {}
    except Exception:  # noqa: BLE001 - a report is best effort on a broken config
        return {}
