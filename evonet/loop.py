"""Moved to :mod:`evonet.core.loop`; this import path keeps working (the same module)."""

import sys

from evonet.core import loop as _module

sys.modules[__name__] = _module
