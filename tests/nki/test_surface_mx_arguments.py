"""MX data and scales as kernel arguments in their own dtypes (packed `*_x4`, `float8_e8m0fnu`), as nkilib
passes them: bits arrive unchanged and nc_matmul_mx reads them. Checked against numpy."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.errors import DtypeError


@nki.jit
def mx_matmul_args(st, mv, st_scale, mv_scale):
    tiles = []
    for x in (st, mv, st_scale, mv_scale):
        t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        tiles.append(t)
    acc = nl.ndarray((st.shape[1], mv.shape[1]), dtype=nl.float32, buffer=nl.psum)
    nisa.nc_matmul_mx(acc, *tiles)
    res = nl.ndarray(acc.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=acc)
    out = nl.ndarray(acc.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=res)
    echo = nl.ndarray(st.shape, dtype=st.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=echo, src=tiles[0])
    return out, echo


@pytest.mark.parametrize("packed", ["float8_e4m3fn_x4", "float8_e5m2_x4", "float4_e2m1fn_x4"])
def test_packed_and_e8m0_arguments_reach_the_matmul(rng: np.random.Generator, packed: str) -> None:
    dt = dtypes.resolve(packed)
    k, m, n = 32 * int(rng.integers(1, 5)), 2 * int(rng.integers(1, 65)), int(rng.integers(1, 300))
    operands, scales = [], []
    for f in (m, n):
        values = rng.uniform(-4, 4, size=(k, 4 * f)).astype(dtypes.PACKED_X4[dt]).astype(np.float64)
        biased = rng.integers(120, 134, size=(k // 8, f)).astype(np.uint8)
        factor = np.repeat(2.0 ** (biased - 127.0), 8, axis=0)[:, :, None]
        scaled = (values.reshape(k, f, 4) * factor).transpose(0, 2, 1).reshape(4 * k, f)
        operands.append((dtypes.pack_x4(values, dt), scaled))
        scales.append(biased.view(ml_dtypes.float8_e8m0fnu))
    (st, a), (mv, b) = operands
    got, echo = nki.simulate(mx_matmul_args, target="trn3")(st, mv, *scales)
    want = a.T @ b
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert echo.dtype == dt and echo.tobytes() == st.tobytes()


@nki.jit
def passthrough(x):
    return x


def test_other_structured_dtypes_are_still_refused() -> None:
    odd = np.zeros((4, 4), dtype=[("a", "<u2"), ("b", "<u2")])
    with pytest.raises(DtypeError, match="float8_e4m3fn_x4"):
        nki.simulate(passthrough)(odd)
