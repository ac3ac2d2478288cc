import pytest


@pytest.fixture(autouse=True)
def _private_kernel_cache(tmp_path, monkeypatch):
    """Each test gets its own on-disk kernel cache, so no test depends on another's cached costs."""
    from trnsim.compiler.kernel_cache import reset_default_cache

    monkeypatch.setenv("TRNSIM_CACHE_DIR", str(tmp_path / "cache"))
    reset_default_cache(None)
    yield
    reset_default_cache(None)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Dynamo keeps compiled frames and recompile counts per code object across tests; once a shared Hugging Face
    function (masking, attention dispatch) passes its recompile limit, later tests would silently run it eagerly.
    Each test starts from a clean Dynamo state, as a fresh process would."""
    import torch

    torch._dynamo.reset()
    yield
