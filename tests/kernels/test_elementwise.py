"""trnsim.kernels unary / binary / fused_chain against numpy and torch: ragged and rank-3 shapes, numpy
broadcasting, fp32 / bf16 / fp8 inputs, error cases, and the memory-bound target in timing mode."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch

import trnsim.nki as nki
from trnsim.errors import DtypeError, ShapeMismatchError, UsageError
from trnsim.kernels.elementwise import binary, fused_chain, unary
from trnsim.nki import TensorSpec

BF16 = ml_dtypes.bfloat16
FP8 = ml_dtypes.float8_e4m3
RTOL = {np.dtype(np.float32): 2e-6, np.dtype(BF16): 1.6e-2}


def f32(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.float32)


def assert_close(out: np.ndarray, ref: np.ndarray, dtype: Any, scale: float = 1.0) -> None:
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert out.dtype == np.dtype(dtype), (out.dtype, dtype)
    rtol = RTOL[np.dtype(dtype)] * scale
    np.testing.assert_allclose(f32(out), f32(ref), rtol=rtol, atol=rtol * max(1.0, float(np.abs(f32(ref)).max())))


def torch_unary(op: str, x: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(f32(x))
    fn = {
        "gelu": torch.nn.functional.gelu,
        "silu": torch.nn.functional.silu,
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "rsqrt": torch.rsqrt,
        "negative": torch.neg,
    }.get(op) or getattr(torch, op)
    return fn(t).numpy()


UNARY_OPS = ["exp", "gelu", "silu", "relu", "tanh", "sigmoid", "rsqrt", "square", "abs", "negative", "sqrt", "log"]


@pytest.mark.parametrize("op", UNARY_OPS)
def test_unary_fp32_ragged(rng: np.random.Generator, op: str) -> None:
    x = rng.standard_normal((300, 70)).astype(np.float32)
    if op in ("rsqrt", "sqrt", "log"):
        x = np.abs(x) + 0.1
    assert_close(nki.simulate(unary)(x, op), torch_unary(op, x), np.float32, scale=5)


@pytest.mark.parametrize("shape", [(2, 129, 77), (5000,), (3, 1, 1), (1030, 1)])
@pytest.mark.parametrize("dtype", [np.float32, BF16])
def test_unary_shapes_dtypes(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> None:
    x = rng.uniform(-2, 2, size=shape).astype(dtype)
    assert_close(nki.simulate(unary)(x, "silu"), torch_unary("silu", x), dtype)


def test_flat_layout_ragged_end(rng: np.random.Generator) -> None:
    """More than 128 rows of 4096 elements plus a ragged end: the end is a [128, q] block and a [r, 1] block."""
    x = rng.standard_normal((3, 700, 251)).astype(np.float32)  # 527100 = 128 * 4096 + 128 * 20 + 60
    y = rng.standard_normal((3, 700, 251)).astype(np.float32)
    assert_close(nki.simulate(binary)(x, y, "subtract"), x - y, np.float32)


def test_unary_fp8_in_bf16_out(rng: np.random.Generator) -> None:
    x = rng.uniform(-2, 2, size=(130, 200)).astype(FP8)
    out = nki.simulate(unary)(x, "gelu", "bfloat16")
    assert_close(out, torch_unary("gelu", x), BF16)


BROADCASTS = [
    ((64, 96), (64, 96)),  # same shape
    ((3, 50, 70), (70,)),  # row vector (bias)
    ((300, 40), (300, 1)),  # one value per row
    ((3, 50, 70), (50, 1)),  # per-row values repeating over the batch
    ((3, 50, 70), (3, 1, 70)),  # broadcast over the middle dim
    ((3, 50, 70), (50, 70)),  # repeats over the batch
    ((50, 1), (1, 70)),  # both broadcast: outer product shape
    ((200, 33), (1,)),  # a one-element tensor
    ((7,), (5, 7)),  # x is the broadcast one
]


@pytest.mark.parametrize("xs, ys", BROADCASTS)
@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "maximum"])
def test_binary_broadcasting(rng: np.random.Generator, xs: tuple[int, ...], ys: tuple[int, ...], op: str) -> None:
    x = rng.standard_normal(xs).astype(np.float32)
    y = rng.standard_normal(ys).astype(np.float32)
    ref = getattr(np, op)(x, y)
    assert_close(nki.simulate(binary)(x, y, op), ref, np.float32)


@pytest.mark.parametrize("op", ["divide", "power", "minimum", "greater"])
def test_binary_ops(rng: np.random.Generator, op: str) -> None:
    x = rng.uniform(0.5, 2, size=(200, 70)).astype(np.float32)
    y = rng.uniform(0.5, 2, size=(70,)).astype(np.float32)
    ref = getattr(np, op)(x, y).astype(np.float32)
    assert_close(nki.simulate(binary)(x, y, op), ref, np.float32, scale=4)


@pytest.mark.parametrize("op", ["subtract", "divide", "power", "add"])
def test_binary_python_scalars(rng: np.random.Generator, op: str) -> None:
    x = rng.uniform(0.5, 2, size=(150, 30)).astype(np.float32)
    fn = getattr(np, op)
    assert_close(nki.simulate(binary)(x, 3.0, op), fn(x, np.float32(3.0)), np.float32, scale=4)
    assert_close(nki.simulate(binary)(3.0, x, op), fn(np.float32(3.0), x), np.float32, scale=4)


def test_binary_bf16_and_mixed(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 130, 64)).astype(BF16)
    y = rng.standard_normal((64,)).astype(BF16)
    assert_close(nki.simulate(binary)(x, y, "multiply"), f32(x) * f32(y), BF16)
    z = rng.standard_normal((130, 64)).astype(np.float32)
    # bf16 with fp32 gives fp32, like numpy / torch promotion
    assert_close(nki.simulate(binary)(x, z, "add"), f32(x) + z, np.float32)


def test_fused_chain(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 100, 96)).astype(np.float32)
    y = rng.standard_normal((96,)).astype(np.float32)
    col = rng.uniform(0.5, 1.5, size=(100, 1)).astype(np.float32)
    ops = [("multiply", 2.0), ("add", y), ("gelu", None), ("multiply", col), ("maximum", -0.05), ("add", 1.0)]
    ref = np.maximum(torch_unary("gelu", 2 * x + y) * col, -0.05) + 1.0
    assert_close(nki.simulate(fused_chain)(x, ops), ref, np.float32, scale=4)


def test_fused_chain_bf16_affine_and_tensor(rng: np.random.Generator) -> None:
    x = rng.standard_normal((257, 40)).astype(BF16)
    y = rng.standard_normal((257, 40)).astype(BF16)
    ops = [("subtract", 1.0), ("divide", 4.0), ("negative", None), ("silu", None), ("multiply", y), ("exp", None)]
    ref = np.exp(torch_unary("silu", -(f32(x) - 1.0) / 4.0) * f32(y))
    assert_close(nki.simulate(fused_chain)(x, ops), ref, BF16, scale=2)


def test_fused_chain_empty_is_a_cast(rng: np.random.Generator) -> None:
    x = rng.standard_normal((33, 17)).astype(np.float32)
    out = nki.simulate(fused_chain)(x, [], "bfloat16")
    assert_close(out, x.astype(BF16), BF16)


def test_torch_tensors_in_and_out() -> None:
    x = torch.randn(40, 24)
    out = nki.simulate(fused_chain)(x, [("add", torch.ones(24)), ("relu", None)])
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, torch.relu(x + 1))


def test_errors() -> None:
    x = np.ones((8, 8), np.float32)
    with pytest.raises(UsageError, match="not a unary op"):
        nki.simulate(unary)(x, "softmax")
    with pytest.raises(UsageError, match="not a binary op"):
        nki.simulate(binary)(x, x, "gelu")
    with pytest.raises(DtypeError, match="supported dtypes"):
        nki.simulate(unary)(np.ones((8, 8), np.int32), "exp")
    with pytest.raises(ShapeMismatchError, match="do not broadcast"):
        nki.simulate(binary)(x, np.ones((3,), np.float32), "add")
    with pytest.raises(ShapeMismatchError, match="must broadcast to x's shape"):
        nki.simulate(fused_chain)(x, [("add", np.ones((2, 8, 8), np.float32))])
    with pytest.raises(ShapeMismatchError, match="pair"):
        nki.simulate(fused_chain)(x, ["exp"])
    with pytest.raises(ShapeMismatchError, match="at least one of x and y"):
        nki.simulate(binary)(1.0, 2.0, "add")


@pytest.mark.parametrize("target", ["trn1", "trn2"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_memory_bound_target(target: str, dtype: str) -> None:
    """8 MiB in, 8 MiB out (plus a second 8 MiB input): >= 80% of the core's DMA roofline."""
    rows = 2048 if dtype == "float32" else 4096
    spec = TensorSpec((rows, 1024), dtype)
    core = nki.get_target_spec(target).core
    bandwidth = core.dma.queues * core.dma.queue_bytes_per_ns  # bytes per ns
    for kernel, args, moved in [
        (unary, (spec, "gelu"), 2),
        (fused_chain, (spec, [("multiply", 2.0), ("add", spec), ("gelu", None)]), 3),
    ]:
        prof = nki.profile(kernel, target=target, mode="timing", cores=1)(*args)
        roofline_us = moved * 8 * 2**20 / bandwidth / 1000
        assert roofline_us / prof.latency_us >= 0.8, (kernel.name, prof.latency_us, roofline_us)
