import pytest

from trnsim.sweep import Evaluator, ModelSizes, ServingSetup


@pytest.fixture(autouse=True)
def _private_kernel_cache(tmp_path, monkeypatch):
    """Sweeps with the estimate step cost run the compiler: keep its on-disk cache per test."""
    monkeypatch.setenv("TRNSIM_CACHE_DIR", str(tmp_path / "cache"))


# An 8B-parameter dense decoder's sizes in bf16 (Llama-3-8B-like: 32 layers x 8 KV heads x 128 x 2 x 2 bytes),
# given directly so the fast tests do not load transformers to read a config.
SIZES = ModelSizes("dense-8b", weight_bytes=16e9, kv_bytes_per_token=131072, params=8e9, active_params=8e9)


@pytest.fixture
def evaluator() -> Evaluator:
    setup = ServingSetup("dense-8b", hw="trn2", requests=40, prompt="128-512", output="32-96", rate=6.0, seed=3)
    return Evaluator(setup, sizes=SIZES)
