"""The layers: a core that imports nothing of any problem, and problems that plug in."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = re.compile(r"^\s*(from|import) .*(snake|keras|tensorflow|gymnasium|pygame)")


def test_the_core_names_no_problem_and_no_heavy_package():
    offenders = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
                 for p in sorted((ROOT / "evonet" / "core").rglob("*.py"))
                 for i, line in enumerate(p.read_text().splitlines(), 1) if HEAVY.match(line)]
    assert offenders == []


def test_a_run_of_a_function_problem_loads_no_heavy_package(tmp_path):
    code = textwrap.dedent(f"""
        import sys, numpy as np, evonet
        r = evonet.evolve(n_genes=3, fitness=lambda g, s: -(g ** 2).sum(axis=1), generations=3,
                          out={str(tmp_path / 'run')!r}, progress="none", tensorboard=False)
        heavy = sorted(m for m in ("tensorflow", "keras", "gymnasium", "pygame", "ray") if m in sys.modules)
        print(heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_new_problem_plugs_in_with_its_own_section_and_genome_kind(tmp_path):
    """What docs/architecture.md describes: a problem package registers a section and a
    kind; `evonet run` then runs it (in a subprocess: the registry is per process)."""
    (tmp_path / "toyproblem.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        import numpy as np
        from evonet.core.config import ProblemKind, Section, _f, register_problem
        from evonet.core.problem import Problem
        from evonet.core.types import EvalResult

        @dataclass
        class ToyConfig:
            """The toy problem."""
            target: float = _f(3.0, "where the optimum lies")
            n_genes: int = _f(4, "genes", min=1)

        def evaluate(task):
            genomes, target = task
            return [EvalResult(fitness=-float(((g - target) ** 2).sum())) for g in genomes]

        class Toy(Problem):
            low, up = -10.0, 10.0
            def __init__(self, cfg):
                self.target, self.n_genes = cfg.toy.target, cfg.toy.n_genes
            def init_genomes(self, rng, n):
                return rng.uniform(-1, 1, (n, self.n_genes))
            def make_tasks(self, genomes, generation, indices, chunk, purpose=1, games=None):
                return [(genomes[i:i + chunk], self.target) for i in range(0, len(genomes), chunk)]
            @property
            def evaluate_task(self):
                return evaluate
            def failed_results(self, task, error):
                return [EvalResult(float("-inf"), 0, error=error) for _ in task[0]]

        register_problem(ProblemKind("toy", "a toy quadratic", Toy), [Section("toy", ToyConfig, "the toy")])
    '''))
    code = textwrap.dedent(f"""
        import sys, json
        import toyproblem
        from evonet.cli import main
        sys.exit(main(["run", "--set", "genome=toy", "--set", "toy.target=2.5", "--set", "ga.algorithm=cma_es",
                       "--set", "ga.population=8", "--set", "ga.generations=30", "--set", "ga.final_games=1",
                       "--set", "log.tensorboard=false", "--set", "log.progress=none",
                       "--out", {str(tmp_path / 'run')!r}]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final_fitness"] > -0.01  # found the optimum at 2.5
    assert "toy:\n  target: 2.5" in (tmp_path / "run" / "config.yaml").read_text()
