"""Moved to :mod:`evonet.problems.snake.evaluate`; this import path keeps working (the same module)."""

import sys

from evonet.problems.snake import evaluate as _module

sys.modules[__name__] = _module
