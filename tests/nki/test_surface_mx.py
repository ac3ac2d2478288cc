"""NC-v4 MX instructions against numpy: nc_matmul_mx (dequantize and multiply, fp8/fp4 x4-packed data with
e8m0 scales per 8 partitions x 4 values) and quantize_mx (the documented block-scale formula), and their rules
as clear errors in functional and timing runs. These scale tiles use the compact [P // 8, F] layout; the
hardware's quadrant layout is tested in test_surface_mx_scale_layout.py."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError, TileShapeError, UsageError

ELEMENT = {
    "float8_e4m3fn_x4": ml_dtypes.float8_e4m3fn,
    "float8_e5m2_x4": ml_dtypes.float8_e5m2,
    "float4_e2m1fn_x4": ml_dtypes.float4_e2m1fn,
}


@nki.jit
def mx_matmul(st, mv, st_scale, mv_scale, st_type, mv_type, scale_type, out_dtype):
    # kernel arguments are raw bits (uint); the on-chip tiles are viewed as the packed and scale types
    s, m = nl.load(st).view(st_type), nl.load(mv).view(mv_type)
    ss, ms = nl.load(st_scale).view(scale_type), nl.load(mv_scale).view(scale_type)
    acc = nl.ndarray((st.shape[1], mv.shape[1]), dtype=out_dtype, buffer=nl.psum)
    nisa.nc_matmul_mx(acc, s, m, ss, ms)
    res = nl.ndarray(acc.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=acc)
    out = nl.ndarray(acc.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, res)
    return out


def random_mx(rng: np.random.Generator, k: int, f: int, packed: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Packed data [k, f], uint8 biased scales [k // 8, f] and the dequantized values laid out [k, f, 4]."""
    element = ELEMENT[packed]
    values = rng.uniform(-4, 4, size=(k, f, 4)).astype(element).astype(np.float32)
    biased = rng.integers(120, 134, size=(k // 8, f)).astype(np.uint8)
    data = dtypes.pack_x4(values.reshape(k, f * 4), dtypes.resolve(packed))
    factor = np.repeat(2.0 ** (biased.astype(np.float64) - 127), 8, axis=0)[:, :, None]
    return data, biased, values * factor


def raw(packed: np.ndarray) -> np.ndarray:
    """A packed array's bits as the same-size unsigned integer (what a kernel argument can be)."""
    return packed.view(f"<u{packed.dtype.itemsize}")


@pytest.mark.parametrize(
    ("st_type", "mv_type", "out_dtype"),
    [
        ("float8_e4m3fn_x4", "float8_e4m3fn_x4", nl.float32),
        ("float8_e5m2_x4", "float4_e2m1fn_x4", nl.float32),
        ("float4_e2m1fn_x4", "float8_e5m2_x4", nl.bfloat16),
    ],
)
def test_nc_matmul_mx_matches_numpy(rng: np.random.Generator, st_type: str, mv_type: str, out_dtype: Any) -> None:
    k = 32 * int(rng.integers(1, 5))
    m, n = 2 * int(rng.integers(1, 65)), int(rng.integers(1, 600))
    st, st_scale, a = random_mx(rng, k, m, st_type)
    mv, mv_scale, b = random_mx(rng, k, n, mv_type)
    # the contraction runs over (partition, packed value) pairs: a [k*4, m] matrix times a [k*4, n] one
    want = a.transpose(0, 2, 1).reshape(k * 4, m).T @ b.transpose(0, 2, 1).reshape(k * 4, n)
    scale_type = nl.float8_e8m0fnu if rng.integers(2) else nl.uint8
    got = nki.simulate(mx_matmul, target="trn3")(
        raw(st), raw(mv), st_scale, mv_scale, dtypes.resolve(st_type), dtypes.resolve(mv_type), scale_type, out_dtype
    )
    rtol = 1e-5 if out_dtype == nl.float32 else 1e-2
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


@nki.jit
def quantize(x, packed):
    t = nl.load(x)
    q = nl.ndarray((x.shape[0], x.shape[1] // 4), dtype=packed, buffer=nl.sbuf)
    s = nl.ndarray((x.shape[0] // 8, x.shape[1] // 4), dtype=nl.float8_e8m0fnu, buffer=nl.sbuf)
    nisa.quantize_mx(q, t, s)
    out_q = nl.ndarray(q.shape, dtype=nl.uint32, buffer=nl.shared_hbm)
    out_s = nl.ndarray(s.shape, dtype=nl.uint8, buffer=nl.shared_hbm)
    nl.store(out_q, q.view(nl.uint32))
    nl.store(out_s, s.view(nl.uint8))
    return out_q, out_s


@pytest.mark.parametrize(("packed", "e_max"), [("float8_e4m3fn_x4", 8), ("float8_e5m2_x4", 15)])
def test_quantize_mx_follows_the_documented_scale(rng: np.random.Generator, packed: str, e_max: int) -> None:
    p, f = 32 * int(rng.integers(1, 5)), 4 * int(rng.integers(1, 100))
    x = (rng.standard_normal((p, f)) * 2.0 ** rng.integers(-6, 7, size=(p, 1))).astype(ml_dtypes.bfloat16)
    x[:8, :4] = 0  # one all-zero group: scale 2^-127
    q, s = nki.simulate(quantize, target="trn3")(x, dtypes.resolve(packed))
    # X = 2^(floor(log2 max|v|) - (E_max - 1)) per 8 x 4 group (NKI docs, nki.isa.quantize_mx)
    amax = np.abs(x.astype(np.float64)).reshape(p // 8, 8, f // 4, 4).max(axis=(1, 3))
    with np.errstate(divide="ignore"):
        exponent = np.where(amax > 0, np.floor(np.log2(amax)) - (e_max - 1), -127)
    np.testing.assert_array_equal(np.asarray(s).astype(np.int64), exponent + 127)
    block = np.repeat(np.repeat(2.0**exponent, 8, axis=0), 4, axis=1)
    element = ELEMENT[packed]
    want = np.clip(
        x.astype(np.float64) / block, -float(ml_dtypes.finfo(element).max), float(ml_dtypes.finfo(element).max)
    )
    got = dtypes.unpack_x4(np.asarray(q, dtype=np.uint32), dtypes.resolve(packed)).astype(np.float64)
    np.testing.assert_array_equal(got, want.astype(element).astype(np.float64))
    # the block scale leaves headroom: dequantized values stay within the element type's relative precision
    rel = 2.0 ** -(ml_dtypes.finfo(element).nmant)
    np.testing.assert_allclose(got * block, x.astype(np.float64), rtol=rel, atol=block.max() * 2.0**-10)


def test_quantize_then_matmul_approximates_the_float_matmul(rng: np.random.Generator) -> None:
    k, m, n = 128, 64, 96
    a, b = rng.standard_normal((k, 4 * m)).astype(ml_dtypes.bfloat16), rng.standard_normal((k, 4 * n))
    b = b.astype(ml_dtypes.bfloat16)
    qa, sa = nki.simulate(quantize, target="trn3")(a, dtypes.float8_e4m3fn_x4)
    qb, sb = nki.simulate(quantize, target="trn3")(b, dtypes.float8_e4m3fn_x4)
    fp8 = dtypes.float8_e4m3fn_x4
    got = nki.simulate(mx_matmul, target="trn3")(qa, qb, sa, sb, fp8, fp8, nl.float8_e8m0fnu, nl.float32)
    a4 = a.astype(np.float64).reshape(k, m, 4).transpose(0, 2, 1).reshape(4 * k, m)
    b4 = b.astype(np.float64).reshape(k, n, 4).transpose(0, 2, 1).reshape(4 * k, n)
    want = a4.T @ b4
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max()


@nki.jit
def bad(which):
    fp8, e8 = nl.float8_e4m3fn_x4, nl.float8_e8m0fnu
    st, mv = nl.ndarray((32, 16), dtype=fp8, buffer=nl.sbuf), nl.ndarray((32, 64), dtype=fp8, buffer=nl.sbuf)
    ss, ms = nl.ndarray((4, 16), dtype=e8, buffer=nl.sbuf), nl.ndarray((4, 64), dtype=e8, buffer=nl.sbuf)
    acc = nl.ndarray((16, 64), dtype=nl.float32, buffer=nl.psum)
    src = nl.ndarray((32, 64), dtype=nl.bfloat16, buffer=nl.sbuf)
    q, qs = nl.ndarray((32, 16), dtype=fp8, buffer=nl.sbuf), nl.ndarray((4, 16), dtype=e8, buffer=nl.sbuf)
    if which == "mm-dtype":
        nisa.nc_matmul_mx(acc, nl.ndarray((32, 16), dtype=nl.bfloat16, buffer=nl.sbuf), mv, ss, ms)
    elif which == "mm-scale-shape":
        nisa.nc_matmul_mx(acc, st, mv, ss, nl.ndarray((4, 32), dtype=e8, buffer=nl.sbuf))
    elif which == "mm-scale-dtype":
        nisa.nc_matmul_mx(acc, st, mv, ss, nl.ndarray((4, 64), dtype=nl.float32, buffer=nl.sbuf))
    elif which == "mm-partitions":
        st16, mv16 = nl.ndarray((16, 16), dtype=fp8, buffer=nl.sbuf), nl.ndarray((16, 64), dtype=fp8, buffer=nl.sbuf)
        nisa.nc_matmul_mx(acc, st16, mv16, ss[0:2], ms[0:2])
    elif which == "mm-dst-sbuf":
        nisa.nc_matmul_mx(nl.ndarray((16, 64), dtype=nl.float32, buffer=nl.sbuf), st, mv, ss, ms)
    elif which == "mm-dst-shape":
        nisa.nc_matmul_mx(nl.ndarray((16, 32), dtype=nl.float32, buffer=nl.psum), st, mv, ss, ms)
    elif which == "q-src-dtype":
        nisa.quantize_mx(q, nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf), qs)
    elif which == "q-dst-dtype":
        nisa.quantize_mx(nl.ndarray((32, 16), dtype=nl.float4_e2m1fn_x4, buffer=nl.sbuf), src, qs)
    elif which == "q-dst-shape":
        nisa.quantize_mx(nl.ndarray((32, 8), dtype=fp8, buffer=nl.sbuf), src, qs)
    elif which == "q-free":
        nisa.quantize_mx(q[:, 0:1], src[:, 0:6], qs[:, 0:1])
    elif which == "q-scale-shape":
        nisa.quantize_mx(q, src, nl.ndarray((32, 8), dtype=e8, buffer=nl.sbuf))
    elif which == "mm":
        nisa.nc_matmul_mx(acc, st, mv, ss, ms)
    elif which == "q":
        nisa.quantize_mx(q, src, qs)
    out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    return out


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("mm-dtype", DtypeError, "stationary must be one of"),
        ("mm-scale-shape", ShapeMismatchError, "moving_scale must be at least [4, 64]"),
        ("mm-scale-dtype", DtypeError, "float8_e8m0fnu or uint8"),
        ("mm-partitions", TileShapeError, "multiple of 32"),
        ("mm-dst-sbuf", UsageError, "writes to PSUM"),
        ("mm-dst-shape", ShapeMismatchError, "dst must be [16, 64]"),
        ("q-src-dtype", DtypeError, "bfloat16 or float16"),
        ("q-dst-dtype", DtypeError, "float8_e4m3fn_x4 or float8_e5m2_x4"),
        ("q-dst-shape", ShapeMismatchError, "dst must be [32, 16]"),
        ("q-free", TileShapeError, "multiple of 4"),
        ("q-scale-shape", ShapeMismatchError, "dst_scale must be at least [4, 16]"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_mx_rules_are_clear_errors_in_both_modes(which: str, error: type[Exception], words: str, mode: str) -> None:
    with pytest.raises(error) as info:
        nki.profile(bad, target="trn3", mode=mode)(which)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_mx.py" in str(info.value)


@pytest.mark.parametrize("target", ["trn1", "trn2"])
@pytest.mark.parametrize("which", ["mm", "q"])
def test_mx_instructions_need_neuroncore_v4(target: str, which: str) -> None:
    with pytest.raises(UsageError, match="NeuronCore-v4") as info:
        nki.profile(bad, target=target, mode="timing")(which)  # type: ignore[arg-type]
    assert info.value.rule == "mx-target"
