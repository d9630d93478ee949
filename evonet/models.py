"""Moved to :mod:`evonet.problems.nas.models`; this import path keeps working (the same module)."""

import sys

from evonet.problems.nas import models as _module

sys.modules[__name__] = _module
