"""Moved to :mod:`evonet.problems.nas.keras_train`; this import path keeps working (the same module)."""

import sys

from evonet.problems.nas import keras_train as _module

sys.modules[__name__] = _module
