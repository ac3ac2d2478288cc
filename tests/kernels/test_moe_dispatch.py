"""Token dispatch / combine kernels and the grouped expert matmul against numpy on fresh random data."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
from trnsim.errors import ShapeMismatchError
from trnsim.kernels import gather_rows, grouped_matmul, index_arith, scatter_rows
from trnsim.nki import TensorSpec


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16, np.int32])
def test_gather_rows(rng: np.random.Generator, dtype: type) -> None:
    table = (rng.standard_normal((50, 24)) * 10).astype(dtype)
    ids = rng.integers(0, 50, 77)
    ids[5:9] = [3, 4, 5, 6]  # a run of consecutive rows: one DMA
    np.testing.assert_array_equal(nki.simulate(gather_rows)(table, ids), table[ids])
    np.testing.assert_array_equal(nki.simulate(gather_rows)(table[:, 0].copy(), ids), table[ids, 0])


def test_scatter_rows_inverts_a_permutation(rng: np.random.Generator) -> None:
    perm = rng.permutation(40).astype(np.int32)
    base = rng.integers(-5, 5, 40).astype(np.int32)
    out = nki.simulate(scatter_rows)(base, perm, np.arange(40, dtype=np.int32))
    np.testing.assert_array_equal(out, np.argsort(perm))


def test_scatter_rows_keeps_rows_not_written(rng: np.random.Generator) -> None:
    base = rng.standard_normal((30, 8)).astype(np.float32)
    positions = rng.integers(0, 30, 9)
    values = rng.standard_normal((9, 8)).astype(np.float32)
    ref = base.copy()
    ref[positions] = values
    np.testing.assert_array_equal(nki.simulate(scatter_rows)(base, positions, values), ref)


@pytest.mark.parametrize("size", [256, 37])
def test_index_arith(rng: np.random.Generator, size: int) -> None:
    x = rng.integers(-1000, 100000, size).astype(np.int32)
    d = int(rng.integers(2, 9))
    np.testing.assert_array_equal(nki.simulate(index_arith)(x, "floor_divide", d), x // d)
    np.testing.assert_array_equal(nki.simulate(index_arith)(x, "trunc_divide", d), np.trunc(x / d).astype(np.int32))
    cast = nki.simulate(index_arith)(x, "cast", out_dtype=np.float32)
    assert cast.dtype == np.float32
    np.testing.assert_array_equal(cast, x.astype(np.float32))


def _grouped_ref(x: np.ndarray, w: np.ndarray, ends: np.ndarray) -> np.ndarray:
    out = np.zeros((x.shape[0], w.shape[2]), np.float32)
    start = 0
    for g, end in enumerate(ends):
        out[start:end] = x[start:end].astype(np.float32) @ w[g].astype(np.float32)
        start = end
    return out


@pytest.mark.parametrize("rows, k, n", [(150, 96, 80), (300, 160, 600)])
def test_grouped_matmul_fp32(rng: np.random.Generator, rows: int, k: int, n: int) -> None:
    groups = 5
    x = rng.standard_normal((rows, k)).astype(np.float32)
    w = rng.standard_normal((groups, k, n)).astype(np.float32)
    counts = rng.multinomial(rows, [0.4, 0.0, 0.3, 0.2, 0.1])  # an empty expert too
    ends = np.cumsum(counts).astype(np.int32)
    out = nki.simulate(grouped_matmul)(x, w, ends)
    np.testing.assert_allclose(out, _grouped_ref(x, w, ends), rtol=1e-4, atol=1e-3)


def test_grouped_matmul_bf16_and_unrouted_rows(rng: np.random.Generator) -> None:
    x = rng.standard_normal((90, 64)).astype(ml_dtypes.bfloat16)
    w = (rng.standard_normal((3, 64, 32)) * 0.2).astype(ml_dtypes.bfloat16)
    ends = np.array([30, 30, 70], np.int32)  # rows 70.. are routed nowhere: zeros
    out = nki.simulate(grouped_matmul)(x, w, ends)
    assert out.dtype == x.dtype
    ref = _grouped_ref(x, w, ends)
    np.testing.assert_allclose(out.astype(np.float32), ref, rtol=2e-2, atol=2e-2 * np.abs(ref).max())
    assert not out[70:].astype(np.float32).any()


def test_grouped_matmul_timing_reads_an_experts_weight_once() -> None:
    # 4 experts of [K, N] bf16: whatever the token split, each weight crosses HBM once
    k, n, rows = 512, 1024, 512
    x, w = TensorSpec((rows, k), ml_dtypes.bfloat16), TensorSpec((4, k, n), ml_dtypes.bfloat16)
    prof = nki.profile(grouped_matmul, mode="timing")(x, w, [128, 256, 384, 512])
    weight_bytes = 4 * k * n * 2
    assert prof.flops == 2 * rows * k * n
    assert weight_bytes <= prof.hbm_bytes < weight_bytes + 4 * rows * (k + n) * 2


def test_dispatch_errors_name_the_problem() -> None:
    table = np.zeros((5, 3), np.float32)
    with pytest.raises(ShapeMismatchError, match=r"ids must be in 0\.\.4"):
        nki.simulate(gather_rows)(table, np.array([1, 5]))
    x, w = np.zeros((6, 4), np.float32), np.zeros((2, 4, 3), np.float32)
    with pytest.raises(ShapeMismatchError, match="non-decreasing"):
        nki.simulate(grouped_matmul)(x, w, np.array([4, 2], np.int32))
    with pytest.raises(ShapeMismatchError, match="K = 5"):
        nki.simulate(grouped_matmul)(x, np.zeros((2, 5, 3), np.float32), np.array([3, 6], np.int32))
