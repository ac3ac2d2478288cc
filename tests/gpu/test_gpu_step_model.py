"""gpu_step_time_s against hand-written op sums on tiny configs, and sanity bounds on real models."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from trnsim.gpu import GpuError, GpuModel, gpu_step_ops, gpu_step_time_s
from trnsim.models import ModelFacts, model_facts

PEAK, BW = 989.4e12, 3.35e12  # H100 bf16 peak and HBM bandwidth: the ideal GPU keeps the preset's numbers
LAUNCH = 0.0  # no launch term, so every op's bytes and FLOPs show in the sum (kernel counts are tested apart)

TINY = ModelFacts(
    name="tiny-llama",
    model_type="llama",
    n_params=0,
    active_params=0,
    n_layers=2,
    hidden_size=64,
    n_heads=4,
    n_kv_heads=2,
    head_dim=16,
    intermediate_size=128,
    vocab_size=100,
    n_experts=1,
    experts_per_token=1,
    max_position=4096,
    is_decoder=True,
)


def gemm(m: int, n: int, k: int, groups: int = 1) -> float:
    return LAUNCH + max(2 * groups * m * n * k / PEAK, groups * (m * k + k * n + m * n) * 2 / BW)


def stream(nbytes: float) -> float:
    return LAUNCH + nbytes / BW


def attention(b: int, h: int, kv: int, q: int, ctx: int, d: int) -> float:
    pairs = q * (ctx - q) + q * (q + 1) // 2
    rows = q * (h // kv)
    tile = 64 if rows <= 64 else 128
    flops = 4 * b * h * d * pairs * (math.ceil(rows / tile) * tile / rows)
    nbytes = 2 * d * (2 * b * h * q + 2 * b * kv * ctx)
    return LAUNCH + max(flops / PEAK, nbytes / BW)


def test_tiny_llama_step_is_the_sum_of_its_ops(make_ideal_gpu) -> None:
    gpu = make_ideal_gpu(launch_s=LAUNCH)
    b, new, ctx = 3, 5, 7
    t, h, layers = b * new, 64, 2
    expect = (
        stream(2 * t * h * 2)  # embedding gather
        + 2 * layers * stream(2 * t * h * 2)  # two norms per layer
        + layers * gemm(t, 4 * 16, h)  # q
        + 2 * layers * gemm(t, 2 * 16, h)  # k, v
        + layers * stream(2 * t * (4 + 2) * 16 * 2)  # rope on q and k
        + layers * attention(b, 4, 2, new, ctx + new, 16)
        + layers * gemm(t, h, 4 * 16)  # o
        + 2 * layers * stream(3 * t * h * 2)  # residual adds
        + 2 * layers * gemm(t, 128, h)  # gate, up
        + layers * stream(3 * t * 128 * 2)  # act(gate) * up
        + layers * gemm(t, h, 128)  # down
        + stream(2 * t * h * 2)  # final norm
        + gemm(b, 100, h)  # LM head on the last token of each sequence
    )
    assert gpu_step_time_s(TINY, gpu, 1, b, new, ctx) == pytest.approx(expect, rel=3e-3)
    # Scoring every position (a plain forward) only changes the LM head.
    all_logits = expect - gemm(b, 100, h) + gemm(t, 100, h)
    assert gpu_step_time_s(TINY, gpu, 1, b, new, ctx, logits="all") == pytest.approx(all_logits, rel=3e-3)


def test_tensor_parallel_step_splits_work_and_adds_all_reduces(make_ideal_gpu) -> None:
    gpu = make_ideal_gpu(launch_s=LAUNCH)
    b, new, ctx, n = 2, 4, 0, 2
    t, h, layers = b * new, 64, 2
    ic = gpu.spec.interconnect
    allreduce = ic.allreduce_latency_s + 2 * (n - 1) / n * t * h * 2 / (450e9 * ic.allreduce_bus_efficiency)
    expect = (
        stream(2 * t * h * 2)
        + 2 * layers * stream(2 * t * h * 2)
        + layers * gemm(t, 2 * 16, h)  # q: 2 of 4 heads
        + 2 * layers * gemm(t, 1 * 16, h)  # k, v: 1 of 2 KV heads
        + layers * stream(2 * t * (2 + 1) * 16 * 2)
        + layers * attention(b, 2, 1, new, ctx + new, 16)
        + layers * gemm(t, h, 2 * 16)
        + 2 * layers * stream(3 * t * h * 2)
        + 2 * layers * allreduce
        + 2 * layers * gemm(t, 64, h)  # gate, up: half of 128
        + layers * stream(3 * t * 64 * 2)
        + layers * gemm(t, h, 64)
        + stream(2 * t * h * 2)
        + gemm(b, 50, h)  # half the vocabulary per GPU
    )
    assert gpu_step_time_s(TINY, gpu, n, b, new, ctx) == pytest.approx(expect, rel=3e-3)


def test_mixture_of_experts_step(make_ideal_gpu) -> None:
    gpu = make_ideal_gpu(launch_s=LAUNCH)
    moe = replace(TINY, model_type="mixtral", n_experts=4, experts_per_token=2)
    b, new, ctx = 3, 5, 7
    t, h, layers = b * new, 64, 2
    per_expert = math.ceil(t * 2 / 4)  # 30 assignments over 4 experts
    mlp = (
        gemm(t, 4, h)  # router
        + 2 * gemm(per_expert, 128, h, groups=4)  # gate, up as grouped GEMMs
        + stream(3 * t * 2 * 128 * 2)
        + gemm(per_expert, h, 128, groups=4)
        + stream(3 * t * h * 2)  # weighted sum of 2 expert outputs
    )
    dense_mlp = 2 * gemm(t, 128, h) + stream(3 * t * 128 * 2) + gemm(t, h, 128)
    dense = gpu_step_time_s(TINY, gpu, 1, b, new, ctx)
    assert gpu_step_time_s(moe, gpu, 1, b, new, ctx) == pytest.approx(dense + layers * (mlp - dense_mlp), rel=3e-3)


def test_kernel_count_and_overhead_override(h100: GpuModel) -> None:
    """The fitted h100: 3 + 14 per layer kernels for a gated decoder, each paying launch_s unless overridden."""
    ops = gpu_step_ops(TINY, h100, 1, 2, 3, 10)
    assert sum(op.count for op in ops) == 3 + 14 * TINY.n_layers
    default = gpu_step_time_s(TINY, h100, 1, 2, 3, 10)
    none = gpu_step_time_s(TINY, h100, 1, 2, 3, 10, kernel_overhead_s=0.0)
    assert default - none == pytest.approx((3 + 14 * TINY.n_layers) * h100.curves.memory.launch_s, rel=1e-9)


def test_real_models_respect_the_rooflines() -> None:
    facts = model_facts("llama-3.1-8b")
    h100, h200, b200 = (GpuModel.from_preset(n) for n in ("h100", "h200", "b200"))
    decode = gpu_step_time_s(facts, h100, 1, 1, 1, 1024)
    assert decode > facts.weight_bytes(2) / h100.hbm_bytes_per_s
    prefill = gpu_step_time_s(facts, h100, 1, 1, 2048, 0)
    assert prefill > 2 * facts.n_params * 2048 / h100.peak_flops("bfloat16")
    # Same curves, more bandwidth and compute: each newer part is faster on both step kinds.
    assert gpu_step_time_s(facts, b200, 1, 1, 1, 1024) < gpu_step_time_s(facts, h200, 1, 1, 1, 1024) < decode
    assert gpu_step_time_s(facts, b200, 1, 1, 2048, 0) < prefill
    # Tensor parallelism shortens a big model's decode step.
    big = replace(facts, n_layers=80, hidden_size=8192, n_heads=64, intermediate_size=28672)  # 70B-shaped
    assert gpu_step_time_s(big, h100, 8, 8, 1, 2048) < gpu_step_time_s(big, h100, 4, 8, 1, 2048)


def test_encoder_step_has_no_cache(h100: GpuModel) -> None:
    bert = model_facts("bert-base-uncased")
    names = {op.name for op in gpu_step_ops(bert, h100, 1, 8, 128, 0)}
    assert "rope" not in names and "mlp_fc1" in names
    with pytest.raises(GpuError, match="encoder \\(no KV cache\\): context must be 0"):
        gpu_step_time_s(bert, h100, 1, 8, 128, 16)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"n_gpus": 16}, "inside one p5.48xlarge \\(8 GPUs\\)"),
        ({"batch": 0}, "batch must be an integer >= 1"),
        ({"new_tokens": 0}, "new_tokens must be an integer >= 1"),
        ({"context": -1}, "context must be an integer >= 0"),
    ],
)
def test_bad_step_arguments(h100: GpuModel, kwargs: dict, words: str) -> None:
    args = {"n_gpus": 1, "batch": 1, "new_tokens": 1, "context": 0} | kwargs
    with pytest.raises(GpuError, match=words):
        gpu_step_time_s(TINY, h100, **args)
