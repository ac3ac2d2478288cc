"""The MX GEMM kernels (kernels/mx_matmul.py) against numpy: an MX quantise-dequantise matmul built here from
the OCP MX rule (32 consecutive contraction values per e8m0 scale, NKI 0.5's block scale), on fresh random
shapes; and their errors."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
from trnsim.errors import TrnsimError
from trnsim.kernels.mx_matmul import grouped_matmul_mx, linear_mx
from trnsim.kernels.mx_weights import dequantize_weight, quantize_weight

# element type and its largest unbiased exponent (NKI docs, nki.isa.quantize_mx; fp4 e2m1: 6 = 1.5 x 2^2)
ELEMENTS: dict[str, tuple[Any, int]] = {
    "float8_e4m3fn_x4": (ml_dtypes.float8_e4m3fn, 8),
    "float8_e5m2_x4": (ml_dtypes.float8_e5m2, 15),
    "float4_e2m1fn_x4": (ml_dtypes.float4_e2m1fn, 2),
}


def mx_round(a: np.ndarray, element: Any, e_max: int) -> np.ndarray:
    """a [R, K] as MX values: per 32 consecutive K, scale 2^(floor(log2 max|v|) - (e_max - 1)), values clipped
    and rounded to `element`, dequantised (float64)."""
    r, k = a.shape
    g = a.astype(np.float64).reshape(r, k // 32, 32)
    amax = np.abs(g).max(axis=2, keepdims=True)
    with np.errstate(divide="ignore"):
        scale = 2.0 ** np.where(amax > 0, np.floor(np.log2(amax)) - (e_max - 1), -127)
    limit = float(ml_dtypes.finfo(element).max)
    return (np.clip(g / scale, -limit, limit).astype(element).astype(np.float64) * scale).reshape(r, k)


def reference(x: np.ndarray, w: np.ndarray, w_dtype: str) -> np.ndarray:
    """x [M, K] quantised to MXFP8 e4m3 (as the kernel does on chip) times W [K, N] in `w_dtype`."""
    xq = mx_round(x, ml_dtypes.float8_e4m3fn, 8)
    wq = mx_round(w.T, *ELEMENTS[w_dtype]).T
    return xq @ wq


def random_problem(rng: np.random.Generator, m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = (rng.standard_normal((m, k)) * 2.0 ** rng.integers(-3, 4, size=(m, 1))).astype(ml_dtypes.bfloat16)
    w = rng.standard_normal((k, n)).astype(np.float32) * np.float32(0.05)
    return x, w


def close(got: np.ndarray, want: np.ndarray) -> None:
    """Output in bf16 (relative 2^-8) after fp32 accumulation of exactly representable products."""
    got = np.asarray(got, dtype=np.float64)
    scale = np.abs(want).max(axis=1, keepdims=True) + 1e-30
    np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=2.0**-7)


@pytest.mark.parametrize("w_dtype", list(ELEMENTS))
def test_linear_mx_matches_an_mx_reference(rng: np.random.Generator, w_dtype: str) -> None:
    m, k, n = int(rng.integers(1, 300)), 128 * int(rng.integers(1, 9)), int(rng.integers(1, 700))
    x, w = random_problem(rng, m, k, n)
    wq, ws = quantize_weight(w, w_dtype)
    np.testing.assert_array_equal(dequantize_weight(wq, ws, w_dtype), mx_round(w.T, *ELEMENTS[w_dtype]).T)
    got = nki.simulate(linear_mx, target="trn3")(x, wq, ws, w_dtype=w_dtype)
    want = reference(x, w, w_dtype)
    close(got, want)
    # and it is a matmul: within MX's rounding (relative RMS) of the unquantised product
    plain = x.astype(np.float64) @ w
    tol = {"float8_e4m3fn_x4": 0.06, "float8_e5m2_x4": 0.12, "float4_e2m1fn_x4": 0.3}[w_dtype]
    assert np.linalg.norm(np.asarray(got, np.float64) - plain) <= tol * np.linalg.norm(plain)


def test_linear_mx_epilogue_and_leading_dims(rng: np.random.Generator) -> None:
    b, s, k, n = 2, int(rng.integers(1, 150)), 256, int(rng.integers(2, 600))
    x, w = random_problem(rng, b * s, k, n)
    bias = rng.standard_normal(n).astype(ml_dtypes.bfloat16)
    residual = rng.standard_normal((b, s, n)).astype(ml_dtypes.bfloat16)
    wq, ws = quantize_weight(w)
    got = nki.simulate(linear_mx, target="trn3")(x.reshape(b, s, k), wq, ws, bias, "silu", residual)
    z = reference(x, w, "float8_e4m3fn_x4") + bias.astype(np.float64)
    want = (z / (1 + np.exp(-z))).reshape(b, s, n) + residual.astype(np.float64)
    assert np.asarray(got).shape == (b, s, n)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2.0**-6, atol=2.0**-6 * np.abs(want).max())


def test_grouped_matmul_mx_matches_per_group_references(rng: np.random.Generator) -> None:
    groups, k, n = int(rng.integers(2, 5)), 256, int(rng.integers(1, 400))
    sizes = rng.integers(0, 200, size=groups)
    ends = np.cumsum(sizes)
    rows = int(ends[-1]) + int(rng.integers(0, 3))  # a few rows routed nowhere come out zero
    x, _ = random_problem(rng, rows, k, n)
    w = rng.standard_normal((groups, k, n)).astype(np.float32)
    wq, ws = quantize_weight(w)
    got = np.asarray(nki.simulate(grouped_matmul_mx, target="trn3")(x, wq, ws, ends.astype(np.int64)), np.float64)
    start = 0
    for g, end in enumerate(ends):
        if end > start:
            close(got[start:end], reference(x[start:end], w[g], "float8_e4m3fn_x4"))
        start = int(end)
    assert not got[int(ends[-1]) :].any()


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("k", "multiple of 128"),
        ("shape", "wq must be"),
        ("x_dtype", "x is float32"),
        ("w_dtype", "not one of"),
        ("target", "NeuronCore-v4"),
    ],
)
def test_linear_mx_rejects_bad_input_clearly(case: str, match: str) -> None:
    k, n = 256 if case != "k" else 96, 64
    x = np.zeros((8, k), dtype=np.float32 if case == "x_dtype" else ml_dtypes.bfloat16)
    wq, ws = quantize_weight(np.zeros((k, n), np.float32))
    if case == "shape":
        wq = wq[:, :32]
    w_dtype = "bfloat16" if case == "w_dtype" else "float8_e4m3fn_x4"
    target = "trn2" if case == "target" else "trn3"
    with pytest.raises(TrnsimError, match=match):
        nki.simulate(linear_mx, target=target)(x, wq, ws, w_dtype=w_dtype)
