"""Estimates in fp8: the weight matmuls run at the preset's fp8 TensorE rate (double-row on NeuronCore-v3,
the bf16 rate on v2), their weights take one byte, and formats or targets that are not modelled are clear errors."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from transformers import LlamaConfig

import trnsim
from trnsim.errors import CompileError
from trnsim.hw.presets import get_spec
from trnsim.models import build_model

PROMPT = 1024  # enough tokens that TensorE time is the fp8 rate, not fixed per-instruction costs


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    config = LlamaConfig(
        hidden_size=2048,
        num_attention_heads=16,
        num_key_value_heads=4,
        head_dim=128,
        intermediate_size=8192,
        vocab_size=4096,
        num_hidden_layers=1,
        tie_word_embeddings=False,
    )
    return build_model(config, device="meta")


def _estimate(net: torch.nn.Module, target: str, dtype: str) -> trnsim.GraphProfile:
    ids = torch.zeros(1, PROMPT, dtype=torch.long, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trnsim.estimate(net, (ids,), target=target, dtype=dtype)


def _matmul_tensor_us(prof: trnsim.GraphProfile) -> float:
    """TensorE busy time of the weight matmuls (linear layers and the LM head)."""
    return sum(r.engine_busy_us.get("tensor", 0.0) * r.count for r in prof.records if r.kernel in ("linear", "matmul"))


def _same_kernel_pairs(bf16: trnsim.GraphProfile, fp8: trnsim.GraphProfile) -> list[tuple[str, tuple[float, float]]]:
    """(bf16, fp8) TensorE busy time of each weight matmul that both runs priced with the same kernel."""

    def by_layer(prof: trnsim.GraphProfile) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for r in prof.records:
            if r.kernel in ("linear", "matmul"):
                dims = re.sub(r":\w+", "", r.shapes)  # the shapes without their dtypes
                out[(r.kernel, dims)] = r.engine_busy_us.get("tensor", 0.0)
        return out

    a, b = by_layer(bf16), by_layer(fp8)
    return [(key[0], (a[key], b[key])) for key in a.keys() & b.keys()]


@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_fp8_matmuls_run_at_the_presets_fp8_rate(net: torch.nn.Module, target: str) -> None:
    bf16, fp8 = _estimate(net, target, "bf16"), _estimate(net, target, "fp8")
    factor = 2.0 if get_spec(target).core.tensor.fp8_double_row else 1.0  # double-row: 2x fp8 elements per cycle
    # The heaviest K-major weight matmul (the matmul kernel: no weight transposes) priced in both runs runs at the
    # fp8 rate. The whole sum is looser: TensorE also transposes activations and [out, in] weights, and those
    # identity matmuls gain nothing from double-row, so the total lies between 1 and the rate factor (and the
    # planner may pick the other kernel per dtype).
    pairs = [pair for kernel, pair in _same_kernel_pairs(bf16, fp8) if kernel == "matmul"]
    b16, f8 = max(pairs, key=lambda pair: pair[0])
    assert b16 / f8 == pytest.approx(factor, rel=0.1), (target, b16, f8)
    ratio = _matmul_tensor_us(bf16) / _matmul_tensor_us(fp8)
    assert 0.99 < ratio <= factor * 1.02, (target, ratio)
    # half the weight bytes to stream, and on trn2 twice the rate: the step is faster either way
    assert fp8.device_time_us < bf16.device_time_us
    linear_weights = sum(m.weight.numel() for m in net.modules() if isinstance(m, torch.nn.Linear))
    assert bf16.weight_bytes - fp8.weight_bytes == linear_weights  # 2 bytes -> 1 per linear weight


@pytest.mark.parametrize("target", ["h100", "b200"])
def test_fp8_gpu_gemms_are_priced_at_the_fp8_peak(net: torch.nn.Module, target: str) -> None:
    from trnsim.gpu.presets import get_gpu_spec

    bf16, fp8 = _estimate(net, target, "bf16"), _estimate(net, target, "fp8")
    compute = get_gpu_spec(target).compute
    peak_ratio = compute.dense_fp8_tflops / compute.dense_bf16_tflops

    def gemm_us(prof: trnsim.GraphProfile) -> float:
        return sum(r.total_device_us for r in prof.records if r.kernel == "gpu_gemm")

    # faster than bf16, but by no more than the ratio of the documented peaks (launches and HBM do not shrink 2x)
    assert 1.0 < gemm_us(bf16) / gemm_us(fp8) <= peak_ratio

    def gemm_bytes(prof: trnsim.GraphProfile) -> int:
        return sum(r.hbm_bytes * r.count for r in prof.records if r.kernel == "gpu_gemm")

    assert gemm_bytes(fp8) * 2 == gemm_bytes(bf16)  # every operand and result at one byte instead of two


def test_fp4_gpu_gemms_on_b200_beat_fp8_and_h100_has_none(net: torch.nn.Module) -> None:
    from trnsim.gpu.errors import GpuError

    def gemm(prof: trnsim.GraphProfile) -> tuple[float, int]:
        recs = [r for r in prof.records if r.kernel == "gpu_gemm"]
        return sum(r.total_device_us for r in recs), sum(r.hbm_bytes * r.count for r in recs)

    (t8, b8), (t4, b4) = gemm(_estimate(net, "b200", "fp8")), gemm(_estimate(net, "b200", "fp4"))
    assert t4 < t8 and b4 * 2 == pytest.approx(b8, abs=4)  # half a byte per element (rounded per GEMM)
    with pytest.raises(GpuError, match="no float4 tensor cores"):
        _estimate(net, "h100", "fp4")


@pytest.mark.parametrize(
    ("target", "dtype", "kwargs", "match"),
    [
        ("trn2", "mxfp8", {}, "has no MX matmul"),
        ("trn1", "mxfp4", {}, "has no MX matmul"),
        ("trn3", "mxfp8", {"training": True}, "inference format"),
        ("trn2", "int4", {}, "unknown estimate dtype"),
        ("trn2", "fp4", {}, "NeuronCores have no fp4 matmul"),
        ("trn2", "fp8", {"training": True}, "inference format"),
    ],
)
def test_unsupported_dtype_combinations_are_clear_errors(
    net: torch.nn.Module, target: str, dtype: str, kwargs: dict[str, bool], match: str
) -> None:
    ids = torch.zeros(1, 8, dtype=torch.long, device="meta")
    with pytest.raises(CompileError, match=match):
        trnsim.estimate(net, (ids,), target=target, dtype=dtype, **kwargs)
