"""GPU estimates of a mixture-of-experts model price the experts' grouped matmuls as GEMMs (one group per expert,
in the estimate's weight format), not as memory traffic."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers

import trnsim
from trnsim.gpu import GpuModel
from trnsim.models import build_model

H, W, E, K = 256, 128, 8, 2


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    cfg = transformers.Qwen3MoeConfig(  # type: ignore[call-arg]
        hidden_size=H,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        vocab_size=512,
        intermediate_size=512,
        moe_intermediate_size=W,
        num_experts=E,
        num_experts_per_tok=K,
        use_cache=False,
    )
    return build_model(cfg, device="meta")


@pytest.mark.parametrize(("dtype", "precision"), [("bf16", "bfloat16"), ("fp8", "float8"), ("mxfp4", "mxfp4")])
def test_expert_gemms_are_grouped_gemms(net: torch.nn.Module, dtype: str, precision: str) -> None:
    tokens = 256
    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof = trnsim.estimate(net, (ids,), target="b200", dtype=dtype)
    grouped = [r for r in prof.records if r.op.endswith("grouped_mm.default")]
    assert len(grouped) == 2 and all(r.kernel == "gpu_gemm" for r in grouped)
    rows = tokens * K // E  # assignments spread evenly over the experts
    gpu = GpuModel.from_preset("b200")
    want = {(n, k): gpu.gemm_time_s(rows, n, k, precision, E, isolated=False) for n, k in ((2 * W, H), (H, W))}
    for r in grouped:
        n, k = (2 * W, H) if r.flops and "[8, 256, 256]" in r.shapes else (H, W)
        assert r.flops == 2 * rows * E * n * k
        assert r.device_us == pytest.approx(want[(n, k)] * 1e6, rel=0.05)
