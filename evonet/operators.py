"""Moved to :mod:`evonet.strategies.operators`; this import path keeps working (the same module)."""

import sys

from evonet.strategies import operators as _module

sys.modules[__name__] = _module
