"""matmul, batched_matmul and linear: the library's GEMM kernels.

All three run the blocked, pipelined GEMM of `_gemm` (block sizes from `_gemm_plan`, chosen from the
target); this file says what S and V are and how each block's PSUM accumulators leave the chip:

- matmul / batched_matmul: out = a @ b with S = a (transposed on chip), V = b (already K-major).
  Each [128, 512] accumulator is cast on its way out of PSUM by whichever of VectorE / ScalarE is
  expected to finish first (_evacuate).
- linear: out = act(x @ w.T + bias) + residual, computed transposed, out.T = w @ x.T, so that the
  weight is the stationary side (S = w, V = x): for decode shapes the weight is streamed exactly once
  in long contiguous rows, every step is a weight tile against the tiny x, and the output features
  land on the partitions, which makes the bias a per-partition operand of ScalarE. The epilogue is
  fused into the PSUM evacuation: one ScalarE activation(data * 1 + bias) per accumulator, a TensorE
  transpose back to [tokens, features], and one VectorE add of the residual that also casts and
  empties that PSUM tile.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from functools import partial
from math import prod
from typing import Any

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.errors import DtypeError, UsageError
from trnsim.kernels._buffers import Ring
from trnsim.kernels._common import (
    FLOAT_DTYPES,
    cdiv,
    core,
    moving_fmax,
    pmax,
    require,
    require_dtype,
)
from trnsim.kernels._evacuate import Evacuator
from trnsim.kernels._gemm import Block, GemmJob, run_gemm
from trnsim.kernels._gemm_operands import KMajor, RowMajor, dma, k_steps, tiles
from trnsim.kernels._gemm_plan import GemmProblem, blocks_in_flight, plan_gemm
from trnsim.nki.context import outside_location
from trnsim.nki.loop_template import Templates

# linear's activation names (torch spelling where it has one) -> the ScalarE function
ACTIVATIONS = {
    "relu": nl.relu,
    "gelu": nl.gelu,
    "gelu_apprx_tanh": nl.gelu_apprx_tanh,
    "gelu_tanh": nl.gelu_apprx_tanh,
    "gelu_apprx_sigmoid": nl.gelu_apprx_sigmoid,
    "silu": nl.silu,
    "sigmoid": nl.sigmoid,
    "tanh": nl.tanh,
}


@nki.jit
def matmul(a, b, out_dtype=None):
    """out[M, N] = a[M, K] @ b[K, N]; out is a's dtype (bf16 for fp8 inputs) unless out_dtype says."""
    _check_pair("matmul", a, b, 2)
    m, k = a.shape
    n = b.shape[1]
    out = nl.ndarray((m, n), _result_dtype(a, b, out_dtype), buffer=nl.shared_hbm)
    plan, double_row = _plan(m, n, k, a, b, out.dtype, v_row_major=False)
    evac = Evacuator(plan.transient_banks)
    epilogue = _StoreBlocks(out.dtype, plan, _depth(plan, k, double_row), evac)
    job = GemmJob(RowMajor(a), KMajor(b), m, n, k, finish=partial(epilogue.finish, out))
    run_gemm([job], plan, double_row, evac)
    return out


@nki.jit
def batched_matmul(a, b, out_dtype=None):
    """out[B, M, N] = a[B, M, K] @ b[B, K, N]: every batch through one pipeline, so loads run across them."""
    _check_pair("batched_matmul", a, b, 3)
    require(a.shape[0] == b.shape[0], f"batched_matmul: batch sizes differ: a has {a.shape[0]}, b has {b.shape[0]}")
    nb, m, k = a.shape
    n = b.shape[2]
    out = nl.ndarray((nb, m, n), _result_dtype(a, b, out_dtype), buffer=nl.shared_hbm)
    plan, double_row = _plan(m, n, k, a, b, out.dtype, v_row_major=False, jobs=nb)
    evac = Evacuator(plan.transient_banks)
    epilogue = _StoreBlocks(out.dtype, plan, _depth(plan, k, double_row), evac)
    jobs = [GemmJob(RowMajor(a[i]), KMajor(b[i]), m, n, k, partial(epilogue.finish, out[i])) for i in range(nb)]
    run_gemm(jobs, plan, double_row, evac)
    return out


@nki.jit
def linear(x, w, bias=None, activation=None, residual=None, out_dtype=None):
    """torch.nn.functional.linear plus epilogue: act(x @ w.T + bias) + residual, cast to out_dtype.

    x [..., K], w [N, K], bias [N], residual [..., N]; activation is None or a name in ACTIVATIONS.
    """
    require(
        x.ndim >= 1 and w.ndim == 2, f"linear takes x [..., K] and w [N, K], got {list(x.shape)} and {list(w.shape)}"
    )
    k = x.shape[-1]
    n = w.shape[0]
    require(w.shape[1] == k, f"linear: x has {k} input features, w [N, K] has {w.shape[1]}", rule="contraction")
    m = prod(x.shape[:-1])
    require(m > 0 and n > 0 and k > 0, f"linear needs non-empty operands, got x {list(x.shape)}, w {list(w.shape)}")
    _check_dtypes("linear", x, w)
    act = _activation(activation)
    x2 = x if x.ndim == 2 else x.reshape((m, k))
    out_shape = (*x.shape[:-1], n)
    out = nl.ndarray((m, n), _result_dtype(x, w, out_dtype), buffer=nl.shared_hbm)
    if bias is not None:
        require(tuple(bias.shape) == (n,), f"linear: bias must be [{n}], got {list(bias.shape)}")
        require_dtype("bias", bias, FLOAT_DTYPES, "linear")
    res2 = None
    if residual is not None:
        require(
            tuple(residual.shape) == out_shape,
            f"linear: residual must be {list(out_shape)} (the output's shape), got {list(residual.shape)}",
        )
        require_dtype("residual", residual, FLOAT_DTYPES, "linear")
        res2 = residual if residual.ndim == 2 else residual.reshape((m, n))
    # Rows of the out.T GEMM are output features (w rows), columns are tokens (x rows).
    plan, double_row = _plan(n, m, k, w, x, out.dtype, v_row_major=True)
    evac = Evacuator(plan.transient_banks)
    bias_cols = None if bias is None else _bias_columns(bias, evac)
    epilogue = _LinearEpilogue(out, act, bias_cols, res2, evac, plan, _depth(plan, k, double_row))
    job = GemmJob(RowMajor(w), RowMajor(x2), n, m, k, finish=epilogue.finish, prefetch=epilogue.prefetch)
    run_gemm([job], plan, double_row, evac)
    return out if x.ndim == 2 else out.reshape(out_shape)


# -- epilogues ----------------------------------------------------------------------------------------
class _StoreBlocks:
    """finish() for matmul: cast each accumulator into the block's output rows, stored a little later."""

    def __init__(self, out_dtype, plan, depth, evac):
        self.rows = Ring(depth * plan.strip_tiles, (pmax(), plan.v_block), out_dtype)
        self.turn = 0
        self.evac = evac
        self.templates = Templates()  # a store is one DMA: a loop body of its own (nki/loop_template.py)

    def finish(self, out, blk: Block, acc: list[list[Any]], _prefetched: Any) -> list[Any]:
        stores = []
        for i, (m0, msz) in enumerate(blk.row_tiles):
            o = self.rows.slot(self.turn)[:msz, : blk.csz]
            self.turn += 1
            for j, (n0, nsz) in enumerate(blk.col_tiles):
                self.evac(o[:, n0 - blk.c0 : n0 - blk.c0 + nsz], acc[i][j])
            dst = out[m0 : m0 + msz, blk.c0 : blk.c0 + blk.csz]
            stores.append(partial(self.templates.run, "store", (dst, o), dma, dst, o))
        return stores


class _LinearEpilogue:
    """out[tokens, features] from out.T accumulators [features, tokens]: bias + activation on ScalarE,
    a TensorE transpose back, the residual add (and cast) on VectorE as the transpose leaves PSUM."""

    def __init__(self, out, act, bias_cols, residual, evac, plan, depth):
        self.out = out
        self.act = act
        self.bias_cols = bias_cols
        self.residual = residual
        self.evac = evac
        # ScalarE's result stays 16-bit where the output is (what torch rounds to), else fp32
        self.ydtype = out.dtype if out.dtype in (dtypes.bfloat16, dtypes.float16) else nl.float32
        # Buffers for `depth` blocks in flight, used in turn (see _buffers): activation results per
        # accumulator; per 128 tokens, the transposed-back rows and the residual rows of a strip.
        p = pmax()
        strip = plan.strip_tiles * p
        tokens = cdiv(plan.v_block, p)
        mf = moving_fmax()
        self.ys = Ring(depth * plan.strip_tiles * cdiv(plan.v_block, mf), (p, min(plan.v_block, mf)), self.ydtype)
        self.staged = Ring(depth * tokens, (p, strip), out.dtype)
        self.res_rows = None if residual is None else Ring(depth * tokens, (p, strip), residual.dtype)
        self.turns = {"ys": 0, "staged": 0, "res": 0}

    def _next(self, ring: Ring, key: str) -> Any:
        self.turns[key] += 1
        return ring.slot(self.turns[key] - 1)

    def prefetch(self, blk: Block) -> list[Any] | None:
        """The residual rows of the block, [tokens, features of the strip], loaded while it computes."""
        if self.residual is None or self.res_rows is None:
            return None
        rows = []
        for m0, msz in tiles(blk.c0, blk.csz, pmax()):
            r = self._next(self.res_rows, "res")[:msz, : blk.rsz]
            nisa.dma_copy(dst=r, src=self.residual[m0 : m0 + msz, blk.r0 : blk.r0 + blk.rsz])
            rows.append(r)
        return rows

    def finish(self, blk: Block, acc: list[list[Any]], residual_rows: list[Any] | None) -> list[Any]:
        """ScalarE empties the accumulators now; the TensorE transposes back come a few steps later, so
        that the in-order TensorE does not stall on ScalarE while it has matmuls to do."""
        p = pmax()
        ys = []
        for i, (f0, fsz) in enumerate(blk.row_tiles):
            bias = None if self.bias_cols is None else self.bias_cols[:fsz, f0 // p : f0 // p + 1]
            row = []
            for j, (_, msz) in enumerate(blk.col_tiles):
                y = self._next(self.ys, "ys")[:fsz, :msz]
                nisa.activation(dst=y, op=self.act, data=acc[i][j], bias=bias)
                self.evac.charge("scalar", msz)
                row.append(y)
            ys.append(row)
        return [partial(self._transpose_back, blk, ys, residual_rows)]

    def _transpose_back(self, blk: Block, ys: list[list[Any]], residual_rows: list[Any] | None) -> list[Any]:
        """out[tokens, features] = y.T (+ residual), cast as VectorE or ScalarE empties PSUM; stores later."""
        p = pmax()
        token_tiles = tiles(blk.c0, blk.csz, p)
        staged = [self._next(self.staged, "staged")[:msz, : blk.rsz] for _, msz in token_tiles]
        for i, (f0, fsz) in enumerate(blk.row_tiles):
            fs = slice(f0 - blk.r0, f0 - blk.r0 + fsz)
            for j, (m0, msz) in enumerate(blk.col_tiles):
                for t0, tsz in tiles(m0, msz, p):
                    back = self.evac.transient((tsz, fsz), self.ydtype)
                    nisa.nc_transpose(dst=back, data=ys[i][j][:, t0 - m0 : t0 - m0 + tsz])
                    c = (t0 - blk.c0) // p
                    if residual_rows is None:
                        self.evac(staged[c][:, fs], back)
                    else:
                        nisa.tensor_tensor(dst=staged[c][:, fs], data1=back, data2=residual_rows[c][:, fs], op=nl.add)
                        self.evac.charge("vector", fsz)
        stores = []
        for (m0, msz), o in zip(token_tiles, staged):
            dst = self.out[m0 : m0 + msz, blk.r0 : blk.r0 + blk.rsz]
            stores.append(partial(nisa.dma_copy, dst=dst, src=o))
        return stores


def _bias_columns(bias, evac):
    """bias[N] as fp32 columns [128, ceil(N/128)]: column t holds bias[128 t : 128 t + 128] on the partitions.

    Loaded as rows of 128 (256-byte runs, not 2-byte ones) and turned into columns by TensorE transposes.
    """
    p = pmax()
    n = bias.shape[0]
    full = n // p
    cols = nl.ndarray((p, cdiv(n, p)), nl.float32, buffer=nl.sbuf)
    for g0 in range(0, full, p):
        g = min(p, full - g0)
        rows = nl.ndarray((g, p), bias.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=rows, src=bias[g0 * p : (g0 + g) * p])
        ps = evac.transient((p, g), bias.dtype)
        nisa.nc_transpose(dst=ps, data=rows)
        evac(cols[:, g0 : g0 + g], ps)
    if n > full * p:
        nisa.dma_copy(dst=cols[: n - full * p, full : full + 1], src=bias[full * p : n])
    return cols


# -- checks and planning ------------------------------------------------------------------------------
def _check_dtypes(kernel: str, a, b) -> None:
    require_dtype("first operand", a, FLOAT_DTYPES, kernel)
    require_dtype("second operand", b, FLOAT_DTYPES, kernel)
    both_fp8 = a.dtype in dtypes.FP8_DTYPES and b.dtype in dtypes.FP8_DTYPES
    if a.dtype != b.dtype and not both_fp8:
        raise DtypeError(
            f"{kernel}: operand dtypes differ ({dtypes.name(a.dtype)} and {dtypes.name(b.dtype)}); "
            "TensorE multiplies matching dtypes (or two fp8 kinds): cast one first",
            outside_location(),
            rule="dtype",
        )


def _check_pair(kernel: str, a, b, ndim: int) -> None:
    what = "[M, K] and [K, N]" if ndim == 2 else "[B, M, K] and [B, K, N]"
    require(a.ndim == ndim and b.ndim == ndim, f"{kernel} takes {what}, got {list(a.shape)} and {list(b.shape)}")
    require(
        a.shape[-1] == b.shape[-2],
        f"{kernel}: inner dims differ: a {list(a.shape)} has K = {a.shape[-1]}, "
        f"b {list(b.shape)} has K = {b.shape[-2]}",
        rule="contraction",
    )
    require(min(a.shape) > 0 and min(b.shape) > 0, f"{kernel} needs non-empty operands, got {list(a.shape)}")
    _check_dtypes(kernel, a, b)


def _result_dtype(a, b, out_dtype):
    if out_dtype is None:
        return dtypes.bfloat16 if a.dtype in dtypes.FP8_DTYPES else a.dtype
    try:
        dt = dtypes.resolve(out_dtype)
    except DtypeError:
        dt = None
    if dt not in FLOAT_DTYPES:
        names = ", ".join(dtypes.name(d) for d in FLOAT_DTYPES)
        raise DtypeError(f"out_dtype {out_dtype!r} is not supported; supported: {names}", outside_location(), "dtype")
    return dt


def _activation(name):
    if name is None:
        return nl.copy
    key = getattr(name, "nki_name", None) or name
    if key not in ACTIVATIONS:
        raise UsageError(
            f"linear: activation {name!r} is not supported; supported: None, {', '.join(sorted(ACTIVATIONS))}",
            outside_location(),
            rule="activation",
        )
    return ACTIVATIONS[key]


def _depth(plan, k, double_row):
    """Blocks whose epilogue buffers can be in use at once."""
    return blocks_in_flight(plan.dma_ahead, plan.transpose_ahead, len(k_steps(k, double_row)))


# Loop extension (compiler/loop_extrapolation.py) traces short probes of a long GEMM and sets this to map a
# probe's problem to the full one, so that the probe is blocked like the full GEMM: the same loop body, fewer
# iterations. None (always, outside those probes) plans each problem for itself.
PLAN_PROBLEM: ContextVar[Callable[[GemmProblem], GemmProblem] | None] = ContextVar("gemm_plan_problem", default=None)


def _plan(rows, cols, k, s, v, out_dtype, v_row_major, jobs=1):
    """Block sizes for this target, and whether to use fp8 double-row matmuls (where the core has them)."""
    double_row = s.dtype in dtypes.FP8_DTYPES and bool(core().tensor.fp8_double_row)
    problem = GemmProblem(
        rows=rows,
        cols=cols,
        k=k,
        in_bytes=max(s.dtype.itemsize, v.dtype.itemsize),
        out_bytes=dtypes.resolve(out_dtype).itemsize,
        v_row_major=v_row_major,
        double_row=double_row,
        fp32=s.dtype == dtypes.float32,
        jobs=jobs,
    )
    full = PLAN_PROBLEM.get()
    return plan_gemm(problem if full is None else full(problem), core()), double_row
