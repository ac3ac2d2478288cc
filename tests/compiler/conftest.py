import pytest


@pytest.fixture(autouse=True)
def _private_kernel_cache(tmp_path, monkeypatch):
    """Each test gets its own on-disk kernel cache, so no test depends on another's cached costs."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    monkeypatch.setenv("TRNSIM_CACHE_DIR", str(tmp_path / "cache"))
    reset_default_cache(None)
    yield
    reset_default_cache(None)
