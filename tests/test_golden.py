"""The same bits everywhere: a short snake run's logbook, best genome and evaluation table
hash to the values pinned in ``tests/golden/snake_short_run.json``.

Two runs (the embedded defaults, shrunk): the generational GA, whose operators are
elementwise NumPy float64, and CMA-ES, whose linear algebra runs on NumPy's OpenBLAS pinned
to its AVX2 kernels and one thread (:mod:`evonet.blas`); both evaluate on the fused engine
(a fixed-order forward pass, no BLAS, no libm). Their results are therefore the same bits
on any x86-64 CPU with AVX2, any thread count and any number of workers. A change that
alters them (a new operator default, an engine change) must update the golden files in the
same commit, saying why:

    EVONET_UPDATE_GOLDEN=1 bash scripts/test.sh tests/test_golden.py
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden"
COMMON = ["snake.games=4", "ga.final_games=16", "ga.hall_of_fame=4", "eval_games=64", "log.tensorboard=false",
          "log.progress=none"]
RUNS = {
    "ga": ["ga.algorithm=mu_plus_lambda", "ga.population=24", "ga.generations=4", *COMMON],
    # eigen_gap 2: the lazy update (the default from 200 genes on) with three decompositions
    "cma_es": ["ga.algorithm=cma_es", "ga.population=16", "ga.generations=6", "ga.bound=100.0", "ga.eigen_gap=2",
               *COMMON],
}
TIMING = {"seconds", "evals_per_s", "env_steps_per_s", "elapsed", "utilization"}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def fingerprint(run_dir: Path, overrides: list[str]) -> dict:
    """sha256 of the logbook (every field but timings), of the best genome's float32 bytes and
    of the evaluation table's per-game scores, plus a few figures to read when it differs."""
    logbook = [json.loads(line) for line in (run_dir / "logbook.jsonl").read_text().splitlines()]
    rows = [{k: v for k, v in r.items() if k not in TIMING} for r in logbook]
    with np.load(run_dir / "best" / "genome.npz") as data:
        genome = np.ascontiguousarray(data["genome"], dtype=np.float32)
    scores = json.loads((run_dir / "best" / "eval.json").read_text())["scores"]
    return {
        "overrides": overrides,
        "logbook_sha256": _digest(rows),
        "genome_sha256": hashlib.sha256(genome.tobytes()).hexdigest(),
        "eval_scores_sha256": _digest(scores),
        "final_best": rows[-1]["best"],
        "eval_mean": float(np.mean(scores)),
    }


def test_blas_is_pinned():
    from evonet import blas

    if not blas._has_avx2():
        pytest.skip("no AVX2: NumPy's BLAS is not pinned here, and the golden CMA-ES bits need it")
    assert blas.describe() == {"library": "openblas", "architecture": "Haswell", "threads": 1}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_short_run_gives_the_pinned_bits(tmp_path, name, threads):
    from evonet import api, blas

    if name == "cma_es" and blas.describe()["architecture"] != "Haswell":
        pytest.skip("NumPy's BLAS is not pinned (evonet.blas): CMA-ES's bits depend on its kernels")
    overrides = RUNS[name]
    outcome = api.run(None, overrides + [f"snake.threads={threads}"], out=tmp_path / "run", stream=io.StringIO())
    got = fingerprint(Path(outcome.run_dir), overrides)
    path = GOLDEN / f"snake_{name}.json"
    if os.environ.get("EVONET_UPDATE_GOLDEN") and threads == 1:
        path.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(path.read_text())
