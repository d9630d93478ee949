"""evonet: neuroevolution and neural architecture search with DEAP, Keras and Ray.

The Python API (see docs/api.md)::

    evonet.search(build_model, x, y, validation_data=(x_val, y_val), ...)   # your Keras model family
    evonet.evolve(policy, env="CartPole-v1", ...)                          # a policy on Gymnasium
    evonet.evolve(n_genes=30, fitness=f, ...)                               # any fitness function
    evonet.strategies.CMAES(n_genes=30, population=32, seed=0)              # ask / tell alone
    evonet.run("digits_search", {"ga.generations": 5})                     # an experiment file: evonet run

Heavy packages (TensorFlow, Ray, Gymnasium, pygame) load only when a call needs them.
"""

from evonet import blas as _blas

_blas.pin()  # before NumPy loads OpenBLAS: the same bits on every x86-64 CPU (evonet.blas)

from evonet.core.errors import ConfigError, EvonetError  # noqa: E402

__version__ = "0.1.0"

__all__ = ["evolve", "search", "run", "resume", "strategies", "executors", "ConfigError", "EvonetError", "HyperParameters"]

_LAZY = {
    "evolve": ("evonet.api", "evolve"),
    "run": ("evonet.api", "run"),
    "resume": ("evonet.api", "resume"),
    "EvolveResult": ("evonet.api", "EvolveResult"),
    "search": ("evonet.search_api", "search"),
    "SearchResult": ("evonet.search_api", "SearchResult"),
    "HyperParameters": ("evonet.problems.nas.hp", "HyperParameters"),
}


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in ("strategies", "executors"):
        return importlib.import_module(f"evonet.{name}")
    raise AttributeError(f"module 'evonet' has no attribute {name!r}")
