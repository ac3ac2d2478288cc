"""Every opcode against an independent numpy reference, in fp32, bf16 and fp8 (e4m3).

Each test runs a small `nki.isa` kernel under `nki.simulate`: load with dma_copy, one or two
instructions, store back. The reference never calls trnsim: inputs are cast to the stored dtype with
ml_dtypes, the math is done in numpy (float32 where the ISA defines fp32 math step by step, float64
otherwise), and the result is cast to the output dtype. Shapes, dtypes, options and data seeds are
drawn by hypothesis; the few plain tests use the fresh-seed `rng` fixture.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
import trnsim.nki.legacy_isa as lisa

# Dtype names -> the kernel's NKI dtype and the reference's ml_dtypes type. NKI's float8_e4m3 (NC-v2/v3)
# is the IEEE-style e4m3 (max 240, has inf), ml_dtypes.float8_e4m3; float8_e4m3fn is a different type.
FP32, BF16, FP8 = "fp32", "bf16", "fp8"
ALL = (FP32, BF16, FP8)
NL_DT = {FP32: nl.float32, BF16: nl.bfloat16, FP8: nl.float8_e4m3}
REF_DT: dict[str, Any] = {FP32: np.float32, BF16: ml_dtypes.bfloat16, FP8: ml_dtypes.float8_e4m3}
# Tolerances of a value rounded to the dtype (rtol) and of results near zero (atol: fp8 subnormal step).
RTOL = {FP32: 1e-5, BF16: 2e-2, FP8: 0.15}
ATOL = {FP32: 1e-6, BF16: 1e-5, FP8: 2.0**-8}

SETTINGS = settings(max_examples=20, deadline=None)
FEW = settings(max_examples=12, deadline=None)
seeds = st.integers(0, 2**32 - 1)
dtypes_ = st.sampled_from(ALL)
parts = st.integers(1, 128)


# -- reference helpers -------------------------------------------------------------------------------
def q(x: np.ndarray, d: str) -> np.ndarray:
    """x as stored in dtype d, read back exactly as float64."""
    return np.asarray(x, dtype=np.float32).astype(REF_DT[d]).astype(np.float64)


def as_f64(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.float64)


def check(out: Any, ref: np.ndarray, d: str, rtol: float | None = None, atol: float | None = None) -> None:
    """Compare a kernel result with a float64 reference rounded to the output dtype d."""
    out = as_f64(out)
    expected = q(ref, d) if d != FP32 else np.asarray(ref, dtype=np.float64)
    assert out.shape == expected.shape, (out.shape, expected.shape)
    np.testing.assert_allclose(
        out, expected, rtol=RTOL[d] if rtol is None else rtol, atol=ATOL[d] if atol is None else atol
    )


def within(out: Any, ref: np.ndarray, tol: Any) -> None:
    """|out - ref| <= tol elementwise, where tol may be an array (e.g. scaled by each row's magnitude)."""
    out = as_f64(out)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    err = np.abs(out - ref)
    bad = ~(err <= tol)
    assert not bad.any(), f"{int(bad.sum())} of {bad.size} elements off; worst error {err.max()}, ref {ref[bad][:4]}"


def randn(seed: int, shape: tuple[int, ...], scale: float = 2.0) -> np.ndarray:
    """Normal data clipped well inside fp8 e4m3's range."""
    r = np.random.default_rng(seed)
    return np.clip(r.standard_normal(shape) * scale, -200, 200).astype(np.float32)


def away_from_zero(seed: int, shape: tuple[int, ...], low: float = 0.5, high: float = 4.0) -> np.ndarray:
    r = np.random.default_rng(seed)
    return (r.uniform(low, high, shape) * r.choice([-1.0, 1.0], shape)).astype(np.float32)


# -- kernel helpers ----------------------------------------------------------------------------------
def load(src: Any, dt: Any, shape: tuple[int, ...] | None = None) -> Any:
    t = nl.ndarray(tuple(shape or src.shape), dt, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=src)
    return t


def store(t: Any, dt: Any = nl.float32) -> Any:
    """SBUF (or PSUM, through a Vector copy) -> a new fp32 HBM output."""
    if t.buffer is nl.psum:
        sb = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(dst=sb, src=t)
        t = sb
    out = nl.ndarray(t.shape, dt, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=t)
    return out


def to_psum(t: Any, dt: Any = nl.float32) -> Any:
    ps = nl.ndarray(t.shape, dt, buffer=nl.psum)
    nisa.tensor_copy(dst=ps, src=t, engine=nisa.vector_engine)
    return ps


def run(kernel: Any, *args: Any, **kwargs: Any) -> Any:
    return nki.simulate(kernel)(*args, **kwargs)


# == dma_copy ========================================================================================
@nki.jit
def dma_kernel(x, mid, dst2, out_dt, split):
    p, f = x.shape
    a = nl.ndarray((p, f), NL_DT[mid], buffer=nl.sbuf)
    if split:  # two DMAs into column halves of one tile
        h = f // 2
        nisa.dma_copy(dst=a[:, 0:h], src=x[:, 0:h])
        nisa.dma_copy(dst=a[:, h:f], src=x[:, h:f])
    else:
        nisa.dma_copy(dst=a, src=x)
    b = nl.ndarray((p, f), NL_DT[dst2], buffer=nl.sbuf)
    nisa.dma_copy(dst=b, src=a)  # SBUF -> SBUF, casting
    return store(b, NL_DT[out_dt])


@SETTINGS
@given(
    p=parts,
    f=st.integers(2, 96),
    src=st.sampled_from([FP32, BF16]),
    mid=dtypes_,
    dst2=dtypes_,
    out_dt=st.sampled_from([FP32, BF16]),
    split=st.booleans(),
    seed=seeds,
)
def test_dma_copy_casts(p: int, f: int, src: str, mid: str, dst2: str, out_dt: str, split: bool, seed: int) -> None:
    x = randn(seed, (p, f), 8.0).astype(REF_DT[src])
    out = run(dma_kernel, x, mid=mid, dst2=dst2, out_dt=out_dt, split=split)
    ref = q(q(q(x, mid), dst2), out_dt)
    assert out.dtype == np.dtype(NL_DT[out_dt])
    np.testing.assert_array_equal(as_f64(out), ref)


@nki.jit
def dma_reshape_kernel(x, a, b):
    """HBM [P, a*b] -> SBUF [P, a, b]: only the element counts must match."""
    t = load(x, nl.bfloat16, (x.shape[0], a, b))
    return store(t)


@FEW
@given(p=parts, a=st.integers(1, 8), b=st.integers(1, 16), seed=seeds)
def test_dma_copy_reshapes(p: int, a: int, b: int, seed: int) -> None:
    x = randn(seed, (p, a * b))
    out = run(dma_reshape_kernel, x, a=a, b=b)
    np.testing.assert_array_equal(as_f64(out), q(x, BF16).reshape(p, a, b))


@nki.jit
def int_copy_kernel(x, eng):
    """HBM -> SBUF -> SBUF (DMA) -> SBUF (tensor_copy) -> HBM, all in one integer dtype."""
    t = load(x, x.dtype)
    u = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=u, src=t)
    v = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=v, src=u, engine=nisa.vector_engine if eng == "vector" else nisa.gpsimd_engine)
    return store(v, x.dtype)


@FEW
@given(
    x=hnp.arrays(
        st.sampled_from([np.dtype(np.int32), np.dtype(np.uint32)]),
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=16),
    ),
    eng=st.sampled_from(["vector", "gpsimd"]),
)
def test_same_dtype_copies_are_bit_exact(x: np.ndarray, eng: str) -> None:
    """DMA and Vector/GpSimd copies move bits: 32-bit integers beyond 2^24 survive unchanged."""
    out = run(int_copy_kernel, x, eng=eng)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, x)


# == nc_matmul =======================================================================================
@nki.jit
def matmul_kernel(aT, b, dt, kp, mode):
    """Sum over K tiles of aT[k].T @ b[k] into one PSUM tile; mode: auto | explicit | overwrite."""
    k_total, m = aT.shape
    n = b.shape[1]
    ps = nl.ndarray((m, n), nl.float32, buffer=nl.psum)
    for k in nl.affine_range(k_total // kp):
        at = load(aT[k * kp : (k + 1) * kp, :], NL_DT[dt])
        bt = load(b[k * kp : (k + 1) * kp, :], NL_DT[dt])
        if mode == "auto":
            nisa.nc_matmul(ps, at, bt)
        elif mode == "explicit":
            nisa.nc_matmul(ps, at, bt, accumulate=k > 0)
        else:  # every tile overwrites: only the last one survives
            nisa.nc_matmul(ps, at, bt, accumulate=False)
    return store(ps)


def matmul_atol(k: int) -> float:
    # fp32 PSUM accumulation of K unit-variance products; inputs are pre-rounded in the reference.
    return 2e-5 * math.sqrt(k) * 4


@SETTINGS
@given(
    dt=dtypes_,
    tiles=st.integers(1, 3),
    kp=parts,
    m=parts,
    n=st.integers(1, 512),
    mode=st.sampled_from(["auto", "explicit", "overwrite"]),
    seed=seeds,
)
def test_nc_matmul_accumulate(dt: str, tiles: int, kp: int, m: int, n: int, mode: str, seed: int) -> None:
    k = tiles * kp
    aT, b = randn(seed, (k, m), 1.0), randn(seed + 1, (k, n), 1.0)
    out = run(matmul_kernel, aT, b, dt=dt, kp=kp, mode=mode)
    qa, qb = q(aT, dt), q(b, dt)
    if mode == "overwrite":
        qa, qb = qa[-kp:], qb[-kp:]
    check(out, qa.T @ qb, FP32, rtol=1e-5, atol=matmul_atol(k))


@nki.jit
def matmul_reuse_kernel(aT, b, reps):
    """Two output tiles in a loop, each a fresh PSUM tile accumulated in auto mode over 2 K tiles."""
    m = aT.shape[1]
    n = b.shape[1]
    out = nl.ndarray((reps, m, n), nl.float32, buffer=nl.shared_hbm)
    for r in nl.affine_range(reps):
        ps = nl.ndarray((m, n), nl.float32, buffer=nl.psum)
        for k in nl.affine_range(2):
            at = load(aT[k * 128 : (k + 1) * 128, :], nl.bfloat16)
            bt = load(b[k * 128 : (k + 1) * 128, :], nl.bfloat16)
            st_ = nl.ndarray((128, m), nl.bfloat16, buffer=nl.sbuf)
            nisa.tensor_scalar(st_, at, nl.multiply, float(r + 1))
            nisa.nc_matmul(ps, st_, bt)
        sb = nl.ndarray((m, n), nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=sb, src=ps)
        nisa.dma_copy(dst=out[r], src=sb)
    return out


def test_nc_matmul_fresh_psum_tile_per_iteration(rng: np.random.Generator) -> None:
    aT = rng.standard_normal((256, 64)).astype(np.float32)
    b = rng.standard_normal((256, 96)).astype(np.float32)
    out = run(matmul_reuse_kernel, aT, b, reps=3)
    qa, qb = q(aT, BF16), q(b, BF16)
    for r in range(3):
        check(out[r], q(qa * (r + 1), BF16).T @ qb, FP32, atol=matmul_atol(256) * (r + 1))


@nki.jit
def matmul_double_row_kernel(st_in, mv_in):
    """fp8 double-row: stationary [128, 2, M], moving [128, 2, N] contract over K = 256."""
    st_t = load(st_in, nl.float8_e4m3)
    mv_t = load(mv_in, nl.float8_e4m3)
    ps = nl.ndarray((st_in.shape[2], mv_in.shape[2]), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(ps, st_t, mv_t, perf_mode=nisa.matmul_perf_mode.double_row)
    return store(ps)


@FEW
@given(m=parts, n=st.integers(1, 512), seed=seeds)
def test_nc_matmul_fp8_double_row(m: int, n: int, seed: int) -> None:
    st_in, mv_in = randn(seed, (128, 2, m), 1.0), randn(seed + 1, (128, 2, n), 1.0)
    out = nki.simulate(matmul_double_row_kernel, target="trn2")(st_in, mv_in)
    ref = np.einsum("prm,prn->mn", q(st_in, FP8), q(mv_in, FP8))
    check(out, ref, FP32, atol=matmul_atol(256))


def test_nc_matmul_double_row_needs_v3(rng: np.random.Generator) -> None:
    st_in, mv_in = rng.standard_normal((128, 2, 8)), rng.standard_normal((128, 2, 8))
    with pytest.raises(Exception, match="double_row"):
        nki.simulate(matmul_double_row_kernel, target="trn1")(st_in.astype(np.float32), mv_in.astype(np.float32))


@nki.jit
def matmul_shapes_kernel(aT, b, da, db):
    at, bt = load(aT, NL_DT[da]), load(b, NL_DT[db])
    ps = nl.ndarray((min(aT.shape[1], 128), b.shape[1]), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(ps, at, bt)
    return store(ps)


@pytest.mark.parametrize(
    ("k", "m", "n", "da", "db", "match"),
    [
        (128, 160, 8, BF16, BF16, "gemm_stationary_fmax"),
        (128, 8, 513, BF16, BF16, "gemm_moving_fmax|psum"),
        (16, 8, 8, FP32, BF16, "fp32"),
    ],
)
def test_nc_matmul_rejects_illegal_tiles(
    rng: np.random.Generator, k: int, m: int, n: int, da: str, db: str, match: str
) -> None:
    aT, b = rng.standard_normal((k, m)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    with pytest.raises(Exception, match=match):
        run(matmul_shapes_kernel, aT, b, da=da, db=db)


# == nc_transpose ====================================================================================
@nki.jit
def transpose_kernel(x, dt, eng):
    p, f = x.shape
    t = load(x, NL_DT[dt])
    buf = nl.psum if eng == "tensor" else nl.sbuf
    tt = nl.ndarray((f, p), NL_DT[dt], buffer=buf)
    nisa.nc_transpose(tt, t, engine=nisa.tensor_engine if eng == "tensor" else nisa.vector_engine)
    return store(tt)


@SETTINGS
@given(dt=st.sampled_from([FP32, BF16]), p=parts, f=parts, seed=seeds)
def test_nc_transpose_tensor_engine(dt: str, p: int, f: int, seed: int) -> None:
    x = randn(seed, (p, f))
    out = run(transpose_kernel, x, dt=dt, eng="tensor")
    np.testing.assert_array_equal(as_f64(out), q(x, dt).T)


@FEW
@given(dt=dtypes_, p=st.integers(1, 32), f=st.integers(1, 32), seed=seeds)
def test_nc_transpose_vector_engine(dt: str, p: int, f: int, seed: int) -> None:
    x = randn(seed, (p, f))
    out = run(transpose_kernel, x, dt=dt, eng="vector")
    np.testing.assert_array_equal(as_f64(out), q(x, dt).T)


def test_nc_transpose_vector_engine_limit(rng: np.random.Generator) -> None:
    with pytest.raises(Exception, match="32"):
        run(transpose_kernel, rng.standard_normal((33, 8)).astype(np.float32), dt=FP32, eng="vector")


# == activation ======================================================================================
def _erf(z: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(z)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# name -> (float64 reference, positive domain only, bounded output (fp8 dst allowed))
ACT_REF: dict[str, tuple[Any, bool, bool]] = {
    "exp": (np.exp, False, False),
    "tanh": (np.tanh, False, True),
    "gelu": (lambda z: 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0))), False, True),
    "gelu_apprx_tanh": (lambda z: 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3))), False, True),
    "silu": (lambda z: z * _sigmoid(z), False, True),
    "sigmoid": (_sigmoid, False, True),
    "relu": (lambda z: np.maximum(z, 0.0), False, True),
    "square": (np.square, False, False),
    "softplus": (lambda z: np.log1p(np.exp(z)), False, True),
    "erf": (_erf, False, True),
    "copy": (lambda z: z, False, True),
    "rsqrt": (lambda z: 1.0 / np.sqrt(z), True, True),
    "sqrt": (np.sqrt, True, True),
    "log": (np.log, True, True),
    "reciprocal": (lambda z: 1.0 / z, True, True),
}


@nki.jit
def activation_kernel(x, scale_t, bias_t, fn, in_dt, out_dt, scale, use_scale_t, use_bias, from_psum):
    t = load(x, NL_DT[in_dt])
    if from_psum:
        t = to_psum(t)
    s = load(scale_t, nl.float32) if use_scale_t else scale
    b = load(bias_t, nl.float32) if use_bias else None
    y = nl.ndarray(x.shape, NL_DT[out_dt], buffer=nl.sbuf)
    nisa.activation(dst=y, op=getattr(nl, fn), data=t, bias=b, scale=s)
    return store(y)


@settings(max_examples=25, deadline=None)
@given(
    fn=st.sampled_from(sorted(ACT_REF)),
    in_dt=dtypes_,
    out_dt=dtypes_,
    p=parts,
    f=st.integers(1, 256),
    scale=st.floats(0.25, 2.0, width=32),
    use_scale_t=st.booleans(),
    use_bias=st.booleans(),
    from_psum=st.booleans(),
    seed=seeds,
)
def test_activation(
    fn: str,
    in_dt: str,
    out_dt: str,
    p: int,
    f: int,
    scale: float,
    use_scale_t: bool,
    use_bias: bool,
    from_psum: bool,
    seed: int,
) -> None:
    ref_fn, positive, bounded = ACT_REF[fn]
    if out_dt == FP8 and not bounded:
        out_dt = BF16
    r = np.random.default_rng(seed)
    if positive:
        x = r.uniform(0.25, 4.0, (p, f)).astype(np.float32)
        scale_t = r.uniform(0.5, 2.0, (p, 1)).astype(np.float32)
        bias_t = r.uniform(0.0, 1.0, (p, 1)).astype(np.float32)
    else:
        x = randn(seed, (p, f), 1.5)
        scale_t = r.uniform(-2.0, 2.0, (p, 1)).astype(np.float32)
        bias_t = r.standard_normal((p, 1)).astype(np.float32)
    kw = {"scale": scale, "use_scale_t": use_scale_t, "use_bias": use_bias, "from_psum": from_psum}
    out = run(activation_kernel, x, scale_t, bias_t, fn=fn, in_dt=in_dt, out_dt=out_dt, **kw)
    # The ISA computes data * scale + bias in fp32, then the function; the function itself in float64 here.
    z = q(x, in_dt).astype(np.float32) * (scale_t if use_scale_t else np.float32(scale))
    if use_bias:
        z = z + bias_t
    ref = ref_fn(z.astype(np.float64))
    transcendental = fn not in ("relu", "copy", "square")
    rtol = 1e-4 if out_dt == FP32 and transcendental else None
    atol = 1e-5 if out_dt == FP32 and transcendental else None
    check(out, ref, out_dt, rtol=rtol, atol=atol)


@nki.jit
def activation_reduce_kernel(x, bias_t, dt):
    """Two activations summing into one [P, 1] reduce_res: reset_reduce, then reduce (accumulate)."""
    p = x.shape[0]
    t = load(x, NL_DT[dt])
    b = load(bias_t, nl.float32)
    y1 = nl.ndarray(x.shape, NL_DT[dt], buffer=nl.sbuf)
    y2 = nl.ndarray(x.shape, NL_DT[dt], buffer=nl.sbuf)
    r1 = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)
    r = nl.ndarray((p, 1), nl.float32, buffer=nl.sbuf)
    nisa.activation(y1, nl.exp, t, bias=b, reduce_op=nl.add, reduce_res=r, reduce_cmd=nisa.reduce_cmd.reset_reduce)
    nisa.tensor_copy(dst=r1, src=r)
    nisa.activation(y2, nl.tanh, t, scale=0.5, reduce_op=nl.add, reduce_res=r, reduce_cmd=nisa.reduce_cmd.reduce)
    return store(y1), store(y2), store(r1), store(r)


@SETTINGS
@given(dt=dtypes_, p=parts, f=st.integers(1, 512), seed=seeds)
def test_activation_reduce_add(dt: str, p: int, f: int, seed: int) -> None:
    # exp stays below fp8 e4m3's largest finite value (240).
    x, bias_t = np.clip(randn(seed, (p, f), 1.0), -3, 3), np.clip(randn(seed + 1, (p, 1), 0.5), -1, 1)
    y1, y2, r1, r = run(activation_reduce_kernel, x, bias_t, dt=dt)
    z = q(x, dt).astype(np.float32)
    e = np.exp((z + bias_t).astype(np.float64))
    th = np.tanh((z * np.float32(0.5)).astype(np.float64))
    check(y1, e, dt, rtol=1e-4 if dt == FP32 else None)
    check(y2, th, dt, rtol=1e-4 if dt == FP32 else None, atol=1e-5 if dt == FP32 else None)
    # Sums of the activation outputs: summing before or after the cast to dst agree within the dtype's rtol.
    tol = RTOL[dt] if dt != FP32 else 1e-4
    s1 = e.sum(axis=1, keepdims=True)
    s2 = s1 + th.sum(axis=1, keepdims=True)
    within(r1, s1, tol * np.abs(e).sum(axis=1, keepdims=True))
    within(r, s2, tol * (np.abs(e).sum(axis=1, keepdims=True) + np.abs(th).sum(axis=1, keepdims=True)))


# == tensor_tensor ===================================================================================
TT_REF = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "divide": np.divide,
}


@nki.jit
def tensor_tensor_kernel(a, b, op, da, db, out_dt, psum_arg, eng):
    ta, tb = load(a, NL_DT[da]), load(b, NL_DT[db])
    if psum_arg == 1:
        ta = to_psum(ta)
    elif psum_arg == 2:
        tb = to_psum(tb)
    y = nl.ndarray(a.shape, NL_DT[out_dt], buffer=nl.sbuf)
    engine = {"default": nisa.engine.unknown, "vector": nisa.vector_engine, "gpsimd": nisa.gpsimd_engine}[eng]
    nisa.tensor_tensor(dst=y, data1=ta, data2=tb, op=getattr(nl, op), engine=engine)
    return store(y)


@SETTINGS
@given(
    op=st.sampled_from(sorted(TT_REF)),
    da=dtypes_,
    db=dtypes_,
    out_dt=dtypes_,
    p=parts,
    f=st.integers(1, 128),
    psum_arg=st.sampled_from([0, 1, 2]),
    eng=st.sampled_from(["default", "vector", "gpsimd"]),
    seed=seeds,
)
def test_tensor_tensor(
    op: str, da: str, db: str, out_dt: str, p: int, f: int, psum_arg: int, eng: str, seed: int
) -> None:
    if psum_arg and eng == "gpsimd":
        eng = "vector"  # GpSimd cannot reach PSUM
    a = randn(seed, (p, f), 3.0)
    b = away_from_zero(seed + 1, (p, f)) if op == "divide" else randn(seed + 1, (p, f), 3.0)
    out = run(tensor_tensor_kernel, a, b, op=op, da=da, db=db, out_dt=out_dt, psum_arg=psum_arg, eng=eng)
    check(out, TT_REF[op](q(a, da), q(b, db)), out_dt)


@FEW
@given(
    a=hnp.arrays(np.float32, (8, 16), elements=st.floats(-100, 100, width=32, allow_subnormal=False)),
    b=hnp.arrays(np.float32, (8, 16), elements=st.floats(-100, 100, width=32, allow_subnormal=False)),
    op=st.sampled_from(["add", "subtract", "multiply", "maximum", "minimum"]),
)
def test_tensor_tensor_drawn_values(a: np.ndarray, b: np.ndarray, op: str) -> None:
    out = run(tensor_tensor_kernel, a, b, op=op, da=FP32, db=FP32, out_dt=FP32, psum_arg=0, eng="default")
    # fp32 in, fp32 out: IEEE add/sub/mul/max/min are exactly the rounded float64 result.
    np.testing.assert_array_equal(as_f64(out), q(TT_REF[op](q(a, FP32), q(b, FP32)), FP32))


def test_tensor_tensor_rejects_two_psum_operands(rng: np.random.Generator) -> None:
    @nki.jit
    def both_psum(a):
        t = load(a, nl.float32)
        y = nl.ndarray(a.shape, nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=y, data1=to_psum(t), data2=to_psum(t), op=nl.add)
        return store(y)

    with pytest.raises(Exception, match="PSUM"):
        run(both_psum, rng.standard_normal((4, 4)).astype(np.float32))


# == tensor_scalar ===================================================================================
TS_OPS = ["add", "subtract", "multiply", "maximum", "minimum", "divide"]
TS_REF32 = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "divide": np.divide,
}


@nki.jit
def tensor_scalar_kernel(x, o0_t, o1_t, in_dt, out_dt, op0, c0, tile0, rev0, op1, c1, tile1, rev1, eng):
    t = load(x, NL_DT[in_dt])
    o0 = load(o0_t, nl.float32) if tile0 else c0
    o1 = (load(o1_t, nl.float32) if tile1 else c1) if op1 else None
    y = nl.ndarray(x.shape, NL_DT[out_dt], buffer=nl.sbuf)
    engine = {
        "default": nisa.engine.unknown,
        "vector": nisa.vector_engine,
        "scalar": nisa.scalar_engine,
        "gpsimd": nisa.gpsimd_engine,
    }[eng]
    nisa.tensor_scalar(
        y,
        t,
        getattr(nl, op0),
        o0,
        reverse0=rev0,
        op1=getattr(nl, op1) if op1 else None,
        operand1=o1,
        reverse1=rev1,
        engine=engine,
    )
    return store(y)


@settings(max_examples=25, deadline=None)
@given(
    in_dt=dtypes_,
    out_dt=dtypes_,
    p=parts,
    f=st.integers(1, 128),
    op0=st.sampled_from(TS_OPS),
    tile0=st.booleans(),
    rev0=st.booleans(),
    op1=st.sampled_from([None, "add", "subtract", "multiply", "maximum"]),
    tile1=st.booleans(),
    rev1=st.booleans(),
    eng=st.sampled_from(["default", "vector", "gpsimd"]),
    c=st.tuples(st.floats(0.5, 3.0, width=32), st.floats(-3.0, 3.0, width=32)),
    seed=seeds,
)
def test_tensor_scalar(
    in_dt: str,
    out_dt: str,
    p: int,
    f: int,
    op0: str,
    tile0: bool,
    rev0: bool,
    op1: str | None,
    tile1: bool,
    rev1: bool,
    eng: str,
    c: tuple[float, float],
    seed: int,
) -> None:
    x = away_from_zero(seed, (p, f))  # nonzero, so reverse divide is defined
    r = np.random.default_rng(seed + 1)
    o0_t = (r.uniform(0.5, 3.0, (p, 1)) * r.choice([-1.0, 1.0], (p, 1))).astype(np.float32)
    o1_t = r.uniform(-3.0, 3.0, (p, 1)).astype(np.float32)
    kw = {"op0": op0, "c0": c[0], "tile0": tile0, "rev0": rev0, "op1": op1, "c1": c[1], "tile1": tile1, "rev1": rev1}
    out = run(tensor_scalar_kernel, x, o0_t, o1_t, in_dt=in_dt, out_dt=out_dt, eng=eng, **kw)
    # fp32 math, one op at a time (the intermediate stays fp32), then the cast to the output dtype.
    v = q(x, in_dt).astype(np.float32)
    o0 = o0_t if tile0 else np.float32(c[0])
    v = TS_REF32[op0](o0, v) if rev0 else TS_REF32[op0](v, o0)
    if op1:
        o1 = o1_t if tile1 else np.float32(c[1])
        v = TS_REF32[op1](o1, v) if rev1 else TS_REF32[op1](v, o1)
    check(out, v.astype(np.float64), out_dt, atol=ATOL[out_dt] * 4)


@FEW
@given(p=parts, f=st.integers(1, 128), dt=dtypes_, seed=seeds)
def test_tensor_scalar_on_scalar_engine(p: int, f: int, dt: str, seed: int) -> None:
    """trn2's Scalar engine runs (multiply, add)."""
    x, o0_t = randn(seed, (p, f)), randn(seed + 1, (p, 1))
    kw = {"op0": "multiply", "c0": 0.0, "tile0": True, "rev0": False, "op1": "add", "c1": -1.25}
    out = run(tensor_scalar_kernel, x, o0_t, o0_t, in_dt=dt, out_dt=dt, tile1=False, rev1=False, eng="scalar", **kw)
    ref = q(x, dt).astype(np.float32) * o0_t + np.float32(-1.25)
    check(out, ref.astype(np.float64), dt)


# == tensor_reduce ===================================================================================
RED_REF = {"add": np.sum, "maximum": np.max, "minimum": np.min}


@nki.jit
def tensor_reduce_kernel(x, op, axes, keepdims, negate, in_dt, out_dt, out_shape):
    t = load(x, NL_DT[in_dt])
    y = nl.ndarray(out_shape, NL_DT[out_dt], buffer=nl.sbuf)
    nisa.tensor_reduce(dst=y, op=getattr(nl, op), data=t, axis=axes, negate=negate, keepdims=keepdims)
    return store(y)


@settings(max_examples=25, deadline=None)
@given(
    op=st.sampled_from(sorted(RED_REF)),
    layout=st.sampled_from(["2d", "3d-both", "3d-last", "3d-neg"]),
    keepdims=st.booleans(),
    negate=st.booleans(),
    in_dt=dtypes_,
    out_dt=st.sampled_from([FP32, BF16]),
    p=parts,
    a=st.integers(1, 8),
    b=st.integers(1, 64),
    seed=seeds,
)
def test_tensor_reduce(
    op: str,
    layout: str,
    keepdims: bool,
    negate: bool,
    in_dt: str,
    out_dt: str,
    p: int,
    a: int,
    b: int,
    seed: int,
) -> None:
    shape, axes = {
        "2d": ((p, a * b), (1,)),
        "3d-both": ((p, a, b), (1, 2)),
        "3d-last": ((p, a, b), (2,)),
        "3d-neg": ((p, a, b), (-1,)),
    }[layout]
    x = randn(seed, shape, 3.0)
    ref = RED_REF[op](q(x, in_dt), axis=axes, keepdims=keepdims)
    if negate:
        ref = -ref
    out_shape = ref.shape if ref.ndim >= 2 else (p, 1)  # on-chip tiles stay 2-D
    axis_arg = axes[0] if len(axes) == 1 else list(axes)
    kw = {"keepdims": keepdims, "negate": negate, "in_dt": in_dt, "out_dt": out_dt}
    out = run(tensor_reduce_kernel, x, op=op, axes=axis_arg, out_shape=tuple(out_shape), **kw)
    ref = ref.reshape(out_shape)
    if op != "add":  # max/min pick an input value: exact after the cast
        np.testing.assert_array_equal(as_f64(out), q(ref, out_dt))
        return
    # A sum's rounding error scales with the sum of magnitudes, not with the result.
    mag = np.abs(q(x, in_dt)).sum(axis=axes).reshape(out_shape)
    within(out, ref, RTOL[out_dt] * mag + 1e-6)


# == tensor_copy =====================================================================================
@nki.jit
def tensor_copy_kernel(x, src_dt, dst_dt, eng, from_psum):
    t = load(x, NL_DT[src_dt])
    if from_psum:
        t = to_psum(t, NL_DT[src_dt])
    y = nl.ndarray(x.shape, NL_DT[dst_dt], buffer=nl.sbuf)
    engine = {
        "default": nisa.engine.unknown,
        "vector": nisa.vector_engine,
        "scalar": nisa.scalar_engine,
        "gpsimd": nisa.gpsimd_engine,
    }[eng]
    nisa.tensor_copy(dst=y, src=t, engine=engine)
    return store(y)


@SETTINGS
@given(
    x=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24),
        elements=st.floats(-200, 200, width=32, allow_subnormal=False),
    ),
    src_dt=dtypes_,
    dst_dt=dtypes_,
    eng=st.sampled_from(["default", "vector", "scalar", "gpsimd"]),
    from_psum=st.booleans(),
)
def test_tensor_copy(x: np.ndarray, src_dt: str, dst_dt: str, eng: str, from_psum: bool) -> None:
    if eng == "gpsimd":
        from_psum = False  # GpSimd cannot reach PSUM
    out = run(tensor_copy_kernel, x, src_dt=src_dt, dst_dt=dst_dt, eng=eng, from_psum=from_psum)
    np.testing.assert_array_equal(as_f64(out), q(q(x, src_dt), dst_dt))


def test_tensor_copy_gpsimd_rejects_psum(rng: np.random.Generator) -> None:
    with pytest.raises(Exception, match=r"(?i)gpsimd"):
        x = rng.standard_normal((4, 4)).astype(np.float32)
        run(tensor_copy_kernel, x, src_dt=FP32, dst_dt=FP32, eng="gpsimd", from_psum=True)


# == memset ==========================================================================================
@nki.jit
def memset_kernel(x, value, dt, eng, cols):
    """memset the whole tile, then a column range with a second value (partial writes)."""
    p, f = x.shape
    y = nl.ndarray((p, f), NL_DT[dt] if dt in NL_DT else getattr(nl, dt), buffer=nl.sbuf)
    engine = {"default": nisa.engine.unknown, "vector": nisa.vector_engine, "gpsimd": nisa.gpsimd_engine}[eng]
    nisa.memset(dst=y, value=value, engine=engine)
    nisa.memset(dst=y[:, 0:cols], value=-value, engine=engine)
    out = nl.ndarray((p, f), y.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=y)
    return out


@FEW
@given(
    p=parts,
    f=st.integers(1, 64),
    data=st.data(),
    dt=st.sampled_from([*ALL, "int32"]),
    eng=st.sampled_from(["default", "vector", "gpsimd"]),
)
def test_memset(p: int, f: int, data: st.DataObject, dt: str, eng: str) -> None:
    if dt == "int32":
        value: float = data.draw(st.integers(-1000, 1000))
    else:
        value = data.draw(st.floats(-200, 200, width=32))
    cols = data.draw(st.integers(0, f))
    x = np.zeros((p, f), np.float32)
    out = run(memset_kernel, x, value=value, dt=dt, eng=eng, cols=cols)
    ref = np.full((p, f), value, np.float64)
    ref[:, :cols] = -value
    expected = ref.astype(np.int32) if dt == "int32" else q(ref, dt)
    np.testing.assert_array_equal(as_f64(out), as_f64(expected))


# == iota ============================================================================================
@nki.jit
def iota_kernel(x, pattern, offset, cm, dt, flat):
    p = x.shape[0]
    nums = [n for _, n in pattern]
    shape = (p, int(np.prod(nums))) if flat else (p, *nums)
    y = nl.ndarray(shape, getattr(nl, dt), buffer=nl.sbuf)
    nisa.iota(y, pattern, offset=offset, channel_multiplier=cm)
    out = nl.ndarray(shape, y.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=y)
    return out


def iota_reference(p: int, pattern: list[list[int]], offset: int, cm: int) -> np.ndarray:
    """value = offset + p * cm + sum_k i_k * step_k, the free multi-index running row-major."""
    nums = [n for _, n in pattern]
    out = np.empty((p, int(np.prod(nums))), np.int64)
    for part in range(p):
        for k, idx in enumerate(itertools.product(*(range(n) for n in nums))):
            out[part, k] = offset + part * cm + sum(i * s for i, (s, _) in zip(idx, pattern))
    return out


@SETTINGS
@given(
    p=parts,
    pattern=st.lists(st.tuples(st.integers(-4, 4), st.integers(1, 6)).map(list), min_size=1, max_size=4),
    offset=st.one_of(st.integers(-64, 64), st.integers(-(2**30), 2**30)),
    cm=st.integers(-3, 3),
    dt=st.sampled_from(["int32", "float32", "bfloat16"]),
    flat=st.booleans(),
)
def test_iota(p: int, pattern: list[list[int]], offset: int, cm: int, dt: str, flat: bool) -> None:
    if dt == "bfloat16":
        offset = offset % 128  # exact in fp32, so int32 -> fp32 -> bf16 rounds once
    out = run(iota_kernel, np.zeros((p, 1), np.float32), pattern=pattern, offset=offset, cm=cm, dt=dt, flat=flat)
    ref = iota_reference(p, pattern, offset, cm)
    expected = ref.astype(np.int32) if dt == "int32" else q(ref, FP32 if dt == "float32" else BF16)
    np.testing.assert_array_equal(as_f64(out).reshape(p, -1), as_f64(expected))


def test_iota_documented_examples() -> None:
    """The examples of nki_api.md: f, p, b + p*L + f, H-1-f, p + P*f."""
    P, N = 16, 8
    cases = [
        ([[1, N]], 0, 0, lambda p, f: f),
        ([[0, N]], 0, 1, lambda p, f: p),
        ([[1, N]], 5, N, lambda p, f: 5 + p * N + f),
        ([[-1, N]], N - 1, 0, lambda p, f: N - 1 - f),
        ([[P, N]], 0, 1, lambda p, f: p + P * f),
    ]
    pp, ff = np.meshgrid(np.arange(P), np.arange(N), indexing="ij")
    for pattern, offset, cm, fn in cases:
        out = run(iota_kernel, np.zeros((P, 1), np.float32), pattern=pattern, offset=offset, cm=cm, dt="int32", flat=1)
        np.testing.assert_array_equal(out, fn(pp, ff))


# == affine_select ===================================================================================
@nki.jit
def affine_select_kernel(x, dt, offset, fill, causal):
    p, f = x.shape
    t = load(x, NL_DT[dt])
    y = nl.ndarray((p, f), NL_DT[dt], buffer=nl.sbuf)
    if causal:  # keep where offset + p - f >= 0
        nisa.affine_select(y, [[-1, f]], 1, t, fill, cmp_op=nl.greater_equal, offset=offset)
    else:  # default cmp_op (equal): keep the diagonal shifted by offset only
        nisa.affine_select(y, [[-1, f]], 1, t, fill, offset=offset)
    return store(y)


@SETTINGS
@given(
    dt=dtypes_,
    p=parts,
    f=st.integers(1, 128),
    offset_frac=st.floats(-1, 1),
    fill=st.sampled_from([-np.inf, -30000.0, 0.0]),
    causal=st.booleans(),
    seed=seeds,
)
def test_affine_select(dt: str, p: int, f: int, offset_frac: float, fill: float, causal: bool, seed: int) -> None:
    if dt == FP8 and fill != 0.0:
        fill = -100.0  # e4m3 has no inf and tops out at 448
    offset = int(offset_frac * f)
    x = randn(seed, (p, f))
    out = run(affine_select_kernel, x, dt=dt, offset=offset, fill=fill, causal=causal)
    pp, ff = np.meshgrid(np.arange(p), np.arange(f), indexing="ij")
    v = offset + pp - ff
    keep = v >= 0 if causal else v == 0
    np.testing.assert_array_equal(as_f64(out), np.where(keep, q(x, dt), q(np.float32(fill), dt)))


# == bn_stats + bn_aggr ==============================================================================
@nki.jit
def bn_kernel(x, dt, chunks):
    p, total = x.shape
    f = total // chunks
    t = load(x, NL_DT[dt])
    stats = nl.ndarray((p, 6 * chunks), nl.float32, buffer=nl.sbuf)
    for c in nl.affine_range(chunks):
        nisa.bn_stats(dst=stats[:, 6 * c : 6 * (c + 1)], data=t[:, c * f : (c + 1) * f])
    mv = nl.ndarray((p, 2), nl.float32, buffer=nl.sbuf)
    nisa.bn_aggr(dst=mv, data=stats)
    return store(mv)


@SETTINGS
@given(
    dt=dtypes_,
    p=parts,
    chunks=st.integers(1, 3),
    f=st.integers(1, 512),
    shift=st.floats(-4, 4),
    seed=seeds,
)
def test_bn_stats_aggr_mean_var(dt: str, p: int, chunks: int, f: int, shift: float, seed: int) -> None:
    x = randn(seed, (p, chunks * f), 2.0) + np.float32(shift)
    out = run(bn_kernel, x, dt=dt, chunks=chunks)
    xq = q(x, dt)
    mean, var = xq.mean(axis=1), xq.var(axis=1)
    np.testing.assert_allclose(as_f64(out[:, 0]), mean, rtol=1e-5, atol=1e-5 * (np.abs(xq).max() + 1))
    np.testing.assert_allclose(as_f64(out[:, 1]), var, rtol=1e-4, atol=1e-5 * (xq**2).max() + 1e-6)


def test_bn_stats_rejects_wide_tiles(rng: np.random.Generator) -> None:
    with pytest.raises(Exception, match="bn_stats"):
        run(bn_kernel, rng.standard_normal((4, 513)).astype(np.float32), dt=FP32, chunks=1)


# == select / nl.where ===============================================================================
@nki.jit
def select_kernel(pred, a, b, dt, pred_dt, scalar_false, use_where):
    tp = load(pred, getattr(nl, pred_dt))
    ta = load(a, NL_DT[dt])
    on_false = -7.5 if scalar_false else load(b, NL_DT[dt])
    if use_where:
        return store(nl.where(tp, ta, on_false))
    y = nl.ndarray(a.shape, NL_DT[dt], buffer=nl.sbuf)
    nisa.select(y, tp, ta, on_false)
    return store(y)


@SETTINGS
@given(
    dt=dtypes_,
    pred_dt=st.sampled_from(["uint8", "float32"]),
    p=parts,
    f=st.integers(1, 128),
    scalar_false=st.booleans(),
    use_where=st.booleans(),
    seed=seeds,
)
def test_select_and_where(
    dt: str, pred_dt: str, p: int, f: int, scalar_false: bool, use_where: bool, seed: int
) -> None:
    r = np.random.default_rng(seed)
    pred = (r.random((p, f)) < 0.5).astype(np.float32)
    a, b = randn(seed + 1, (p, f)), randn(seed + 2, (p, f))
    kw = {"dt": dt, "pred_dt": pred_dt, "scalar_false": scalar_false, "use_where": use_where}
    out = run(select_kernel, pred, a, b, **kw)
    false_vals = np.full((p, f), -7.5) if scalar_false else q(b, dt)
    np.testing.assert_array_equal(as_f64(out), q(np.where(pred != 0, q(a, dt), false_vals), dt))


# == legacy functional calls =========================================================================
@nki.jit
def legacy_kernel(x, w, v):
    """Legacy `neuronxcc.nki.isa` calls return tiles; results must match the reference like nki.isa's."""
    p, f = x.shape
    tx, tw, tv = nl.load(x), nl.load(w), nl.load(v)
    act = lisa.activation(nl.exp, tx, scale=0.5, bias=tv)
    tt = lisa.tensor_tensor(tx, tw, nl.multiply)
    ts = lisa.tensor_scalar(tx, nl.multiply, tv, op1=nl.add, operand1=1.5)
    red = lisa.tensor_reduce(nl.maximum, tx, axis=1, negate=True)
    cp = lisa.tensor_copy(tx, dtype=nl.bfloat16)
    ms = lisa.memset((p, f), 3.25, nl.float32)
    io = lisa.iota(nl.arange(p)[:, None] * 3 + nl.arange(f)[None, :], nl.int32)
    i_p, i_f = nl.mgrid[0:p, 0:f]
    sel = lisa.affine_select(i_p >= i_f, tx, -1000.0)
    tr = lisa.nc_transpose(tx)  # [f, p]; PSUM for a wide tile
    mm = lisa.nc_matmul(tx, tw)  # x.T @ w: [f, f]
    st_ = lisa.bn_stats(tx, dtype=nl.float32)
    mv = lisa.bn_aggr(st_)
    outs = [act, tt, ts, red, cp, ms, io, sel, tr, mm, mv]
    return tuple(store(o, o.dtype if o.dtype == nl.int32 else nl.float32) for o in outs)


@pytest.mark.parametrize("dt", [FP32, BF16])
def test_legacy_functional_calls(rng: np.random.Generator, dt: str) -> None:
    p, f = 64, 48
    x = rng.standard_normal((p, f)).astype(np.float32).astype(REF_DT[dt])
    w = rng.standard_normal((p, f)).astype(np.float32).astype(REF_DT[dt])
    v = rng.uniform(0.5, 2.0, (p, 1)).astype(np.float32)
    act, tt, ts, red, cp, ms, io, sel, tr, mm, mv = run(legacy_kernel, x, w, v)
    xq, wq = as_f64(x), as_f64(w)
    x32 = np.asarray(x).astype(np.float32)
    trans_tol = 1e-4 if dt == FP32 else None
    check(act, np.exp((x32 * np.float32(0.5) + v).astype(np.float64)), dt, rtol=trans_tol)
    check(tt, xq * wq, dt)
    check(ts, (x32 * v + np.float32(1.5)).astype(np.float64), dt)
    check(red, -xq.max(axis=1, keepdims=True), dt)
    np.testing.assert_array_equal(as_f64(cp), q(xq, BF16))
    np.testing.assert_array_equal(ms, np.full((p, f), 3.25))
    np.testing.assert_array_equal(io, np.arange(p)[:, None] * 3 + np.arange(f)[None, :])
    pp, ff = np.meshgrid(np.arange(p), np.arange(f), indexing="ij")
    np.testing.assert_array_equal(as_f64(sel), np.where(pp >= ff, xq, q(np.float32(-1000.0), dt)))
    np.testing.assert_array_equal(as_f64(tr), xq.T)
    check(mm, xq.T @ wq, FP32, atol=matmul_atol(p))
    np.testing.assert_allclose(as_f64(mv[:, 0]), xq.mean(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(as_f64(mv[:, 1]), xq.var(axis=1), rtol=1e-4, atol=1e-5)
