"""Moved to :mod:`evonet.core.checkpoint`; this import path keeps working (the same module)."""

import sys

from evonet.core import checkpoint as _module

sys.modules[__name__] = _module
