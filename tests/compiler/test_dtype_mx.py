"""MXFP8 / MXFP4 weight matmuls on trn3 (compiler/dtype_mx.py): the roofline's MX rate when compute-bound (closed
forms from the preset) and HBM bound when memory-bound, about 4x the simulated bf16 GEMM; whole-model estimates
run the MX kernel for every weight matmul (never below its roofline), measure MFU against the MX peak, keep the
roofline for shapes the kernel cannot take; targets without MX refused."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch
from rich.console import Console
from transformers import LlamaConfig

import trnsim
from trnsim import dtypes, kernels
from trnsim.compiler.dtype_mx import W_DTYPES, MxMatmul, mx_matmul_cost, weight_matmul
from trnsim.compiler.kernel_runner import run_kernel
from trnsim.errors import CompileError
from trnsim.gpu.errors import GpuError
from trnsim.hw.presets import get_spec
from trnsim.hw.spec import HardwareSpec
from trnsim.isa.cost import dma_efficiency
from trnsim.kernels.mx_matmul import linear_mx
from trnsim.models import build_model
from trnsim.nki.kernel import TensorSpec
from trnsim.runtime.graph_profile import OpRecord


def bf16_peak_flops_per_ns(spec: HardwareSpec) -> float:
    """One core's bf16 TensorE peak: a 128 x 128 array, a multiply-add per PE per cycle."""
    return 128 * 128 * 2 * spec.core.tensor.clock_ghz


def test_compute_bound_mx_matmul_runs_at_the_preset_mx_rate(rng: np.random.Generator) -> None:
    spec = get_spec("trn3")
    m, n, k = (512 * int(rng.integers(4, 9)) for _ in range(3))
    cost = mx_matmul_cost(spec, MxMatmul(m, n, k), 8)
    mx_ns = 2 * m * n * k / (spec.core.tensor.mx_speedup * bf16_peak_flops_per_ns(spec))
    # plus x's TensorE transposes onto the partitions: one 128-cycle [128, 128] transpose per tile
    transpose_ns = (m / 128) * (k / 128) * 128 / spec.core.tensor.clock_ghz
    want_us = (mx_ns + transpose_ns + spec.core.dma.fixed_latency_ns) / 1000
    assert cost.latency_us == pytest.approx(want_us, rel=1e-9)
    assert cost.engine_busy_us["tensor"] == max(cost.engine_busy_us.values())
    assert cost.flops == 2 * m * n * k


@pytest.mark.parametrize("bits", [8, 4])
def test_memory_bound_mx_matmul_streams_its_weights(bits: int) -> None:
    """A decode-sized matmul is bound by the bytes: MX elements plus a scale byte per 32, x and y in bf16."""
    spec = get_spec("trn3")
    m, n, k = 4, 8192, 4096
    cost = mx_matmul_cost(spec, MxMatmul(m, n, k), bits)
    dma = spec.core.dma
    rate = min(dma.queues * dma.queue_bytes_per_ns, spec.chip.hbm_bytes_per_ns)  # bytes/ns of one core's queues
    weights = n * k * (bits / 8 + 1 / 32)
    acts = 2 * (m * k + m * n)
    # each stream holds its queues at least the per-transfer overhead (the tiny x and y here)
    want_ns = max(weights / (rate * dma_efficiency(dma, 2048)), dma.transfer_overhead_ns) + max(
        acts / (rate * dma_efficiency(dma, 4096)), dma.transfer_overhead_ns
    )
    assert cost.engine_busy_us["dma"] == pytest.approx(want_ns / 1000, rel=1e-6)
    assert cost.latency_us == pytest.approx(want_ns / 1000 + dma.fixed_latency_ns / 1000, rel=1e-6)
    assert cost.hbm_bytes == math.ceil(weights + acts)


def test_mx_is_about_four_times_the_simulated_bf16_gemm() -> None:
    """On a compute-bound shape the MX kernel is ~4x the library's bf16 linear (which runs at ~70-90% of its
    peak on trn3, so the ratio lands a little above 4)."""
    spec = get_spec("trn3")
    m, n, k = 2048, 2048, 4096
    bf16 = TensorSpec((m, k), dtypes.bfloat16), TensorSpec((n, k), dtypes.bfloat16)
    _, simulated = run_kernel(kernels.linear, bf16, {}, spec, functional=False)
    ratio = simulated.latency_us / mx_matmul_cost(spec, MxMatmul(m, n, k), 8).latency_us
    assert 3.5 < ratio < 5.0


def test_the_matmul_of_a_kernel_record_is_read_from_its_shapes() -> None:
    linear = OpRecord("n", "op", "kernel", "linear", shapes="[2, 16, 64]:bfloat16, [96, 64]:bfloat16, [96]:bfloat16")
    assert weight_matmul(linear) == MxMatmul(32, 96, 64, residual=False)
    fused = OpRecord("n", "op", "kernel", "linear", shapes="[16, 64]:bfloat16, [96, 64]:bfloat16, [16, 96]:bfloat16")
    assert weight_matmul(fused).residual
    matmul = OpRecord("n", "op", "kernel", "matmul", shapes="[16, 64]:bfloat16, [64, 96]:bfloat16")
    assert weight_matmul(matmul) == MxMatmul(16, 96, 64)
    with pytest.raises(CompileError, match="operand shapes"):
        weight_matmul(OpRecord("n", "op", "kernel", "linear", shapes="[16, 64]:bfloat16"))


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    config = LlamaConfig(
        hidden_size=512,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=64,
        intermediate_size=1024,
        vocab_size=1024,
        num_hidden_layers=1,
        tie_word_embeddings=False,
    )
    return build_model(config, device="meta")


def _estimate(net: torch.nn.Module, target: str, dtype: str, tokens: int = 256) -> trnsim.GraphProfile:
    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trnsim.estimate(net, (ids,), target=target, dtype=dtype)


def _linear_weights(net: torch.nn.Module) -> int:
    return sum(m.weight.numel() for m in net.modules() if isinstance(m, torch.nn.Linear))


WEIGHT_KERNELS = ("linear", "matmul")


def _mx_kernel_cost_us(record: OpRecord, bits: int) -> float:
    """The MX kernel run directly on a plain linear record's shapes, one physical core: x [.., K] and the weight
    as the lowering passed it, [N, K] or K-major [K, N] (a constant weight stored for the matmul kernel)."""
    x, w = (tuple(int(d) for d in dims.split(",")) for dims, _ in re.findall(r"\[([\d, ]*)\]:(\w+)", record.shapes))
    k = x[-1]
    n = w[1] if w[0] == k else w[0]
    raw = np.uint32 if bits == 8 else np.uint16
    args = (TensorSpec(x, dtypes.bfloat16), TensorSpec((k // 4, n), raw), TensorSpec((k // 32, n), np.uint8))
    _, cost = run_kernel(linear_mx, args, {"w_dtype": W_DTYPES[bits]}, get_spec("trn3"), functional=False)
    return cost.latency_us


@pytest.mark.parametrize(("dtype", "bits"), [("mxfp8", 8), ("mxfp4", 4)])
def test_a_trn3_estimate_runs_its_weight_matmuls_as_the_mx_kernel(net: torch.nn.Module, dtype: str, bits: int) -> None:
    bf16, mx = _estimate(net, "trn3", "bf16"), _estimate(net, "trn3", dtype)
    spec = get_spec("trn3")
    lnc = spec.chip.default_lnc
    before = {r.node: r for r in bf16.records if r.kernel in WEIGHT_KERNELS}
    after = {r.node: r for r in mx.records if r.kernel == "linear_mx"}
    assert before and set(after) == set(before)  # every weight matmul, no bf16 one and no formula left
    assert not [r for r in mx.records if r.kernel in WEIGHT_KERNELS or r.kernel.endswith("_formula")]
    for node, r in after.items():
        mm = weight_matmul(before[node])
        assert r.flops == 2 * mm.m * mm.n * mm.k
        bound = mx_matmul_cost(spec, mm, bits).latency_us / lnc  # the roofline is a lower bound of the kernel
        assert bound <= r.device_us < before[node].device_us
        if r.op == "aten.linear.default":  # no fused epilogue: the kernel's own cost on these shapes
            assert r.device_us == pytest.approx(_mx_kernel_cost_us(r, bits) / lnc, rel=1e-12)
    others = [r.total_device_us for r in mx.records if r.node not in after]
    assert sum(others) == pytest.approx(sum(r.total_device_us for r in bf16.records if r.node not in before))
    saved = _linear_weights(net) * (2 - (bits / 8 + 1 / 32))
    assert bf16.weight_bytes - mx.weight_bytes == pytest.approx(saved, abs=2)


def test_mx_mfu_is_measured_against_the_mx_peak(net: torch.nn.Module) -> None:
    spec = get_spec("trn3")
    mx = _estimate(net, "trn3", "mxfp8")
    peak_flops_per_ns = spec.core.tensor.mx_speedup * bf16_peak_flops_per_ns(spec) * spec.chip.default_lnc
    assert mx.mfu == pytest.approx(mx.flops / (mx.device_time_us * 1000) / peak_flops_per_ns, rel=1e-9)
    assert mx.to_dict()["mfu_peak"]["dtype"] == "MXFP8"
    table = Console(width=200, record=True)
    table.print(mx.summary())
    assert "of MXFP8 peak" in table.export_text()
    bf16 = _estimate(net, "trn3", "bf16")
    assert bf16.mfu == pytest.approx(bf16.flops / (bf16.device_time_us * 1000) / (peak_flops_per_ns / 4), rel=1e-9)


def test_shapes_the_mx_kernel_cannot_take_are_priced_by_the_roofline() -> None:
    """K = 192 (not whole 128-value quadrants) keeps the roofline; the down projection (K = 256) runs the kernel."""
    config = LlamaConfig(
        hidden_size=192,
        num_attention_heads=3,
        num_key_value_heads=3,
        head_dim=64,
        intermediate_size=256,
        vocab_size=512,
        num_hidden_layers=1,
    )
    mx = _estimate(build_model(config, device="meta"), "trn3", "mxfp8", tokens=128)
    spec = get_spec("trn3")
    formula = [r for r in mx.records if r.kernel.endswith("_mx8_formula")]
    assert formula and [r for r in mx.records if r.kernel == "linear_mx"]
    for r in formula:
        want = mx_matmul_cost(spec, weight_matmul(r), 8).latency_us / spec.chip.default_lnc
        assert r.device_us == pytest.approx(want, rel=1e-12)


def test_mx_on_gpus_needs_block_scaled_tensor_cores(net: torch.nn.Module) -> None:
    b200_fp8, b200_mx = _estimate(net, "b200", "fp8"), _estimate(net, "b200", "mxfp8")
    # MXFP8 at the FP8 peak, its bytes one scale byte per 32 elements heavier
    assert b200_mx.device_time_us >= b200_fp8.device_time_us
    assert b200_mx.device_time_us == pytest.approx(b200_fp8.device_time_us, rel=0.1)
    with pytest.raises(GpuError, match="no mxfp8 tensor cores"):
        _estimate(net, "h100", "mxfp8")


@pytest.mark.parametrize("target", ["trn2", "trn1", "inf2"])
def test_targets_without_mx_refuse_before_simulating(net: torch.nn.Module, target: str) -> None:
    with pytest.raises(CompileError, match="has no MX matmul") as err:
        _estimate(net, target, "mxfp8")
    assert "\n" not in str(err.value)
