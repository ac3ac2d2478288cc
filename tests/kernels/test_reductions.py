"""trnsim.kernels reduce_last / softmax / layernorm / rmsnorm against numpy and torch: ragged rows, rank-3,
rows split into column chunks, rows too long for SBUF (two passes), fp32 / bf16, errors, and the
memory-bound targets in timing mode."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trnsim.nki as nki
from trnsim.errors import DtypeError, ShapeMismatchError, UsageError
from trnsim.kernels.reductions import layernorm, reduce_last, rmsnorm, softmax
from trnsim.nki import TensorSpec

BF16 = ml_dtypes.bfloat16
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(BF16): 2e-2}
# (shape, target): ragged rows and several rows per partition, rank 3 and 1, rows cut into column chunks,
# and on trn1 rows longer than SBUF holds (40000 fp32 = 156 KiB per partition)
SHAPES = [((300, 70), "trn2"), ((2, 129, 1000), "trn2"), ((700,), "trn2"), ((130, 5000), "trn2"), ((3, 40000), "trn1")]


def f32(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.float32)


def assert_close(out: np.ndarray, ref: np.ndarray, dtype: Any, scale: float = 1.0) -> None:
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert out.dtype == np.dtype(dtype), (out.dtype, dtype)
    rtol = RTOL[np.dtype(dtype)] * scale
    np.testing.assert_allclose(f32(out), f32(ref), rtol=rtol, atol=rtol * max(1.0, float(np.abs(f32(ref)).max())))


def data(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, scale: float = 3.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale + 0.5).astype(np.float32).astype(dtype)


@pytest.mark.parametrize("shape, target", SHAPES)
@pytest.mark.parametrize("op", ["add", "max", "min", "mean"])
def test_reduce_last(rng: np.random.Generator, shape: tuple[int, ...], target: str, op: str) -> None:
    x = data(rng, shape, np.float32)
    ref = {"add": np.sum, "max": np.max, "min": np.min, "mean": np.mean}[op](x.astype(np.float64), axis=-1)
    out = nki.simulate(reduce_last, target=target)(x, op)
    assert_close(out, np.asarray(ref, np.float32).reshape(shape[:-1] or (1,)), np.float32, scale=5)


@pytest.mark.parametrize("op", ["add", "max"])
def test_reduce_last_bf16(rng: np.random.Generator, op: str) -> None:
    x = data(rng, (2, 130, 3000), BF16)
    ref = (np.sum if op == "add" else np.max)(f32(x), axis=-1)
    assert_close(nki.simulate(reduce_last)(x, op), ref, BF16)


@pytest.mark.parametrize("shape, target", SHAPES)
def test_softmax(rng: np.random.Generator, shape: tuple[int, ...], target: str) -> None:
    x = data(rng, shape, np.float32)
    ref = torch.softmax(torch.from_numpy(x), dim=-1).numpy()
    assert_close(nki.simulate(softmax, target=target)(x), ref, np.float32, scale=2)


def test_softmax_bf16_and_large_values(rng: np.random.Generator) -> None:
    x = data(rng, (3, 100, 2500), BF16, scale=30.0)  # exp would overflow without subtracting the max
    ref = torch.softmax(torch.from_numpy(f32(x)), dim=-1).numpy()
    assert_close(nki.simulate(softmax)(x), ref, BF16)


@pytest.mark.parametrize("shape, target", SHAPES)
def test_rmsnorm(rng: np.random.Generator, shape: tuple[int, ...], target: str) -> None:
    x = data(rng, shape, np.float32)
    g = data(rng, shape[-1:], np.float32, scale=1.0)
    ref = F.rms_norm(torch.from_numpy(x), shape[-1:], torch.from_numpy(g), eps=1e-6).numpy()
    assert_close(nki.simulate(rmsnorm, target=target)(x, g), ref, np.float32, scale=2)


@pytest.mark.parametrize("shape, target", SHAPES)
def test_layernorm(rng: np.random.Generator, shape: tuple[int, ...], target: str) -> None:
    x = data(rng, shape, np.float32)
    g = data(rng, shape[-1:], np.float32, scale=1.0)
    b = data(rng, shape[-1:], np.float32, scale=1.0)
    ref = F.layer_norm(torch.from_numpy(x), shape[-1:], torch.from_numpy(g), torch.from_numpy(b), eps=1e-5).numpy()
    assert_close(nki.simulate(layernorm, target=target)(x, g, b), ref, np.float32, scale=5)


def test_norms_bf16_and_without_affine(rng: np.random.Generator) -> None:
    x = data(rng, (2, 150, 1024), BF16)
    g = data(rng, (1024,), BF16, scale=1.0)
    b = data(rng, (1024,), BF16, scale=1.0)
    xt, gt, bt = (torch.from_numpy(f32(a)) for a in (x, g, b))
    assert_close(nki.simulate(rmsnorm)(x, g, 1e-5), F.rms_norm(xt, (1024,), gt, eps=1e-5).numpy(), BF16)
    assert_close(nki.simulate(layernorm)(x, g, b), F.layer_norm(xt, (1024,), gt, bt).numpy(), BF16)
    assert_close(nki.simulate(rmsnorm)(x, None), F.rms_norm(xt, (1024,), eps=1e-6).numpy(), BF16)
    assert_close(nki.simulate(layernorm)(x, None, None), F.layer_norm(xt, (1024,)).numpy(), BF16)


def test_errors() -> None:
    x = np.ones((8, 16), np.float32)
    with pytest.raises(UsageError, match="not supported"):
        nki.simulate(reduce_last)(x, "prod")
    with pytest.raises(DtypeError, match="supported dtypes"):
        nki.simulate(softmax)(x.astype(ml_dtypes.float8_e4m3))
    with pytest.raises(ShapeMismatchError, match=r"gamma must have shape \[16\]"):
        nki.simulate(rmsnorm)(x, np.ones((8,), np.float32))
    with pytest.raises(ShapeMismatchError, match=r"beta must have shape \[16\]"):
        nki.simulate(layernorm)(x, np.ones((16,), np.float32), np.ones((2, 16), np.float32))


@pytest.mark.parametrize("target", ["trn1", "trn2"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_memory_bound_targets(target: str, dtype: str) -> None:
    """softmax and rmsnorm over 8 MiB: >= 80% of the core's DMA roofline (8 MiB in, 8 MiB out)."""
    rows = 2048 if dtype == "float32" else 4096
    core = nki.get_target_spec(target).core
    roofline_us = 2 * 8 * 2**20 / (core.dma.queues * core.dma.queue_bytes_per_ns) / 1000
    x = TensorSpec((rows, 1024), dtype)
    for kernel, args in [(softmax, (x,)), (rmsnorm, (x, TensorSpec((1024,), dtype)))]:
        prof = nki.profile(kernel, target=target, mode="timing", cores=1)(*args)
        assert roofline_us / prof.latency_us >= 0.8, (kernel.name, prof.latency_us, roofline_us)
