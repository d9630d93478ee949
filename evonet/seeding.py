"""Moved to :mod:`evonet.core.seeding`; this import path keeps working (the same module)."""

import sys

from evonet.core import seeding as _module

sys.modules[__name__] = _module
