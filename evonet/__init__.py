"""evonet: neuroevolution and neural architecture search with DEAP, Keras and Ray."""

__version__ = "0.1.0"

_LAZY = {"search": ("evonet.search_api", "search"), "HyperParameters": ("evonet.hp", "HyperParameters"),
         "ConfigError": ("evonet.errors", "ConfigError")}


def __getattr__(name):
    """The Python API, imported on first use (``import evonet`` stays light)."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'evonet' has no attribute {name!r}")
