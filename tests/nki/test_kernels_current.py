"""Kernels in the current NKI API (`nki`, dst-first `nki.isa` calls), checked against numpy and torch.

Also: torch tensors in and out, trnsim.nki.profile, timing-only runs from TensorSpecs (same timeline as
the functional run), and target selection by argument, set_target and NEURON_PLATFORM_TARGET_OVERRIDE.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki
import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import SpecError, UsageError

BF16 = ml_dtypes.bfloat16
DTYPES = [np.float32, BF16]
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(BF16): 2e-2}


def rand(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, low: float = -1.0, high: float = 1.0):
    return rng.uniform(low, high, size=shape).astype(np.float32).astype(dtype)


def f32(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.float32)


def assert_close(out: np.ndarray, ref: np.ndarray, dtype: Any, scale: float = 1.0) -> None:
    """Relative tolerance of the dtype; absolute tolerance relative to the reference's magnitude."""
    out = np.asarray(out)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert out.dtype == np.dtype(dtype), (out.dtype, dtype)
    rtol = RTOL[np.dtype(dtype)] * scale
    np.testing.assert_allclose(f32(out), f32(ref), rtol=rtol, atol=rtol * float(np.abs(f32(ref)).max()))


# -- tensor add on a 2-D SPMD grid ----------------------------------------------------------------------
@nki.jit
def tensor_add_kernel(a, b):
    """Each program adds one [128, 512] tile: (rows / 128) x (cols / 512) programs."""
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    r0 = nl.program_id(0) * 128
    c0 = nl.program_id(1) * 512
    ta = nl.ndarray((128, 512), a.dtype, buffer=nl.sbuf)
    tb = nl.ndarray((128, 512), b.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=ta, src=a[nl.ds(r0, 128), nl.ds(c0, 512)])
    nisa.dma_copy(dst=tb, src=b[nl.ds(r0, 128), nl.ds(c0, 512)])
    tc = nl.ndarray((128, 512), a.dtype, buffer=nl.sbuf)
    nisa.tensor_tensor(dst=tc, data1=ta, data2=tb, op=nl.add)
    nisa.dma_copy(dst=out[nl.ds(r0, 128), nl.ds(c0, 512)], src=tc)
    return out


@nki.jit
def tensor_add_load_store_kernel(a, b):
    """nl.load/nl.store over a 1-D grid, each program looping over column tiles."""
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    rows = slice(nl.program_id(0) * 128, (nl.program_id(0) + 1) * 128)
    for j in nl.affine_range(a.shape[1] // 256):
        cols = nl.ds(j * 256, 256)
        ta = nl.load(a[rows, cols])
        tb = nl.load(b[rows, cols])
        tc = nl.ndarray((128, 256), a.dtype, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=tc, data1=ta, data2=tb, op=nl.add)
        nl.store(out[rows, cols], tc)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_add_grid(rng: np.random.Generator, dtype: Any) -> None:
    a = rand(rng, (256, 1024), dtype)
    b = rand(rng, (256, 1024), dtype)
    out = nki.simulate(tensor_add_kernel[2, 2])(a, b)
    assert_close(out, (f32(a) + f32(b)).astype(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_add_load_store(rng: np.random.Generator, dtype: Any) -> None:
    a = rand(rng, (384, 512), dtype)
    b = rand(rng, (384, 512), dtype)
    out = nki.simulate(tensor_add_load_store_kernel[3])(a, b)
    assert_close(out, (f32(a) + f32(b)).astype(dtype), dtype)


# -- tiled matmul accumulating in PSUM ------------------------------------------------------------------
@nki.jit
def matmul_kernel(aT, b):
    """out[M, N] = aT.T @ b; nc_matmul auto-accumulates over the K tiles into one PSUM tile."""
    K, M = aT.shape
    _, N = b.shape
    out = nl.ndarray((M, N), aT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // 128):
        for n in nl.affine_range(N // 512):
            ps = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
            for k in nl.affine_range(K // 128):
                at = nl.ndarray((128, 128), aT.dtype, buffer=nl.sbuf)
                bt = nl.ndarray((128, 512), b.dtype, buffer=nl.sbuf)
                nisa.dma_copy(dst=at, src=aT[nl.ds(k * 128, 128), nl.ds(m * 128, 128)])
                nisa.dma_copy(dst=bt, src=b[nl.ds(k * 128, 128), nl.ds(n * 512, 512)])
                nisa.nc_matmul(ps, at, bt)
            sb = nl.ndarray((128, 512), aT.dtype, buffer=nl.sbuf)
            nisa.tensor_copy(dst=sb, src=ps)
            nisa.dma_copy(dst=out[nl.ds(m * 128, 128), nl.ds(n * 512, 512)], src=sb)
    return out


@nki.jit
def matmul_explicit_accumulate_kernel(aT, b):
    """accumulate=False on the first K tile and True after; the K strip of b stays resident in SBUF."""
    K, M = aT.shape
    _, N = b.shape
    KT = K // 128
    out = nl.ndarray((M, N), nl.float32, buffer=nl.shared_hbm)
    b_sb = nl.ndarray((128, KT, N), b.dtype, buffer=nl.sbuf)
    for k in nl.static_range(KT):
        nisa.dma_copy(dst=b_sb[:, k, :], src=b[k * 128 : (k + 1) * 128, :])
    for m in nl.static_range(M // 128):
        a_sb = nl.ndarray((128, KT, 128), aT.dtype, buffer=nl.sbuf)
        for k in nl.static_range(KT):
            nisa.dma_copy(dst=a_sb[:, k, :], src=aT[k * 128 : (k + 1) * 128, m * 128 : (m + 1) * 128])
        for n in nl.static_range(N // 512):
            ps = nl.ndarray((128, 512), nl.float32, buffer=nl.psum)
            for k in nl.static_range(KT):
                nisa.nc_matmul(ps, a_sb[:, k, :], b_sb[:, k, n * 512 : (n + 1) * 512], accumulate=k > 0)
            res = nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf)
            nisa.tensor_copy(dst=res, src=ps)
            nisa.dma_copy(dst=out[m * 128 : (m + 1) * 128, n * 512 : (n + 1) * 512], src=res)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_tiled(rng: np.random.Generator, dtype: Any) -> None:
    aT = rand(rng, (384, 256), dtype)
    b = rand(rng, (384, 1024), dtype)
    out = nki.simulate(matmul_kernel)(aT, b)
    assert_close(out, (f32(aT).T @ f32(b)).astype(dtype), dtype, scale=4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_explicit_accumulate(rng: np.random.Generator, dtype: Any) -> None:
    aT = rand(rng, (256, 256), dtype)
    b = rand(rng, (256, 512), dtype)
    prof = nki.profile(matmul_explicit_accumulate_kernel)(aT, b)
    # fp32 PSUM accumulation of exactly representable products: only the summation order differs
    np.testing.assert_allclose(prof.outputs, f32(aT).T @ f32(b), rtol=1e-5, atol=1e-4)
    assert [i.opcode.key for i in prof.instructions].count("nc_matmul") == 2 * 2


# -- softmax --------------------------------------------------------------------------------------------
@nki.jit
def softmax_kernel(x):
    """exp(x - max) with the negated max as ScalarE bias and the row sum from its reduction."""
    R, C = x.shape
    out = nl.ndarray((R, C), x.dtype, buffer=nl.shared_hbm)
    for i in nl.affine_range(R // 128):
        t = nl.ndarray((128, C), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[i * 128 : (i + 1) * 128, :])
        neg_max = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(dst=neg_max, op=nl.maximum, data=t, axis=1, negate=True, keepdims=True)
        e = nl.ndarray((128, C), nl.float32, buffer=nl.sbuf)
        total = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
        nisa.activation(
            dst=e,
            op=nl.exp,
            data=t,
            bias=neg_max,
            reduce_op=nl.add,
            reduce_res=total,
            reduce_cmd=nisa.reduce_cmd.reset_reduce,
        )
        inv = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
        nisa.reciprocal(dst=inv, data=total)
        res = nl.ndarray((128, C), x.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=res, data=e, op0=nl.multiply, operand0=inv)
        nisa.dma_copy(dst=out[i * 128 : (i + 1) * 128, :], src=res)
    return out


def softmax_ref(x: np.ndarray) -> np.ndarray:
    x = f32(x)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax(rng: np.random.Generator, dtype: Any) -> None:
    x = rand(rng, (256, 320), dtype, -4.0, 4.0)
    out = nki.simulate(softmax_kernel)(x)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(f32(out), softmax_ref(x), rtol=RTOL[np.dtype(dtype)], atol=1e-6)


def test_softmax_torch_in_torch_out(rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(rand(rng, (128, 256), np.float32, -3.0, 3.0))
    out = nki.simulate(softmax_kernel)(x)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.softmax(x, dim=1), rtol=1e-5, atol=1e-6)


# -- rmsnorm, ragged rows handled by slicing ------------------------------------------------------------
@nki.jit
def rmsnorm_kernel(a, g, eps=1e-6):
    """out = a / sqrt(mean(a^2) + eps) * g. The last row tile is partial: every op works on t[0:rows]."""
    R, H = a.shape
    out = nl.ndarray((R, H), a.dtype, buffer=nl.shared_hbm)
    # g broadcast over partitions by a K=1 matmul with a row of ones: g_b[p, h] = 1 * g[h]
    g_row = nl.ndarray((1, H), g.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=g_row, src=g.reshape((1, H)))
    ones = nl.ndarray((1, 128), g.dtype, buffer=nl.sbuf)
    nisa.memset(dst=ones, value=1.0)
    g_ps = nl.ndarray((128, H), nl.float32, buffer=nl.psum)
    nisa.nc_matmul(g_ps, ones, g_row)
    g_b = nl.ndarray((128, H), nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=g_b, src=g_ps)
    for i in nl.affine_range(math.ceil(R / 128)):
        rows = min(128, R - i * 128)
        t = nl.ndarray((128, H), a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t[0:rows, :], src=a[nl.ds(i * 128, rows), :])
        sq = nl.ndarray((128, H), nl.float32, buffer=nl.sbuf)
        ss = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
        nisa.activation(
            dst=sq[0:rows],
            op=nl.square,
            data=t[0:rows],
            reduce_op=nl.add,
            reduce_res=ss[0:rows],
            reduce_cmd=nisa.reduce_cmd.reset_reduce,
        )
        ms = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=ms[0:rows], data=ss[0:rows], op0=nl.multiply, operand0=1.0 / H, op1=nl.add, operand1=eps)
        rs = nl.ndarray((128, 1), nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=rs[0:rows], op=nl.rsqrt, data=ms[0:rows])
        normed = nl.ndarray((128, H), nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=normed[0:rows], data=t[0:rows], op0=nl.multiply, operand0=rs[0:rows])
        res = nl.ndarray((128, H), a.dtype, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=res[0:rows], data1=normed[0:rows], data2=g_b[0:rows], op=nl.multiply)
        nisa.dma_copy(dst=out[nl.ds(i * 128, rows), :], src=res[0:rows, :])
    return out


def rmsnorm_ref(a: np.ndarray, g: np.ndarray, eps: float) -> np.ndarray:
    a32 = f32(a)
    return a32 / np.sqrt(np.mean(a32 * a32, axis=1, keepdims=True) + eps) * f32(g)[None, :]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [300, 256, 77])
def test_rmsnorm_ragged_rows(rng: np.random.Generator, dtype: Any, rows: int) -> None:
    a = rand(rng, (rows, 384), dtype)
    g = rand(rng, (384,), dtype, 0.5, 1.5)
    prof = nki.profile(rmsnorm_kernel)(a, g)
    out = prof.outputs
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(f32(out), rmsnorm_ref(a, g, 1e-6), rtol=RTOL[np.dtype(dtype)] * 2, atol=1e-5)
    assert not prof.warnings  # the partial tile is sliced, so no op touches rows nobody loaded


def test_rmsnorm_torch_bf16(rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    a = torch.from_numpy(rand(rng, (200, 256), np.float32)).to(torch.bfloat16)
    g = torch.from_numpy(rand(rng, (256,), np.float32, 0.5, 1.5)).to(torch.bfloat16)
    out = nki.simulate(rmsnorm_kernel)(a, g, eps=1e-5)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16 and tuple(out.shape) == (200, 256)
    ref = torch.nn.functional.rms_norm(a.float(), (256,), weight=g.float(), eps=1e-5)
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=1e-2)


# -- transpose ------------------------------------------------------------------------------------------
@nki.jit
def transpose_kernel(x):
    """out = x.T in 128x128 tiles through TensorE (SBUF -> PSUM -> SBUF)."""
    M, N = x.shape
    out = nl.ndarray((N, M), x.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // 128):
        for n in nl.affine_range(N // 128):
            t = nl.ndarray((128, 128), x.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=x[nl.ds(m * 128, 128), nl.ds(n * 128, 128)])
            tp = nl.ndarray((128, 128), x.dtype, buffer=nl.psum)
            nisa.nc_transpose(dst=tp, data=t)
            ts = nl.ndarray((128, 128), x.dtype, buffer=nl.sbuf)
            nisa.tensor_copy(dst=ts, src=tp)
            nisa.dma_copy(dst=out[nl.ds(n * 128, 128), nl.ds(m * 128, 128)], src=ts)
    return out


@nki.jit
def transpose_vector_kernel(x):
    """out = x.T in 32x32 blocks on VectorE, SBUF -> SBUF."""
    M, N = x.shape
    out = nl.ndarray((N, M), x.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // 32):
        t = nl.ndarray((32, N), x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[m * 32 : (m + 1) * 32, :])
        for n in nl.affine_range(N // 32):
            ts = nl.ndarray((32, 32), x.dtype, buffer=nl.sbuf)
            nisa.nc_transpose(dst=ts, data=t[:, n * 32 : (n + 1) * 32], engine=nisa.vector_engine)
            nisa.dma_copy(dst=out[n * 32 : (n + 1) * 32, m * 32 : (m + 1) * 32], src=ts)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose(rng: np.random.Generator, dtype: Any) -> None:
    x = rand(rng, (256, 384), dtype)
    out = nki.simulate(transpose_kernel)(x)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, x.T)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose_vector_engine(rng: np.random.Generator, dtype: Any) -> None:
    x = rand(rng, (64, 96), dtype)
    out = nki.simulate(transpose_vector_kernel)(x)
    np.testing.assert_array_equal(out, x.T)


# -- torch in, torch out --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_torch_tensors_in_and_out(rng: np.random.Generator, dtype: str) -> None:
    torch = pytest.importorskip("torch")
    tdt = getattr(torch, dtype)
    a = torch.from_numpy(rand(rng, (256, 1024), np.float32)).to(tdt)
    b = torch.from_numpy(rand(rng, (256, 1024), np.float32)).to(tdt)
    out = nki.simulate(tensor_add_kernel[2, 2])(a, b)
    assert isinstance(out, torch.Tensor) and out.dtype == tdt and tuple(out.shape) == (256, 1024)
    torch.testing.assert_close(out, a + b, rtol=0, atol=0)

    aT = torch.from_numpy(rand(rng, (256, 128), np.float32)).to(tdt)
    w = torch.from_numpy(rand(rng, (256, 512), np.float32)).to(tdt)
    mm = nki.simulate(matmul_kernel)(aT, w)
    assert isinstance(mm, torch.Tensor) and mm.dtype == tdt
    ref = (aT.float().T @ w.float()).to(tdt)
    tol = 1e-4 if dtype == "float32" else 2e-2
    torch.testing.assert_close(mm.float(), ref.float(), rtol=tol, atol=tol * float(ref.float().abs().max()))


# -- trnsim.nki.profile, timing mode --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_profile_outputs_match(rng: np.random.Generator, dtype: Any) -> None:
    aT = rand(rng, (256, 256), dtype)
    b = rand(rng, (256, 512), dtype)
    prof = trnsim.nki.profile(matmul_kernel, target="trn2")(aT, b)
    assert prof.target == "trn2" and prof.mode == "functional"
    assert_close(prof.outputs, (f32(aT).T @ f32(b)).astype(dtype), dtype, scale=4)
    np.testing.assert_array_equal(prof.outputs, nki.simulate(matmul_kernel)(aT, b))
    assert prof.latency_us > 0
    assert prof.flops == 2 * 256 * 256 * 512
    assert prof.instruction_count == len(prof.instructions)


CASES = {
    "tensor_add": (tensor_add_kernel[2, 2], [((256, 1024), "a"), ((256, 1024), "a")], {}),
    "matmul": (matmul_kernel, [((256, 256), "a"), ((256, 1024), "a")], {}),
    "softmax": (softmax_kernel, [((256, 320), "a")], {}),
    "rmsnorm": (rmsnorm_kernel, [((300, 256), "a"), ((256,), "a")], {}),
    "transpose": (transpose_kernel, [((256, 384), "a")], {}),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_timing_mode_matches_functional(rng: np.random.Generator, case: str, dtype: Any) -> None:
    kernel, arg_shapes, kwargs = CASES[case]
    args = [rand(rng, shape, dtype) for shape, _ in arg_shapes]
    specs = [trnsim.nki.TensorSpec(shape, dtype) for shape, _ in arg_shapes]
    func = trnsim.nki.profile(kernel, target="trn2")(*args, **kwargs)
    timing = trnsim.nki.profile(kernel, target="trn2", mode="timing")(*specs, **kwargs)
    assert timing.mode == "timing"
    assert timing.latency_us == func.latency_us
    assert timing.instruction_count == func.instruction_count
    np.testing.assert_array_equal(timing.timeline.slice_start, func.timeline.slice_start)
    np.testing.assert_array_equal(timing.timeline.slice_end, func.timeline.slice_end)
    np.testing.assert_array_equal(timing.timeline.slice_unit, func.timeline.slice_unit)
    out_spec = timing.outputs
    assert isinstance(out_spec, trnsim.nki.TensorSpec)
    assert out_spec.shape == np.asarray(func.outputs).shape
    assert out_spec.dtype == np.asarray(func.outputs).dtype


def test_tensor_spec_needs_timing_mode() -> None:
    spec = trnsim.nki.TensorSpec((128, 256), "float32")
    with pytest.raises(UsageError, match="TensorSpec"):
        trnsim.nki.profile(softmax_kernel)(spec)


# -- target selection -----------------------------------------------------------------------------------
@pytest.fixture
def clean_target(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("NEURON_PLATFORM_TARGET_OVERRIDE", raising=False)
    trnsim.nki.set_target(None)
    yield
    trnsim.nki.set_target(None)


def test_target_selection(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, clean_target: None) -> None:
    x = rand(rng, (128, 256), np.float32, -3.0, 3.0)
    ref = softmax_ref(x)

    def run(target: Any = None) -> Any:
        prof = trnsim.nki.profile(softmax_kernel, target=target)(x)
        np.testing.assert_allclose(prof.outputs, ref, rtol=1e-5, atol=1e-6)
        return prof

    assert run().target == "trn2"  # the default
    for name in ("trn1", "inf2", "trn2", "trn3"):
        assert run(name).target == name
    assert run("trn1").spec.core.nc_version == 2

    trnsim.nki.set_target("trn1")
    assert run().target == "trn1"
    assert run("trn3").target == "trn3"  # an explicit argument wins over set_target
    monkeypatch.setenv("NEURON_PLATFORM_TARGET_OVERRIDE", "inf2")
    assert run().target == "trn1"  # set_target wins over the environment
    trnsim.nki.set_target(None)
    assert run().target == "inf2"
    assert run("trn2").target == "trn2"
    monkeypatch.setenv("NEURON_PLATFORM_TARGET_OVERRIDE", "trn3")
    assert run().target == "trn3"
    monkeypatch.setenv("NEURON_PLATFORM_TARGET_OVERRIDE", "gen2")  # the Neuron tools' generation names
    assert run().target == "trn1"
    monkeypatch.delenv("NEURON_PLATFORM_TARGET_OVERRIDE")
    assert run().target == "trn2"


def test_target_changes_timing_not_values(rng: np.random.Generator, clean_target: None) -> None:
    aT = rand(rng, (256, 128), BF16)
    b = rand(rng, (256, 512), BF16)
    p1 = trnsim.nki.profile(matmul_kernel, target="trn1")(aT, b)
    p2 = trnsim.nki.profile(matmul_kernel, target="trn2")(aT, b)
    np.testing.assert_array_equal(p1.outputs, p2.outputs)
    assert p1.target == "trn1" and p2.target == "trn2"
    assert p1.latency_us != p2.latency_us


def test_set_target_rejects_unknown(clean_target: None) -> None:
    with pytest.raises(SpecError, match="trn9"):
        trnsim.nki.set_target("trn9")
    assert trnsim.nki.get_target_spec().name == "trn2"
