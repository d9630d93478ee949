"""Moved to :mod:`evonet.problems.nas.user_model`; this import path keeps working (the same module)."""

import sys

from evonet.problems.nas import user_model as _module

sys.modules[__name__] = _module
