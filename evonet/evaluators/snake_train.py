"""Moved to :mod:`evonet.problems.snake.train`; this import path keeps working (the same module)."""

import sys

from evonet.problems.snake import train as _module

sys.modules[__name__] = _module
