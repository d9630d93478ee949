"""numba's on-disk cache of the snake package, keyed by all of its sources.

numba keys a cached compiled function on the source of its own file only. The fused kernel
(:mod:`.fused`) inlines the step and the observation of :mod:`.engine` and constants of
:mod:`evonet.nn`, so after an edit of those files (a development checkout, an editable
install) numba would load a stale kernel compiled from the old engine. The locators here
take over for the functions of this package: the same cache directories as numba's own
(``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the file), with a source stamp that is
the digest of every Python file of the package and of ``evonet/nn.py``. Where numba's
locator classes are not as expected (another numba version), nothing is installed and
numba's own keys apply.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
#: the sources a compiled function of this package may depend on
SOURCES: tuple[Path, ...] = (*sorted(PACKAGE.glob("*.py")), PACKAGE.parents[1] / "nn.py")


@functools.lru_cache(maxsize=None)
def sources_digest(sources: tuple[Path, ...] = SOURCES) -> str:
    """sha256 over the contents of ``sources`` (a missing file counts as empty)."""
    h = hashlib.sha256()
    for path in sources:
        h.update(str(path.name).encode())
        h.update(path.read_bytes() if path.is_file() else b"")
    return h.hexdigest()


def _ours(py_file) -> bool:
    try:
        return Path(py_file).resolve().parent == PACKAGE
    except OSError:
        return False


def _locator_classes() -> list | None:
    """numba's list of cache locator classes (``CacheImpl``, ``_CacheImpl`` before numba 0.61)."""
    try:
        from numba.core import caching
    except ImportError:
        return None
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    return getattr(impl, "_locator_classes", None)


def locator_for(py_func):
    """The locator numba picks for ``py_func`` (the first class that accepts it)."""
    import inspect

    for cls in _locator_classes() or ():
        locator = cls.from_function(py_func, inspect.getfile(py_func))
        if locator is not None:
            return locator
    return None


def install() -> bool:
    """Put this package's locators first in numba's list (once); False where numba's
    caching module lacks the classes they build on."""
    try:
        from numba.core import caching

        bases = (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator)
    except (ImportError, AttributeError):
        return False
    classes = _locator_classes()
    if not isinstance(classes, list):
        return False
    if any(getattr(c, "_evonet_snake", False) for c in classes):
        return True

    def make(base):
        class Locator(base):
            _evonet_snake = True

            @classmethod
            def from_function(cls, py_func, py_file):
                return super().from_function(py_func, py_file) if _ours(py_file) else None

            def get_source_stamp(self):
                return sources_digest()

        Locator.__name__ = Locator.__qualname__ = f"EvonetSnake{base.__name__}"
        return Locator

    classes[:0] = [make(base) for base in bases]
    return True
