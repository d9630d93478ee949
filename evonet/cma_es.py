"""Moved to :mod:`evonet.strategies.cma_es`; this import path keeps working (the same module)."""

import sys

from evonet.strategies import cma_es as _module

sys.modules[__name__] = _module
