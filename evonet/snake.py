"""Moved to :mod:`evonet.problems.snake.agent`; this import path keeps working (the same module)."""

import sys

from evonet.problems.snake import agent as _module

sys.modules[__name__] = _module
