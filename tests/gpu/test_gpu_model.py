"""GPU model properties on fresh random shapes, and closed-form checks on an "ideal" GPU."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trnsim.gpu import GpuError, GpuModel

DTYPES = ["bfloat16", "float16", "float8", "tfloat32", "float32"]
ELT = {"bfloat16": 2, "float16": 2, "float8": 1, "tfloat32": 4, "float32": 4}


def _shapes(rng: np.random.Generator, count: int) -> np.ndarray:
    """M, N, K, batch log-uniform over decode to large-prefill sizes (M, N, K in 1..32768)."""
    mnk = np.exp(rng.uniform(0, np.log(32768), size=(count, 3))).astype(np.int64)
    batch = rng.integers(1, 5, size=(count, 1))
    return np.hstack([np.maximum(mnk, 1), batch])


@pytest.mark.parametrize("name", ["h100", "h200", "b200"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_properties_on_random_shapes(rng: np.random.Generator, name: str, dtype: str) -> None:
    gpu = GpuModel.from_preset(name)
    s = _shapes(rng, 400)
    m, n, k, b = s.T
    t = gpu.gemm_times_s(m, n, k, dtype, b)
    # Never under the launch cost, never over the compute or bandwidth roofline.
    assert np.all(t >= gpu.curves.memory.floor_s)
    assert np.all(gpu.gemm_times_s(m, n, k, dtype, b, isolated=False) >= gpu.curves.memory.launch_s)
    flops = 2.0 * b * m * n * k
    nbytes = b * (m * k + k * n + m * n) * ELT[dtype]
    assert np.all(flops / t <= gpu.peak_flops(dtype))
    assert np.all(nbytes / t <= gpu.hbm_bytes_per_s)
    # A bigger GEMM (one of M, N, K, batch grown) is never faster.
    for axis in range(4):
        grown = s.copy()
        grown[:, axis] += rng.integers(1, 1 + np.maximum(grown[:, axis], 2))
        tg = gpu.gemm_times_s(grown[:, 0], grown[:, 1], grown[:, 2], dtype, grown[:, 3])
        assert np.all(tg >= t * (1 - 1e-12)), f"axis {axis}: {s[np.argmin(tg - t)]} -> {grown[np.argmin(tg - t)]}"


def test_scalar_and_vector_gemm_agree(rng: np.random.Generator, h100: GpuModel) -> None:
    for m, n, k, b in _shapes(rng, 20):
        assert h100.gemm_time_s(int(m), int(n), int(k), "bfloat16", int(b)) == pytest.approx(
            float(h100.gemm_times_s(m, n, k, "bfloat16", b)[()]), rel=1e-12
        )


def test_memory_time_properties(rng: np.random.Generator) -> None:
    for name in ("h100", "h200", "b200"):
        gpu = GpuModel.from_preset(name)
        sizes = np.sort(np.exp(rng.uniform(0, np.log(2.0**36), 300)))
        t = gpu.memory_times_s(sizes)
        assert np.all(np.diff(t) >= 0)
        assert np.all(t >= gpu.curves.memory.floor_s)
        assert np.all(sizes / t <= gpu.hbm_bytes_per_s)
    # More bandwidth, same curve: H200 moves big buffers faster than H100 by its bandwidth ratio.
    h100, h200 = GpuModel.from_preset("h100"), GpuModel.from_preset("h200")
    big = 2.0**34
    launch = h100.curves.memory.launch_s
    assert (h100.memory_time_s(big) - launch) / (h200.memory_time_s(big) - launch) == pytest.approx(4.8 / 3.35)


def test_gemm_on_an_ideal_gpu_is_the_roofline(rng: np.random.Generator, make_ideal_gpu) -> None:
    """Efficiency 1, one SM, 1x1 tiles, no overhead: time = max(FLOPs / peak, bytes / bandwidth)."""
    gpu = make_ideal_gpu()
    for m, n, k, b in _shapes(rng, 30):
        m, n, k, b = int(m), int(n), int(k), int(b)
        for dtype in ("bfloat16", "float32"):
            expect = max(2 * b * m * n * k / gpu.peak_flops(dtype), b * (m * k + k * n + m * n) * ELT[dtype] / 3.35e12)
            assert gpu.gemm_time_s(m, n, k, dtype, b) == pytest.approx(expect, rel=2e-3)


def test_wave_quantisation_and_split_k_by_brute_force(rng: np.random.Generator, make_ideal_gpu) -> None:
    """4 SMs, 64x64 tiles, split-K up to 4: the model picks the fastest split the SMs allow."""
    sms, tile, max_split = 4, 64, 4
    gpu = make_ideal_gpu(sm_count=sms, tile=(tile, tile), max_split_k=max_split)
    peak, bw = gpu.peak_flops("bfloat16"), 3.35e12
    for _ in range(40):
        # m, n >= 2: a matrix-vector product (m or n == 1) may take the CUDA-core GEMV path instead.
        m, n = (int(x) for x in rng.integers(2, 400, size=2))
        k = int(rng.integers(64, 100_000))
        tiles = math.ceil(m / tile) * math.ceil(n / tile)
        best = math.inf
        for s in range(1, max_split + 1):
            if s > 1 and tiles * s > sms:
                continue
            waves = math.ceil(tiles * s / sms)
            t = waves * 2 * tile * tile * math.ceil(k / s) / (peak / sms)
            if s > 1:
                t += m * n * 4 * 2 * s / bw
            best = min(best, t)
        memory = (m * k + k * n + m * n) * 2 / bw
        assert gpu.gemm_time_s(m, n, k) == pytest.approx(max(best, memory), rel=2e-3)


def test_attention_on_an_ideal_gpu(make_ideal_gpu) -> None:
    gpu = make_ideal_gpu()
    peak, bw = gpu.peak_flops("bfloat16"), 3.35e12
    # Prefill, causal, 128-row tiles fit exactly: FLOPs = 4 * b * h * d * S(S+1)/2.
    b, h, kv, s, d = 2, 32, 8, 4096, 128
    flops = 4 * b * h * d * s * (s + 1) / 2
    nbytes = 2 * d * (2 * b * h * s + 2 * b * kv * s)
    assert gpu.attention_time_s(b, h, kv, s, s, d) == pytest.approx(max(flops / peak, nbytes / bw), rel=2e-3)
    # Decode: one query row per head (4 per KV head, padded to a 64-row tile); KV bytes dominate.
    ctx = 8192
    nbytes = 2 * d * (2 * b * h * 1 + 2 * b * kv * ctx)
    flops = 4 * b * h * d * ctx * 64 / 4
    assert gpu.attention_time_s(b, h, kv, 1, ctx, d) == pytest.approx(max(flops / peak, nbytes / bw), rel=2e-3)
    # Non-causal (encoder) attention sees every pair.
    assert gpu.attention_time_s(1, 4, 4, 256, 256, 64, causal=False) == pytest.approx(
        max(4 * 4 * 64 * 256 * 256 * (256 / 256) / peak, 2 * 64 * (2 * 4 * 256 * 2) / bw), rel=2e-3
    )


def test_attention_grows_with_context(h100: GpuModel, rng: np.random.Generator) -> None:
    for _ in range(30):
        q = int(rng.integers(1, 512))
        kv = q + int(rng.integers(0, 8192))
        t = h100.attention_time_s(4, 32, 8, q, kv, 128)
        assert h100.attention_time_s(4, 32, 8, q, kv + int(rng.integers(1, 4096)), 128) >= t
        assert h100.attention_time_s(4, 32, 8, q, kv, 128, isolated=False) >= h100.curves.memory.launch_s


def test_allreduce_is_the_ring_formula(h100: GpuModel, rng: np.random.Generator) -> None:
    ic = h100.spec.interconnect
    for _ in range(20):
        nbytes = float(rng.uniform(1, 2**30))
        n = int(rng.integers(2, 9))
        expect = ic.allreduce_latency_s + 2 * (n - 1) / n * nbytes / (450e9 * ic.allreduce_bus_efficiency)
        assert h100.allreduce_time_s(nbytes, n) == pytest.approx(expect, rel=1e-12)
    assert h100.allreduce_time_s(1e9, 1) == 0.0
    b200 = GpuModel.from_preset("b200")
    assert b200.allreduce_time_s(2**30, 8) < h100.allreduce_time_s(2**30, 8)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda g: g.gemm_time_s(0, 4, 4), "m must be a positive integer"),
        (lambda g: g.gemm_time_s(4, 4, 4, "int4"), "no dtype 'int4'; use one of"),
        (lambda g: g.gemm_time_s(4, 4, 4, batch=2.5), "batch must be a positive integer"),
        (lambda g: g.memory_time_s(-1), "bytes_moved must be >= 0"),
        (lambda g: g.attention_time_s(1, 6, 4, 1, 10, 64), "multiple of kv_heads"),
        (lambda g: g.attention_time_s(1, 4, 4, 20, 10, 64), "q_len <= kv_len"),
        (lambda g: g.allreduce_time_s(1e6, 16), "spans one p5.48xlarge \\(8 GPUs\\)"),
        (lambda g: g.allreduce_time_s(-1, 2), "bytes must be >= 0"),
    ],
)
def test_bad_arguments_raise_gpu_errors(h100: GpuModel, call, words: str) -> None:
    with pytest.raises(GpuError, match=words):
        call(h100)


def test_dtype_peaks(h100: GpuModel) -> None:
    """fp32 (TF32 off, as the data) uses the CUDA-core peak; torch dtype objects are accepted."""
    import torch

    assert h100.peak_flops("float32") == pytest.approx(66.9e12)
    assert h100.peak_flops(torch.bfloat16) == pytest.approx(989.4e12)
    assert h100.peak_flops("fp8") == pytest.approx(1978.9e12)
    assert h100.gemm_time_s(4096, 4096, 4096, "float32") > 10 * h100.gemm_time_s(4096, 4096, 4096, "bfloat16")
