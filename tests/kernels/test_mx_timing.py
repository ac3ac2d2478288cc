"""The MX GEMM's timing on trn3 against closed forms: within ~10% of the roofline over the isa's own MX costs
(compiler/dtype_mx.mx_matmul_cost: the busiest engine, no pipeline fill) and never below it, and 3x to 4x the
bf16 library GEMM at a large compute-bound shape (the preset's mx_speedup is the rate ratio, 4)."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
from trnsim import dtypes
from trnsim.compiler.dtype_mx import MxMatmul, mx_matmul_cost
from trnsim.hw.presets import get_spec
from trnsim.kernels import matmul
from trnsim.kernels.mx_matmul import linear_mx
from trnsim.nki.kernel import TensorSpec


def mx_latency_us(m: int, k: int, n: int, w_dtype: str = "float8_e4m3fn_x4") -> float:
    raw = np.uint16 if w_dtype.startswith("float4") else np.uint32
    args = (TensorSpec((m, k), dtypes.bfloat16), TensorSpec((k // 4, n), raw), TensorSpec((k // 32, n), np.uint8))
    return nki.profile(linear_mx, target="trn3", mode="timing", cores=1)(*args, w_dtype=w_dtype).latency_us


@pytest.mark.parametrize(("m", "k", "n", "bits"), [(8192, 4096, 4096, 8), (4096, 4096, 4096, 4)])
def test_mx_gemm_is_near_its_roofline_and_never_beats_it(m: int, k: int, n: int, bits: int) -> None:
    w_dtype = "float8_e4m3fn_x4" if bits == 8 else "float4_e2m1fn_x4"
    got = mx_latency_us(m, k, n, w_dtype)
    bound = mx_matmul_cost(get_spec("trn3"), MxMatmul(m, n, k), bits).latency_us
    assert bound <= got <= bound / 0.9


def test_mx_gemm_is_three_to_four_times_the_bf16_gemm_when_compute_bound() -> None:
    m, k, n = 8192, 4096, 4096
    bf16 = nki.profile(matmul, target="trn3", mode="timing", cores=1)(
        TensorSpec((m, k), dtypes.bfloat16), TensorSpec((k, n), dtypes.bfloat16)
    )
    ratio = bf16.latency_us / mx_latency_us(m, k, n)
    assert 3.0 <= ratio <= get_spec("trn3").core.tensor.mx_speedup


def test_decode_shape_is_bound_by_the_weight_stream() -> None:
    """One token row: the kernel streams W once; no faster than its bytes over the core's DMA queues."""
    spec = get_spec("trn3")
    k = n = 4096
    weight_bytes = k * n * (1 + 1 / 32)
    floor_us = weight_bytes / (spec.core.dma.queues * spec.core.dma.queue_bytes_per_ns) / 1000
    got = mx_latency_us(1, k, n)
    assert floor_us <= got <= 1.6 * floor_us
