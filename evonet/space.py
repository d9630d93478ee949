"""Moved to :mod:`evonet.problems.nas.space`; this import path keeps working (the same module)."""

import sys

from evonet.problems.nas import space as _module

sys.modules[__name__] = _module
