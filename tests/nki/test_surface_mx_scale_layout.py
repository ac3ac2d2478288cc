"""MX scale tiles in the hardware's layout: each 32-partition quadrant keeps its 4 scale rows at its start
(group g at tile partition (g // 4) * 32 + g % 4), and a view starting at partition 4, 8 or 12 packs another
tensor's scales into the same tile (NKI MX deep-dive). Checked against numpy on fresh random data."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.errors import ShapeMismatchError

SENTINEL = 7  # what the rows outside the layout hold; a write there would change it


def spread_rows(partitions: int, offset: int = 0) -> np.ndarray:
    g = np.arange(partitions // 8)
    return (g // 4) * 32 + g % 4 + offset


def documented_exponents(x: np.ndarray) -> np.ndarray:
    """Biased e8m0 block exponents of float8_e4m3fn MX (E_max 8), NKI docs nki.isa.quantize_mx."""
    p, f = x.shape
    amax = np.abs(x.astype(np.float64)).reshape(p // 8, 8, f // 4, 4).max(axis=(1, 3))
    with np.errstate(divide="ignore"):
        return np.where(amax > 0, np.floor(np.log2(amax)) - 7 + 127, 0).astype(np.int64)


@nki.jit
def quantize_at(x, offset):
    p, f = x.shape
    t = nl.load(x)
    q = nl.ndarray((p, f // 4), dtype=nl.float8_e4m3fn_x4, buffer=nl.sbuf)
    s = nl.ndarray((128, f // 4), dtype=nl.uint8, buffer=nl.sbuf)
    nisa.memset(dst=s, value=SENTINEL)
    nisa.quantize_mx(dst=q, src=t, dst_scale=s[offset:, :])
    out = nl.ndarray(s.shape, dtype=nl.uint8, buffer=nl.shared_hbm)
    nl.store(out, s)
    return out


@pytest.mark.parametrize("offset", [0, 4, 8, 12])
def test_quantize_mx_writes_each_quadrants_scales_at_its_start(rng: np.random.Generator, offset: int) -> None:
    p, f = 32 * int(rng.integers(2, 5)), 4 * int(rng.integers(1, 60))
    x = (rng.standard_normal((p, f)) * 2.0 ** rng.integers(-5, 6, size=(p, 1))).astype(ml_dtypes.bfloat16)
    got = np.asarray(nki.simulate(quantize_at, target="trn3")(x, offset)).astype(np.int64)
    rows = spread_rows(p, offset)
    np.testing.assert_array_equal(got[rows], documented_exponents(x))
    others = np.setdiff1d(np.arange(128), rows)
    assert (got[others] == SENTINEL).all()


@nki.jit
def quantize_both_then_matmul(a, b):
    k, m4 = a.shape
    n4 = b.shape[1]
    fp8 = nl.float8_e4m3fn_x4
    qa = nl.ndarray((k, m4 // 4), dtype=fp8, buffer=nl.sbuf)
    qb = nl.ndarray((k, n4 // 4), dtype=fp8, buffer=nl.sbuf)
    packed = nl.ndarray((k, max(m4, n4) // 4), dtype=nl.uint8, buffer=nl.sbuf)  # both tensors' scales
    nisa.memset(dst=packed, value=0)
    nisa.quantize_mx(dst=qa, src=nl.load(a), dst_scale=packed[0:, : m4 // 4])
    nisa.quantize_mx(dst=qb, src=nl.load(b), dst_scale=packed[4:, : n4 // 4])
    acc = nl.ndarray((m4 // 4, n4 // 4), dtype=nl.float32, buffer=nl.psum)
    nisa.nc_matmul_mx(acc, qa, qb, packed[0:, : m4 // 4], packed[4:, : n4 // 4])
    res = nl.ndarray(acc.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=acc)
    outs = [
        nl.ndarray(t.shape, dtype=nl.uint32 if t is not packed else nl.uint8, buffer=nl.shared_hbm)
        for t in (qa, qb, packed)
    ]
    for o, t in zip(outs, (qa.view(nl.uint32), qb.view(nl.uint32), packed), strict=True):
        nl.store(o, t)
    out = nl.ndarray(acc.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, res)
    return out, *outs


def test_two_tensors_scales_packed_in_one_tile_feed_the_matmul(rng: np.random.Generator) -> None:
    k, m, n = 32 * int(rng.integers(2, 5)), 2 * int(rng.integers(1, 33)), int(rng.integers(1, 200))
    a = rng.standard_normal((k, 4 * m)).astype(ml_dtypes.bfloat16)
    b = (rng.standard_normal((k, 4 * n)) * 8).astype(ml_dtypes.bfloat16)
    got, qa, qb, packed = nki.simulate(quantize_both_then_matmul, target="trn3")(a, b)
    packed = np.asarray(packed).astype(np.int64)
    sa, sb = packed[spread_rows(k, 0), :m], packed[spread_rows(k, 4), :n]
    np.testing.assert_array_equal(sa, documented_exponents(a))
    np.testing.assert_array_equal(sb, documented_exponents(b))

    def dequantized(q: np.ndarray, biased: np.ndarray, f: int) -> np.ndarray:
        values = dtypes.unpack_x4(np.asarray(q, dtype=np.uint32), dtypes.float8_e4m3fn_x4).astype(np.float64)
        factor = np.repeat(2.0 ** (biased - 127.0), 8, axis=0)[:, :, None]
        return (values.reshape(k, f, 4) * factor).transpose(0, 2, 1).reshape(4 * k, f)

    want = dequantized(qa, sa, m).T @ dequantized(qb, sb, n)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@nki.jit
def matmul_hw_scales(st, mv, st_scale, mv_scale):
    fp8 = nl.float8_e4m3fn_x4
    s, m = nl.load(st).view(fp8), nl.load(mv).view(fp8)
    ss, ms = nl.load(st_scale), nl.load(mv_scale)
    acc = nl.ndarray((st.shape[1], mv.shape[1]), dtype=nl.float32, buffer=nl.psum)
    nisa.nc_matmul_mx(acc, s, m, ss, ms)
    res = nl.ndarray(acc.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=acc)
    out = nl.ndarray(acc.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, res)
    return out


def test_nc_matmul_mx_reads_scales_from_the_quadrant_layout(rng: np.random.Generator) -> None:
    k, m, n = 32 * int(rng.integers(2, 5)), 2 * int(rng.integers(1, 65)), int(rng.integers(1, 300))
    tiles = []
    for f in (m, n):
        values = rng.uniform(-4, 4, size=(k, f, 4)).astype(ml_dtypes.float8_e4m3fn).astype(np.float64)
        biased = rng.integers(120, 134, size=(k // 8, f))
        scale_tile = rng.integers(0, 255, size=(k, f)).astype(np.uint8)  # rows outside the layout: noise
        scale_tile[spread_rows(k)] = biased
        data = dtypes.pack_x4(values.reshape(k, 4 * f).astype(np.float32), dtypes.float8_e4m3fn_x4)
        factor = np.repeat(2.0 ** (biased - 127.0), 8, axis=0)[:, :, None]
        tiles.append((data.view("<u4"), scale_tile, (values * factor).transpose(0, 2, 1).reshape(4 * k, f)))
    (st, st_scale, a), (mv, mv_scale, b) = tiles
    got = nki.simulate(matmul_hw_scales, target="trn3")(st, mv, st_scale, mv_scale)
    want = a.T @ b
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@nki.jit
def too_short_scale(rows):
    fp8 = nl.float8_e4m3fn_x4
    st, mv = nl.ndarray((128, 16), dtype=fp8, buffer=nl.sbuf), nl.ndarray((128, 64), dtype=fp8, buffer=nl.sbuf)
    ss = nl.ndarray((rows, 16), dtype=nl.uint8, buffer=nl.sbuf)
    ms = nl.ndarray((16, 64), dtype=nl.uint8, buffer=nl.sbuf)
    acc = nl.ndarray((16, 64), dtype=nl.float32, buffer=nl.psum)
    nisa.nc_matmul_mx(acc, st, mv, ss, ms)
    return nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)


@pytest.mark.parametrize("rows", [8, 50, 99])
def test_a_scale_tile_fitting_neither_layout_is_a_clear_error(rows: int) -> None:
    with pytest.raises(ShapeMismatchError) as info:
        nki.profile(too_short_scale, target="trn3", mode="timing")(rows)  # type: ignore[arg-type]
    message = str(info.value)
    assert "at least [100, 16]" in message and "exactly [16, 16]" in message
    assert info.value.rule == "mx-scale-shape" and "test_surface_mx_scale_layout.py" in message
