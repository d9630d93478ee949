"""Moved to :mod:`evonet.core.resume`; this import path keeps working (the same module)."""

import sys

from evonet.core import resume as _module

sys.modules[__name__] = _module
