"""Moved to :mod:`evonet.core.stopping`; this import path keeps working (the same module)."""

import sys

from evonet.core import stopping as _module

sys.modules[__name__] = _module
