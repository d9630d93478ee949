"""Moved to :mod:`evonet.core.store`; this import path keeps working (the same module)."""

import sys

from evonet.core import store as _module

sys.modules[__name__] = _module
