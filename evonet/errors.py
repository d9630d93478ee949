"""Moved to :mod:`evonet.core.errors`; this import path keeps working (the same module)."""

import sys

from evonet.core import errors as _module

sys.modules[__name__] = _module
