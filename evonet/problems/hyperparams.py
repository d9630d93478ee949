"""Moved to :mod:`evonet.problems.nas.problem`; this import path keeps working (the same module)."""

import sys

from evonet.problems.nas import problem as _module

sys.modules[__name__] = _module
