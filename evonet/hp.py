"""Moved to :mod:`evonet.problems.nas.hp`; this import path keeps working (the same module)."""

import sys

from evonet.problems.nas import hp as _module

sys.modules[__name__] = _module
