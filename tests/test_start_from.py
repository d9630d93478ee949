"""ga.start_from: a run starts at the best genome of an earlier run (fine-tuning, a curriculum)."""

from __future__ import annotations

import numpy as np
import pytest

import evonet
from evonet.cli import main
from evonet.core.errors import ConfigError

TARGET = np.linspace(-2.0, 2.0, 6)


def shifted_sphere(genomes, seeds):
    return -((np.asarray(genomes, np.float64) - TARGET) ** 2).sum(axis=1)


def run(out, **kw):
    kw.setdefault("generations", 2)
    return evonet.evolve(n_genes=6, fitness=shifted_sphere, seed=0, out=out, progress="none", tensorboard=False,
                         bound=5.0, **kw)


def test_cma_es_centres_its_first_generation_on_the_start_genome(tmp_path):
    first = run(tmp_path / "a", algorithm="cma_es", generations=5)
    start = np.load(first.run_dir / "best" / "genome.npz")["genome"].astype(np.float64)
    f_start = float(shifted_sphere(start[None], None)[0])
    # a tiny step size: every genome of generation 0 is the start genome, give or take 1e-6
    tuned = run(tmp_path / "b", algorithm="cma_es", sigma=1e-6, ga={"start_from": str(first.run_dir)})
    gen0 = tuned.logbook[0]
    assert gen0["best"] == pytest.approx(f_start, abs=1e-4) and gen0["mean"] == pytest.approx(f_start, abs=1e-4)
    assert f"starting from {first.run_dir}" in (tuned.run_dir / "run.log").read_text().splitlines()[0]
    cold = run(tmp_path / "c", algorithm="cma_es", sigma=1e-6)  # the same run without it starts elsewhere
    assert abs(cold.logbook[0]["mean"] - f_start) > 0.1
    # a genome file works as the run directory does, and config.yaml records it
    again = run(tmp_path / "d", algorithm="cma_es", sigma=1e-6,
                ga={"start_from": str(first.run_dir / "best" / "genome.npz")})
    assert [r["best"] for r in again.logbook] == [r["best"] for r in tuned.logbook]
    assert "start_from: " + str(first.run_dir / "best" / "genome.npz") in (again.run_dir / "config.yaml").read_text()


def test_the_ga_puts_the_start_genome_into_its_first_population(tmp_path):
    start = TARGET + 0.01  # far better than any random genome in [-1, 1]
    np.savez(tmp_path / "start.npz", genome=start.astype(np.float32))
    f_start = float(shifted_sphere(start.astype(np.float32)[None], None)[0])
    r = run(tmp_path / "ga", algorithm="mu_plus_lambda", population=8, generations=1,
            ga={"start_from": str(tmp_path / "start.npz")})
    assert r.logbook[0]["best"] == pytest.approx(f_start) and r.logbook[0]["mean"] < f_start - 1
    cold = run(tmp_path / "cold", algorithm="mu_plus_lambda", population=8, generations=1)
    assert cold.logbook[0]["best"] < f_start - 1


def test_a_bad_start_genome_is_one_line_and_nothing_is_written(tmp_path, capsys):
    np.savez(tmp_path / "short.npz", genome=np.zeros(5, np.float32))
    np.savez(tmp_path / "wide.npz", genome=np.full(627, 200.0, np.float32))
    np.savez(tmp_path / "nan.npz", genome=np.full(627, np.nan, np.float32))
    np.savez(tmp_path / "nokey.npz", weights=np.zeros(627, np.float32))
    (tmp_path / "junk.npz").write_text("not a zip")
    cases = {
        str(tmp_path / "missing"): "no such file",
        str(tmp_path / "short.npz"): "holds a genome of shape [5]; this run's genome has 627 genes",
        str(tmp_path / "wide.npz"): "627 genes lie outside this run's bounds [-5, 5] (ga.bound)",
        str(tmp_path / "nan.npz"): "non-finite values",
        str(tmp_path / "nokey.npz"): "not a genome file",
        str(tmp_path / "junk.npz"): "not a genome file",
    }
    for where, message in cases.items():
        out = tmp_path / "never"
        code = main(["run", "--out", str(out), "--set", f"ga.start_from={where}", "--set", "ga.generations=1"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "ga.start_from: " in err and message in err, (where, err)
        assert not out.exists()
    with pytest.raises(ConfigError, match="ga.start_from: .*no such file"):
        run(tmp_path / "api", ga={"start_from": str(tmp_path / "missing")})
