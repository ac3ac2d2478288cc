"""nc_matmul_mx's numpy semantics (one float64 GEMM) against independent references on fresh random MX data:
einsum over the same products in float64, and, on a small tile, the correctly rounded exact sum (math.fsum)."""

from __future__ import annotations

import math
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from trnsim.isa.instructions import mx_format as mx
from trnsim.isa.instructions import nc_matmul_mx

ELEMENTS = [ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.float4_e2m1fn]


def random_mx(rng: np.random.Generator, k: int, cols: int, element: Any) -> tuple[np.ndarray, np.ndarray]:
    """Values [K, cols, 4] of `element` (as fp32, zeros, subnormals and both signs) and scale factors
    [K // 8, cols] spanning 10 binades, as nki-library's MX test data does."""
    limit = float(ml_dtypes.finfo(element).max)
    raw = rng.uniform(-limit, limit, size=(k, cols, 4)) * 2.0 ** rng.integers(-8, 1, size=(k, cols, 4))
    raw[rng.random(raw.shape) < 0.05] = 0.0
    values = raw.astype(element).astype(np.float32)
    biased = rng.integers(110, 121, size=(-(-k // mx.GROUP_PARTITIONS), cols)).astype(np.uint8)
    return values, mx.scale_factors(biased)


def einsum_reference(st: np.ndarray, mv: np.ndarray, s_st: np.ndarray, s_mv: np.ndarray) -> np.ndarray:
    k = st.shape[0]
    a = st * np.repeat(s_st, 8, axis=0)[:k, :, None]
    b = mv * np.repeat(s_mv, 8, axis=0)[:k, :, None]
    return np.einsum("kiq,kjq->ij", a, b, dtype=np.float64).astype(np.float32)


@pytest.mark.parametrize("element", ELEMENTS, ids=lambda e: np.dtype(e).name)
def test_gemm_form_matches_einsum_bit_for_bit(rng: np.random.Generator, element: Any) -> None:
    for _ in range(3):
        k = int(rng.choice([12, 32 * int(rng.integers(1, 5))]))  # 12: groups not whole (the repeat path)
        m, n = 2 * int(rng.integers(1, 65)), int(rng.integers(1, 513))
        st, s_st = random_mx(rng, k, m, element)
        mv, s_mv = random_mx(rng, k, n, element)
        got = nc_matmul_mx.semantics(st, mv, s_st, s_mv)
        want = einsum_reference(st, mv, s_st, s_mv)
        assert got.dtype == np.float32 and got.shape == (m, n)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_gemm_form_is_the_correctly_rounded_exact_sum(rng: np.random.Generator) -> None:
    k, m, n = 64, 6, 10
    st, s_st = random_mx(rng, k, m, ml_dtypes.float8_e4m3fn)
    mv, s_mv = random_mx(rng, k, n, ml_dtypes.float8_e4m3fn)
    got = nc_matmul_mx.semantics(st, mv, s_st, s_mv)
    a = (st * np.repeat(s_st, 8, axis=0)[:, :, None]).astype(np.float64)
    b = (mv * np.repeat(s_mv, 8, axis=0)[:, :, None]).astype(np.float64)
    for i in range(m):
        for j in range(n):
            exact = math.fsum((a[:, i, :] * b[:, j, :]).ravel().tolist())  # products are exact in float64
            assert got[i, j] == np.float32(exact), (i, j)


def test_tile_matmuls_run_blas_on_one_thread_and_restore_it() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from trnsim.isa import semantics as sem

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    with sem.one_blas_thread():
        inside = blas_threads()
    assert all(n == 1 for n in inside)
    assert blas_threads() == before
