"""Experiments and search spaces ship inside the package: `evonet run NAME` from a wheel."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from evonet import config
from evonet.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_every_experiment_file_is_shipped_and_valid():
    shipped = config.shipped_experiments()
    files = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))
    assert files and sorted(shipped) == files
    for name in files:
        assert config.load(name).name  # by name, from any directory; validates (spaces resolve too)


def test_a_typo_names_the_closest_experiment():
    with pytest.raises(ConfigError, match=r"snake_weight: no such config file or shipped experiment "
                                          r"\(did you mean 'snake_weights'\?\)"):
        config.load("snake_weight")


@pytest.mark.slow
def test_run_by_name_from_an_installed_wheel(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("evonet-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "evonet/experiments/digits_search.yaml" in names
        assert "evonet/search_spaces/dense_classifier.yaml" in names
        zf.extractall(site)
    work = tmp_path / "elsewhere"  # no checkout here: no experiments/ or search_spaces/
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), MPLCONFIGDIR=str(tmp_path / "mpl"), KERAS_HOME=str(tmp_path / "k"))
    probe = subprocess.run([sys.executable, "-c", "import evonet; print(evonet.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True)
    assert probe.stdout.strip().startswith(str(site)), probe.stdout + probe.stderr
    run = subprocess.run([sys.executable, "-m", "evonet", "run", "digits_search", "--out", str(tmp_path / "run"),
                          "--set", "ga.population=2", "--set", "ga.generations=0", "--set", "search.epochs=1",
                          "--set", "ga.hall_of_fame=1", "--set",
                          "log.tensorboard=false", "--set", "log.progress=none"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "run" / "summary.json").is_file()
    typo = subprocess.run([sys.executable, "-m", "evonet", "run", "digits_serch"], cwd=work, env=env,
                          capture_output=True, text=True)
    assert typo.returncode == 2 and "did you mean 'digits_search'?" in typo.stderr
