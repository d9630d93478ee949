"""Moved to :mod:`evonet.problems.nas.accuracy`; this import path keeps working (the same module)."""

import sys

from evonet.problems.nas import accuracy as _module

sys.modules[__name__] = _module
