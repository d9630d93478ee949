"""Moved to :mod:`evonet.strategies.ga`; this import path keeps working (the same module)."""

import sys

from evonet.strategies import ga as _module

sys.modules[__name__] = _module
