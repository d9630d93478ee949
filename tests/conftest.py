import os
import sys
from pathlib import Path

import evonet  # noqa: F401  first: it pins NumPy's BLAS before anything loads it (evonet.blas)
import pytest

# Keep Keras, matplotlib and SDL away from the home directory and the screen.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def evonet_cmd():
    """The evonet CLI as a subprocess argument list (this interpreter, this checkout)."""
    return [sys.executable, "-m", "evonet"]


@pytest.fixture
def subprocess_env(tmp_path):
    env = dict(os.environ)
    env.update(
        KERAS_HOME=str(tmp_path / "keras"),
        MPLCONFIGDIR=str(tmp_path / "mpl"),
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env
