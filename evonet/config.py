"""Moved to :mod:`evonet.core.config`; this import path keeps working (the same module)."""

import sys

from evonet.core import config as _module

sys.modules[__name__] = _module
