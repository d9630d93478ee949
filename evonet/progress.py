"""Moved to :mod:`evonet.core.progress`; this import path keeps working (the same module)."""

import sys

from evonet.core import progress as _module

sys.modules[__name__] = _module
