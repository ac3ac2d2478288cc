"""Kernels written the way public legacy NKI code (`neuronxcc.nki`) is written, checked against numpy.

The kernels follow the legacy tutorials (tensor add, tiled matmul, softmax, rmsnorm, transpose): index
expressions from nl.arange/nl.mgrid, `mask=` for ragged edges, functional calls that return tiles,
`psum += nl.matmul(...)` accumulation, block dims with nl.par_dim, nki.simulate_kernel and nki.benchmark.
"""

from __future__ import annotations

import math
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki

trnsim.nki.install_aliases()

import neuronxcc.nki as nki  # noqa: E402
import neuronxcc.nki.isa as nisa  # noqa: E402
import neuronxcc.nki.language as nl  # noqa: E402

BF16 = ml_dtypes.bfloat16
DTYPES = [np.float32, BF16]
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(BF16): 2e-2}


def rand(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, low: float = -1.0, high: float = 1.0):
    return rng.uniform(low, high, size=shape).astype(np.float32).astype(dtype)


def f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(np.float32)


def assert_close(out: np.ndarray, ref: np.ndarray, dtype: Any, scale: float = 1.0) -> None:
    """Relative tolerance of the dtype; absolute tolerance relative to the reference's magnitude."""
    out = np.asarray(out)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert out.dtype == np.dtype(dtype), (out.dtype, dtype)
    rtol = RTOL[np.dtype(dtype)] * scale
    np.testing.assert_allclose(f32(out), f32(ref), rtol=rtol, atol=rtol * float(np.abs(f32(ref)).max()))


# -- (a) tensor add on an SPMD grid ------------------------------------------------------------------
@nki.jit
def tensor_add_kernel(a_input, b_input):
    """Legacy tensor_addition tutorial: each program adds one [128, 512] tile."""
    c_output = nl.ndarray(a_input.shape, dtype=a_input.dtype, buffer=nl.shared_hbm)
    offset_i_x = nl.program_id(0) * 128
    offset_i_y = nl.program_id(1) * 512
    ix = offset_i_x + nl.arange(128)[:, None]
    iy = offset_i_y + nl.arange(512)[None, :]
    a_tile = nl.load(a_input[ix, iy])
    b_tile = nl.load(b_input[ix, iy])
    c_tile = a_tile + b_tile
    nl.store(c_output[ix, iy], value=c_tile)
    return c_output


@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_add_grid(rng: np.random.Generator, dtype: Any) -> None:
    a = rand(rng, (256, 1024), dtype)
    b = rand(rng, (256, 1024), dtype)
    out = tensor_add_kernel[2, 2](a, b)
    assert isinstance(out, np.ndarray)
    assert_close(out, (f32(a) + f32(b)).astype(dtype), dtype)


@nki.jit
def tensor_add_1d_grid_kernel(a_input, b_input):
    """One grid axis over rows, nl.add and explicit nl.arange free index over the full width."""
    c_output = nl.ndarray(a_input.shape, dtype=a_input.dtype, buffer=nl.shared_hbm)
    i_p = nl.program_id(0) * 128 + nl.arange(128)[:, None]
    i_f = nl.arange(a_input.shape[1])[None, :]
    c_tile = nl.add(nl.load(a_input[i_p, i_f]), nl.load(b_input[i_p, i_f]))
    nl.store(c_output[i_p, i_f], value=c_tile)
    return c_output


def test_tensor_add_grid_via_simulate_kernel(rng: np.random.Generator) -> None:
    a = rand(rng, (384, 256), np.float32)
    b = rand(rng, (384, 256), np.float32)
    out = nki.simulate_kernel(tensor_add_1d_grid_kernel[3], a, b)
    np.testing.assert_array_equal(out, a + b)


# -- (b) tiled matmul, legacy tutorial style -----------------------------------------------------------
@nki.jit
def matmul_basic_kernel(lhsT, rhs):
    """Legacy nki_matmul_basic_: one [64, 128] x [128, 512] product indexed with nl.mgrid."""
    result = nl.ndarray((64, 512), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    i_lhsT_p, i_lhsT_f = nl.mgrid[0:128, 0:64]
    i_rhs_p, i_rhs_f = nl.mgrid[0:128, 0:512]
    i_out_p, i_out_f = nl.mgrid[0:64, 0:512]
    lhs_tile = nl.load(lhsT[i_lhsT_p, i_lhsT_f])
    rhs_tile = nl.load(rhs[i_rhs_p, i_rhs_f])
    result_psum = nl.matmul(lhs_tile, rhs_tile, transpose_x=True)
    result_sbuf = nl.copy(result_psum, dtype=result.dtype)
    nl.store(result[i_out_p, i_out_f], value=result_sbuf)
    return result


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_basic_mgrid(rng: np.random.Generator, dtype: Any) -> None:
    lhsT = rand(rng, (128, 64), dtype)
    rhs = rand(rng, (128, 512), dtype)
    out = nki.simulate_kernel(matmul_basic_kernel, lhsT, rhs)
    assert_close(out, (f32(lhsT).T @ f32(rhs)).astype(dtype), dtype, scale=4)


@nki.jit
def matmul_no_transpose_kernel(x, y):
    """nl.matmul(x, y) without transpose_x: x [M, K] is transposed on TensorE first. mgrid fields .p/.x."""
    M, K = x.shape
    _, N = y.shape
    result = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    ix = nl.mgrid[0:M, 0:K]
    iy = nl.mgrid[0:K, 0:N]
    io = nl.mgrid[0:M, 0:N]
    x_tile = nl.load(x[ix.p, ix.x])
    y_tile = nl.load(y[iy.p, iy.x])
    res = nl.matmul(x_tile, y_tile)
    nl.store(result[io.p, io.x], value=nl.copy(res))
    return result


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_no_transpose(rng: np.random.Generator, dtype: Any) -> None:
    x = rand(rng, (96, 128), dtype)
    y = rand(rng, (128, 384), dtype)
    out = nki.simulate_kernel(matmul_no_transpose_kernel, x, y)
    np.testing.assert_allclose(out, f32(x) @ f32(y), rtol=1e-5, atol=1e-4)


@nki.jit
def matmul_tiled_kernel(lhsT, rhs):
    """Legacy nki_matmul_tiled_: PSUM accumulation over K tiles with `res_psum += nl.matmul(...)`."""
    K, M = lhsT.shape
    K_, N = rhs.shape
    assert K == K_, "lhsT and rhs must have the same contraction dimension"
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    TILE_M = nl.tile_size.gemm_stationary_fmax  # 128
    TILE_K = nl.tile_size.pmax  # 128
    TILE_N = nl.tile_size.gemm_moving_fmax  # 512
    for m in nl.affine_range(M // TILE_M):
        for n in nl.affine_range(N // TILE_N):
            res_psum = nl.zeros((TILE_M, TILE_N), nl.float32, buffer=nl.psum)
            for k in nl.affine_range(K // TILE_K):
                lhsT_tile = nl.ndarray((TILE_K, TILE_M), dtype=lhsT.dtype, buffer=nl.sbuf)
                rhs_tile = nl.ndarray((TILE_K, TILE_N), dtype=rhs.dtype, buffer=nl.sbuf)
                lhsT_tile[...] = nl.load(lhsT[k * TILE_K : (k + 1) * TILE_K, m * TILE_M : (m + 1) * TILE_M])
                rhs_tile[...] = nl.load(rhs[k * TILE_K : (k + 1) * TILE_K, n * TILE_N : (n + 1) * TILE_N])
                res_psum += nl.matmul(lhsT_tile[...], rhs_tile[...], transpose_x=True)
            res_sb = nl.copy(res_psum, dtype=result.dtype)
            nl.store(result[m * TILE_M : (m + 1) * TILE_M, n * TILE_N : (n + 1) * TILE_N], value=res_sb)
    return result


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_tiled(rng: np.random.Generator, dtype: Any) -> None:
    lhsT = rand(rng, (384, 256), dtype)
    rhs = rand(rng, (384, 1024), dtype)
    out = nki.simulate_kernel(matmul_tiled_kernel, lhsT, rhs)
    assert_close(out, (f32(lhsT).T @ f32(rhs)).astype(dtype), dtype, scale=4)


@nki.jit
def matmul_blocked_kernel(lhsT, rhs):
    """Block dims: whole K strips of lhsT/rhs loaded into [TILES_K, par_dim(128), ...] SBUF tensors."""
    K, M = lhsT.shape
    _, N = rhs.shape
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    TILE_M, TILE_K, TILE_N = 128, 128, 512
    TILES_K = K // TILE_K
    TILES_M = M // TILE_M
    TILES_N = N // TILE_N
    lhsT_tiles = nl.ndarray((TILES_K, nl.par_dim(TILE_K), M), dtype=lhsT.dtype, buffer=nl.sbuf)
    rhs_tiles = nl.ndarray((TILES_K, nl.par_dim(TILE_K), N), dtype=rhs.dtype, buffer=nl.sbuf)
    for bk in nl.affine_range(TILES_K):
        lhsT_tiles[bk] = nl.load(lhsT[bk * TILE_K : (bk + 1) * TILE_K, :])
        rhs_tiles[bk] = nl.load(rhs[bk * TILE_K : (bk + 1) * TILE_K, :])
    result_tiles = nl.ndarray((TILES_M, TILES_N, nl.par_dim(TILE_M), TILE_N), dtype=result.dtype, buffer=nl.sbuf)
    for bm in nl.affine_range(TILES_M):
        for bn in nl.affine_range(TILES_N):
            res_tile = nl.zeros((TILE_M, TILE_N), dtype=nl.float32, buffer=nl.psum)
            for bk in nl.affine_range(TILES_K):
                res_tile[...] += nisa.nc_matmul(
                    lhsT_tiles[bk, :, TILE_M * bm : TILE_M * (bm + 1)],
                    rhs_tiles[bk, :, TILE_N * bn : TILE_N * (bn + 1)],
                )
            result_tiles[bm, bn, :, :] = nl.copy(res_tile, dtype=result.dtype)
    for bm in nl.affine_range(TILES_M):
        for bn in nl.affine_range(TILES_N):
            nl.store(
                result[bm * TILE_M : (bm + 1) * TILE_M, bn * TILE_N : (bn + 1) * TILE_N], value=result_tiles[bm, bn]
            )
    return result


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_blocked_par_dim(rng: np.random.Generator, dtype: Any) -> None:
    lhsT = rand(rng, (256, 256), dtype)
    rhs = rand(rng, (256, 1024), dtype)
    out = nki.simulate_kernel(matmul_blocked_kernel, lhsT, rhs)
    assert_close(out, (f32(lhsT).T @ f32(rhs)).astype(dtype), dtype, scale=4)


def test_psum_accumulation_issues_one_matmul_per_k_tile(rng: np.random.Generator) -> None:
    """`psum += nl.matmul(...)` accumulates in place: K/128 matmuls per output tile and no PSUM copies."""
    lhsT = rand(rng, (384, 128), np.float32)
    rhs = rand(rng, (384, 512), np.float32)
    prof = trnsim.nki.profile(matmul_tiled_kernel)(lhsT, rhs)
    ops = [i.opcode.key for i in prof.instructions]
    assert ops.count("nc_matmul") == 3
    assert ops.count("nc_transpose") == 0
    np.testing.assert_allclose(prof.outputs, lhsT.T @ rhs, rtol=1e-4, atol=1e-4)

    # `res_tile[...] += nisa.nc_matmul(...)` also accumulates in place (no PSUM-to-PSUM copy back)
    lhsT = rand(rng, (256, 256), np.float32)
    rhs = rand(rng, (256, 1024), np.float32)
    prof = trnsim.nki.profile(matmul_blocked_kernel)(lhsT, rhs)
    ops = [i.opcode.key for i in prof.instructions]
    assert ops.count("nc_matmul") == 2 * 2 * 2
    assert ops.count("tensor_copy") == 2 * 2  # one nl.copy per output tile
    np.testing.assert_allclose(prof.outputs, lhsT.T @ rhs, rtol=1e-4, atol=1e-4)


# -- (c) softmax ---------------------------------------------------------------------------------------
@nki.jit
def softmax_kernel(in_tensor):
    """Row softmax in 128-row tiles: max, subtract, exp, sum, divide."""
    out_tensor = nl.ndarray(in_tensor.shape, dtype=in_tensor.dtype, buffer=nl.shared_hbm)
    rows, cols = in_tensor.shape
    i_p = nl.arange(128)[:, None]
    i_f = nl.arange(cols)[None, :]
    for i in nl.affine_range(rows // 128):
        in_tile = nl.load(in_tensor[i * 128 + i_p, i_f])
        max_vals = nl.max(in_tile, axis=[1], keepdims=True)
        shifted = nl.subtract(in_tile, max_vals)
        exp_vals = nl.exp(shifted)
        sum_exp = nl.sum(exp_vals, axis=[1], keepdims=True)
        out_tile = nl.divide(exp_vals, sum_exp)
        nl.store(out_tensor[i * 128 + i_p, i_f], value=out_tile)
    return out_tensor


@nki.jit
def softmax_builtin_kernel(in_tensor):
    out_tensor = nl.ndarray(in_tensor.shape, dtype=in_tensor.dtype, buffer=nl.shared_hbm)
    for i in nl.affine_range(in_tensor.shape[0] // 128):
        tile = nl.load(in_tensor[i * 128 : (i + 1) * 128, :])
        nl.store(out_tensor[i * 128 : (i + 1) * 128, :], value=nl.softmax(tile, axis=1))
    return out_tensor


@nki.jit
def softmax_isa_kernel(in_tensor):
    """Legacy functional ISA calls with numpy ops: tensor_reduce(np.max), activation_reduce(np.add), tensor_scalar."""
    out_tensor = nl.ndarray(in_tensor.shape, dtype=in_tensor.dtype, buffer=nl.shared_hbm)
    for i in nl.affine_range(in_tensor.shape[0] // 128):
        tile = nl.load(in_tensor[i * 128 : (i + 1) * 128, :])
        neg_max = nisa.tensor_reduce(np.max, data=tile, axis=(1,), negate=True, keepdims=True, dtype=nl.float32)
        sums = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        exp_tile = nisa.activation_reduce(
            op=nl.exp, data=tile, bias=neg_max, reduce_op=np.add, reduce_res=sums, dtype=nl.float32
        )
        inv = nl.reciprocal(sums)
        res = nisa.tensor_scalar(exp_tile, np.multiply, inv, dtype=in_tensor.dtype)
        nl.store(out_tensor[i * 128 : (i + 1) * 128, :], value=res)
    return out_tensor


def softmax_ref(x: np.ndarray) -> np.ndarray:
    x = f32(x)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    "kernel", [softmax_kernel, softmax_builtin_kernel, softmax_isa_kernel], ids=["explicit", "nl.softmax", "isa"]
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax(rng: np.random.Generator, dtype: Any, kernel: Any) -> None:
    x = rand(rng, (256, 384), dtype, -4.0, 4.0)
    out = nki.simulate_kernel(kernel, x)
    ref = softmax_ref(x)
    assert out.dtype == np.dtype(dtype)
    # In bf16 the explicit kernel rounds x - max (|.| up to 8, so up to 2^-6 absolute, which exp turns
    # into ~1.6% relative), exp and the quotient: up to ~2.5% in all, so allow 2x the one-rounding bound.
    rtol = 2 * RTOL[np.dtype(dtype)] if np.dtype(dtype) == np.dtype(BF16) else RTOL[np.dtype(dtype)]
    np.testing.assert_allclose(f32(out), ref, rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(f32(out).sum(axis=1), 1.0, rtol=RTOL[np.dtype(dtype)] * 4)


# -- (d) rmsnorm with masks for ragged rows ------------------------------------------------------------
@nki.jit
def rmsnorm_kernel(a_tensor, g_tensor):
    """Legacy rmsnorm tutorial: rows in 128-row tiles, the last tile masked (rows need not be a multiple of 128)."""
    out_tensor = nl.ndarray(a_tensor.shape, dtype=a_tensor.dtype, buffer=nl.shared_hbm)
    assert a_tensor.shape[1] == g_tensor.shape[0]
    ix = nl.arange(128)[:, None]
    iw = nl.arange(1)[:, None]
    iy = nl.arange(a_tensor.shape[1])[None, :]
    num_rows = a_tensor.shape[0]
    g_tile = nl.load(g_tensor.reshape((1, g_tensor.shape[0]))[iw, iy])
    for i in nl.affine_range(math.ceil(a_tensor.shape[0] / 128)):
        a_tile = nl.load(a_tensor[i * 128 + ix, iy], mask=(i * 128 + ix < num_rows))
        in_square = nl.square(a_tile)
        square_sum = nl.sum(in_square, axis=[1])
        mean = square_sum / a_tensor.shape[1]
        rms_reciprocal = nl.rsqrt(mean)
        out_tile = nl.multiply(a_tile, rms_reciprocal)
        g_bcast = g_tile.broadcast_to((128, g_tensor.shape[0]))
        out_tile[...] = nl.multiply(out_tile, g_bcast, mask=(i * 128 + ix < num_rows))
        nl.store(out_tensor[i * 128 + ix, iy], value=out_tile, mask=(i * 128 + ix < num_rows))
    return out_tensor


@nki.jit
def rmsnorm_masked_ops_kernel(a_tensor, g_tensor):
    """Every op masked, nl.broadcast_to, nl.mean-free arithmetic with an epsilon."""
    out_tensor = nl.ndarray(a_tensor.shape, dtype=a_tensor.dtype, buffer=nl.shared_hbm)
    R, H = a_tensor.shape
    ix = nl.arange(128)[:, None]
    iy = nl.arange(H)[None, :]
    g_tile = nl.load(g_tensor.reshape((1, H))[nl.arange(1)[:, None], iy])
    g_bcast = nl.broadcast_to(g_tile, shape=(128, H))
    for i in nl.affine_range((R + 127) // 128):
        rows = i * 128 + ix < R
        a_tile = nl.load(a_tensor[i * 128 + ix, iy], mask=rows, dtype=nl.float32)
        sq = nl.square(a_tile, mask=rows)
        ss = nl.sum(sq, axis=[1], keepdims=True, mask=rows)
        ms = nl.multiply(ss, 1.0 / H, mask=rows)
        inv = nl.rsqrt(nl.add(ms, 1e-6, mask=rows), mask=rows)
        normed = nl.multiply(a_tile, inv, mask=rows)
        out_tile = nl.multiply(normed, g_bcast, mask=rows, dtype=a_tensor.dtype)
        nl.store(out_tensor[i * 128 + ix, iy], value=out_tile, mask=rows)
    return out_tensor


def rmsnorm_ref(a: np.ndarray, g: np.ndarray, eps: float = 0.0) -> np.ndarray:
    a32 = f32(a)
    return a32 / np.sqrt(np.mean(a32 * a32, axis=1, keepdims=True) + eps) * f32(g)[None, :]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [300, 128])
def test_rmsnorm_ragged_rows(rng: np.random.Generator, dtype: Any, rows: int) -> None:
    a = rand(rng, (rows, 256), dtype)
    g = rand(rng, (256,), dtype, 0.5, 1.5)
    out = nki.simulate_kernel(rmsnorm_kernel, a, g)
    assert out.dtype == np.dtype(dtype)
    assert np.isfinite(f32(out)).all()  # masked-out rows of the last tile never reach HBM
    np.testing.assert_allclose(f32(out), rmsnorm_ref(a, g), rtol=RTOL[np.dtype(dtype)] * 2, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_all_ops_masked(rng: np.random.Generator, dtype: Any) -> None:
    a = rand(rng, (200, 192), dtype)
    g = rand(rng, (192,), dtype, 0.5, 1.5)
    prof = trnsim.nki.profile(rmsnorm_masked_ops_kernel)(a, g)
    out = prof.outputs
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(f32(out), rmsnorm_ref(a, g, 1e-6), rtol=RTOL[np.dtype(dtype)] * 2, atol=1e-5)
    # every op on the ragged tile is masked, so nothing reads the unloaded rows
    assert not [w for w in prof.warnings if "uninitialised" in w]


# -- (e) 2-D transpose of a tiled matrix ---------------------------------------------------------------
@nki.jit
def transpose_isa_kernel(in_tensor):
    """out[j, i] = in[i, j] in 128x128 tiles with nisa.nc_transpose (TensorE, into PSUM)."""
    M, N = in_tensor.shape
    out_tensor = nl.ndarray((N, M), dtype=in_tensor.dtype, buffer=nl.shared_hbm)
    i_p, i_f = nl.mgrid[0:128, 0:128]
    for m in nl.affine_range(M // 128):
        for n in nl.affine_range(N // 128):
            tile = nl.load(in_tensor[m * 128 + i_p, n * 128 + i_f])
            t_psum = nisa.nc_transpose(tile)
            t_sb = nl.copy(t_psum, dtype=in_tensor.dtype)
            nl.store(out_tensor[n * 128 + i_p, m * 128 + i_f], value=t_sb)
    return out_tensor


@nki.jit
def transpose_nl_kernel(in_tensor):
    """The same with nl.transpose and slices, plus a 32x32 VectorE transpose of the top-left corner."""
    M, N = in_tensor.shape
    out_tensor = nl.ndarray((N, M), dtype=in_tensor.dtype, buffer=nl.shared_hbm)
    corner = nl.ndarray((32, 32), dtype=in_tensor.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // 128):
        for n in nl.affine_range(N // 128):
            tile = nl.load(in_tensor[m * 128 : (m + 1) * 128, n * 128 : (n + 1) * 128])
            out_sb = nl.ndarray((128, 128), dtype=in_tensor.dtype, buffer=nl.sbuf)
            out_sb[...] = nl.copy(nl.transpose(tile))
            nl.store(out_tensor[n * 128 : (n + 1) * 128, m * 128 : (m + 1) * 128], value=out_sb)
    small = nl.load(in_tensor[0:32, 0:32])
    nl.store(corner, value=nisa.nc_transpose(small, engine=nisa.vector_engine))
    return out_tensor, corner


@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose_nc_transpose(rng: np.random.Generator, dtype: Any) -> None:
    x = rand(rng, (256, 384), dtype)
    out = nki.simulate_kernel(transpose_isa_kernel, x)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, x.T)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose_nl_transpose(rng: np.random.Generator, dtype: Any) -> None:
    x = rand(rng, (384, 256), dtype)
    out, corner = nki.simulate_kernel(transpose_nl_kernel, x)
    np.testing.assert_array_equal(out, x.T)
    np.testing.assert_array_equal(corner, x[:32, :32].T)


# -- (f) simulate_kernel and benchmark -----------------------------------------------------------------
def test_simulate_kernel_and_benchmark_latency(rng: np.random.Generator) -> None:
    lhsT = rand(rng, (256, 128), BF16)
    rhs = rand(rng, (256, 512), BF16)
    out = nki.simulate_kernel(matmul_tiled_kernel, lhsT, rhs)
    assert_close(out, (f32(lhsT).T @ f32(rhs)).astype(BF16), BF16, scale=4)

    bench_func = nki.benchmark(warmup=5, iters=10)(matmul_tiled_kernel)
    bench_func(lhsT, rhs)
    latency_res = bench_func.benchmark_result.nc_latency
    p50 = latency_res.get_latency_percentile(50)
    prof = trnsim.nki.profile(matmul_tiled_kernel)(lhsT, rhs)
    assert p50 == prof.latency_us
    assert p50 > 0
    assert latency_res.get_latency_percentile(99) == p50  # the simulation is deterministic


def test_benchmark_on_a_grid(rng: np.random.Generator) -> None:
    a = rand(rng, (256, 1024), np.float32)
    b = rand(rng, (256, 1024), np.float32)
    bench_func = nki.benchmark(warmup=2, iters=3)(tensor_add_kernel)
    bench_func_ = bench_func[2, 2]
    bench_func_(a, b)
    p50 = bench_func_.benchmark_result.nc_latency.get_latency_percentile(50)
    assert p50 == trnsim.nki.profile(tensor_add_kernel[2, 2])(a, b).latency_us

    # benchmarking an already-gridded kernel, as `nki.benchmark(...)(kernel[grid])`
    gridded = nki.benchmark(warmup=2, iters=3)(tensor_add_kernel[2, 2])
    gridded(a, b)
    assert gridded.benchmark_result.nc_latency.get_latency_percentile(50) == p50


TIMING_CASES = {
    "tensor_add": (tensor_add_kernel[2, 2], [(256, 1024), (256, 1024)]),
    "matmul_tiled": (matmul_tiled_kernel, [(256, 128), (256, 1024)]),
    "matmul_blocked": (matmul_blocked_kernel, [(256, 256), (256, 1024)]),
    "softmax": (softmax_kernel, [(256, 384)]),
    "rmsnorm_masked": (rmsnorm_kernel, [(300, 256), (256,)]),
    "rmsnorm_all_masked": (rmsnorm_masked_ops_kernel, [(200, 192), (192,)]),
    "transpose": (transpose_nl_kernel, [(256, 384)]),
}


@pytest.mark.parametrize("case", list(TIMING_CASES))
def test_timing_mode_matches_functional(rng: np.random.Generator, case: str) -> None:
    """Index expressions and masks give the same instruction stream and timeline with or without values."""
    kernel, shapes = TIMING_CASES[case]
    func = trnsim.nki.profile(kernel)(*[rand(rng, s, BF16) for s in shapes])
    timing = trnsim.nki.profile(kernel, mode="timing")(*[nki.TensorSpec(s, nl.bfloat16) for s in shapes])
    assert timing.latency_us == func.latency_us
    np.testing.assert_array_equal(timing.timeline.slice_start, func.timeline.slice_start)
    np.testing.assert_array_equal(timing.timeline.slice_end, func.timeline.slice_end)
