"""Moved to :mod:`evonet.core.runner`; this import path keeps working (the same module)."""

import sys

from evonet.core import runner as _module

sys.modules[__name__] = _module
