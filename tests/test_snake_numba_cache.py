"""numba's on-disk cache of the snake kernels is keyed by every source of the package: an
edit of the engine invalidates the fused kernel that inlines it."""

from pathlib import Path

from evonet.envs.snake import _numba_cache, engine, fused


def test_the_snake_kernels_use_the_package_locator():
    for func in (fused._play_parallel, fused._play_chunk, engine._observe_batch):
        locator = _numba_cache.locator_for(func.py_func)
        assert getattr(locator, "_evonet_snake", False), type(locator)
        assert locator.get_source_stamp() == _numba_cache.sources_digest()
    assert Path(engine.__file__).resolve() in _numba_cache.SOURCES
    assert any(p.name == "nn.py" for p in _numba_cache.SOURCES)


def test_other_functions_keep_numbas_locator():
    from numba import njit

    def f(x):
        return x + 1

    locator = _numba_cache.locator_for(njit(cache=True)(f).py_func)
    assert locator is not None and not getattr(locator, "_evonet_snake", False)


def test_the_digest_follows_every_source(tmp_path):
    files = []
    for name in ("engine.py", "fused.py"):
        path = tmp_path / name
        path.write_text(f"# {name}\n")
        files.append(path)
    before = _numba_cache.sources_digest(tuple(files))
    files[0].write_text("# engine.py, edited\n")
    assert _numba_cache.sources_digest.__wrapped__(tuple(files)) != before
    assert _numba_cache.install()  # idempotent
    assert sum(getattr(c, "_evonet_snake", False) for c in _numba_cache._locator_classes()) == 2
