"""Moved to :mod:`evonet.problems.snake.problem`; this import path keeps working (the same module)."""

import sys

from evonet.problems.snake import problem as _module

sys.modules[__name__] = _module
