"""linear_mx and grouped_matmul_mx: the library's MX GEMM kernels for NeuronCore-v4 (trn3).

The weights are MXFP8 / MXFP4, quantised once offline (mx_weights.quantize_weight: packed x4 values
[K / 4, N] and e8m0 scales [K / 32, N] in HBM); the activations arrive bf16 and are quantised to MXFP8 on chip
by quantize_mx. TensorE runs nc_matmul_mx at the preset's mx_speedup x the bf16 rate; mx_pipeline.py has the
blocking and the overlap, mx_plan.py the block sizes.

The output lands as [tokens, features] in PSUM (the tokens are the stationary side), so the epilogue needs no
transpose back: bias (a row broadcast to every partition), activation and residual are applied as each fp32
accumulator is emptied into the output dtype.
"""

from __future__ import annotations

from functools import partial
from math import prod
from typing import Any

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.errors import UsageError
from trnsim.kernels._buffers import Ring
from trnsim.kernels._common import FLOAT_DTYPES, core, pmax, require, require_dtype
from trnsim.kernels._evacuate import Evacuator
from trnsim.kernels._host_values import host_ints
from trnsim.kernels.grouped_matmul import group_bounds
from trnsim.kernels.matmul import _activation, _result_dtype
from trnsim.kernels.mx_pipeline import MxBlock, MxJob, row_tiles, run_mx_gemm
from trnsim.kernels.mx_plan import STAGED_BLOCKS, TRANSIENT_BANKS, MxPlan, plan_mx
from trnsim.kernels.mx_weights import K_ALIGN, SCALE_GROUP, packed_dtype, raw_dtype
from trnsim.nki.context import outside_location

X_DTYPES = (dtypes.bfloat16, dtypes.float16)  # what quantize_mx takes


@nki.jit
def linear_mx(x, wq, w_scale, bias=None, activation=None, residual=None, out_dtype=None, w_dtype="float8_e4m3fn_x4"):
    """act(x @ W + bias) + residual for x [..., K] (bf16 / fp16) and W [K, N] given as mx_weights.quantize_weight
    made it: wq [K / 4, N] (raw bits of `w_dtype`), w_scale [K / 32, N] uint8; bias [N], residual [..., N]."""
    name = "linear_mx"
    k, n = _check_weights(name, x, wq, w_scale, w_dtype, wq.ndim)
    m = prod(x.shape[:-1])
    require(m > 0, f"{name} needs at least one token row, got x {list(x.shape)}")
    out = nl.ndarray((m, n), _result_dtype(x, x, out_dtype), buffer=nl.shared_hbm)
    if bias is not None:
        require(tuple(bias.shape) == (n,), f"{name}: bias must be [{n}], got {list(bias.shape)}")
        require_dtype("bias", bias, FLOAT_DTYPES, name)
    res2 = None
    if residual is not None:
        want = (*x.shape[:-1], n)
        require(tuple(residual.shape) == want, f"{name}: residual must be {list(want)}, got {list(residual.shape)}")
        require_dtype("residual", residual, FLOAT_DTYPES, name)
        res2 = residual.reshape((m, n)) if residual.ndim != 2 else residual
    x2 = x.reshape((m, k)) if x.ndim != 2 else x
    plan = _plan(m, n, k, w_dtype, out.dtype, residual is not None)
    evac = Evacuator(TRANSIENT_BANKS)
    epilogue = MxEpilogue(out, plan, evac, bias, _activation(activation), activation is not None, res2)
    job = MxJob(x2, wq, w_scale, m, epilogue.finish, epilogue.prefetch)
    run_mx_gemm([job], plan, n, k, packed_dtype(w_dtype), evac)
    return out if x.ndim == 2 else out.reshape((*x.shape[:-1], n))


@nki.jit
def grouped_matmul_mx(x, wq, w_scale, offsets, out_dtype=None, w_dtype="float8_e4m3fn_x4"):
    """out[S, N] = x[S, K] @ W[g] for the rows of each group g (offsets [G]: the groups' end rows, as
    grouped_matmul's); wq [G, K / 4, N], w_scale [G, K / 32, N] as mx_weights.quantize_weight makes them."""
    name = "grouped_matmul_mx"
    require(x.ndim == 2, f"{name} takes x [S, K], got {list(x.shape)}")
    k, n = _check_weights(name, x, wq, w_scale, w_dtype, 3)
    rows = x.shape[0]
    groups = wq.shape[0]
    ends = [int(v) for v in host_ints(offsets, "offsets", name).reshape(-1)]
    require(len(ends) == groups, f"{name}: offsets has {len(ends)} entries, wq has {groups} groups")
    bounds = sorted(group_bounds(ends, rows, name), key=lambda b: b[1] - b[2])  # tallest first: it sizes the plan
    out = nl.ndarray((rows, n), _result_dtype(x, x, out_dtype), buffer=nl.shared_hbm)
    if bounds:
        plan = _plan(bounds[0][2] - bounds[0][1], n, k, w_dtype, out.dtype, False)
        evac = Evacuator(TRANSIENT_BANKS)
        epilogue = MxEpilogue(out, plan, evac, None, nl.copy, False, None)  # one set of buffers for all groups
        jobs = [MxJob(x[s:e], wq[g], w_scale[g], e - s, partial(epilogue.finish, row0=s)) for g, s, e in bounds]
        run_mx_gemm(jobs, plan, n, k, packed_dtype(w_dtype), evac)
    routed = max((e for _, _, e in bounds), default=0)
    if routed < rows:  # rows routed to no group come out zero
        zeros = nl.ndarray((pmax(), n), out.dtype, buffer=nl.sbuf)
        nisa.memset(dst=zeros, value=0.0)
        for r0 in range(routed, rows, pmax()):
            nisa.dma_copy(dst=out[r0 : min(rows, r0 + pmax())], src=zeros[: min(pmax(), rows - r0)])
    return out


def _check_weights(name: str, x: Any, wq: Any, w_scale: Any, w_dtype: Any, w_ndim: int) -> tuple[int, int]:
    """(K, N) of a consistent (x, wq, w_scale) triple on a core with MX matmuls, or a clear error."""
    c = core()
    if c.tensor.mx_speedup <= 0 or c.vector.mx_quantize_elems_per_cycle <= 0:
        raise UsageError(
            f"{name} needs MX matmuls (NeuronCore-v4, trn3); this target is NeuronCore-v{c.nc_version}: use the bf16 "
            "or fp8 linear / matmul kernels here",
            outside_location(),
            rule="mx-target",
        )
    require_dtype("x", x, X_DTYPES, name)
    raw = raw_dtype(w_dtype)
    k = x.shape[-1]
    require(wq.ndim == w_ndim and w_scale.ndim == w_ndim, f"{name}: wq and w_scale must be {w_ndim}-D")
    n = wq.shape[-1]
    require(
        k % K_ALIGN == 0,
        f"{name}: K = {k} must be a multiple of {K_ALIGN} (MX tiles take whole quadrants of 32 x 4 values)",
    )
    require(
        tuple(wq.shape[-2:]) == (k // 4, n) and tuple(w_scale.shape[-2:]) == (k // SCALE_GROUP, n),
        f"{name}: for x [..., {k}] wq must be [.., {k // 4}, N] and w_scale [.., {k // SCALE_GROUP}, N], got "
        f"{list(wq.shape)} and {list(w_scale.shape)}",
    )
    require(wq.shape[:-2] == w_scale.shape[:-2], f"{name}: wq {list(wq.shape)} and w_scale disagree on groups")
    require_dtype("wq", wq, (raw,), name)
    require_dtype("w_scale", w_scale, (dtypes.uint8,), name)
    return k, n


def _plan(rows: int, n: int, k: int, w_dtype: Any, out_dtype: Any, residual: bool) -> MxPlan:
    return plan_mx(core(), rows, n, k, packed_dtype(w_dtype).itemsize, dtypes.resolve(out_dtype).itemsize, residual)


class MxEpilogue:
    """Empties a block's [tokens, features] fp32 accumulators: + bias, activation, + residual, cast; then one store
    for the strip's full token tiles (a [128, tiles, block] DMA: wide enough per queue to outlast the transfer
    overhead, which a [128, block] store of 1 KiB per partition would not) and one for a short last tile."""

    def __init__(self, out, plan: MxPlan, evac: Evacuator, bias, act, has_act: bool, residual) -> None:
        p = pmax()
        self.out, self.evac, self.bias, self.act, self.has_act, self.residual = out, evac, bias, act, has_act, residual
        self.staged = Ring(STAGED_BLOCKS, (p, plan.strip_tiles, plan.block), out.dtype)
        fused = bias is not None or has_act or residual is not None
        self.temp = Ring(2, (p, plan.block), nl.float32) if fused else None
        self.bias_rows = None if bias is None else Ring(2, (p, plan.block), bias.dtype)
        self.res_rows = None if residual is None else Ring(2, (p, plan.strip_tiles, plan.block), residual.dtype)
        self.turn = {"staged": 0, "temp": 0, "bias": 0, "res": 0}

    def _next(self, ring: Ring, key: str) -> Any:
        self.turn[key] += 1
        return ring.slot(self.turn[key] - 1)

    def prefetch(self, blk: MxBlock) -> Any:
        """The block's bias row (broadcast over the partitions) and residual rows, loaded while it computes."""
        p, c0, csz = pmax(), blk.c0, blk.csz
        bias = None
        if self.bias is not None and self.bias_rows is not None:
            bias = self._next(self.bias_rows, "bias")[:, :csz]
            nisa.dma_copy(dst=bias, src=self.bias.ap([[0, p], [1, csz]], offset=c0))
        rows = None
        if self.residual is not None and self.res_rows is not None:
            rows = self._next(self.res_rows, "res")
            for dst, src in row_tiles(self.residual, rows, blk.r0, blk.rsz, blk.c0, blk.csz):
                nisa.dma_copy(dst=dst, src=src)
        return bias, rows

    def finish(self, blk: MxBlock, accs: list[Any], prefetched: Any, row0: int = 0) -> list[Any]:
        """Empties the block's accumulators now; returns its stores (to output rows row0 + the block's)."""
        bias, res_rows = prefetched if prefetched is not None else (None, None)
        staged = self._next(self.staged, "staged")
        csz = blk.csz
        for i, ((_, tsz), acc) in enumerate(zip(blk.token_tiles, accs)):
            o = staged[:tsz, i, :csz]
            res = None if res_rows is None else res_rows[:tsz, i, :csz]
            if self.temp is None:
                self.evac(o, acc)
                continue
            cur = acc
            if bias is not None:
                t = o if not (self.has_act or res is not None) else self._next(self.temp, "temp")[:tsz, :csz]
                nisa.tensor_tensor(dst=t, data1=cur, data2=bias[:tsz], op=nl.add)
                self.evac.charge("vector", csz, inputs=2)
                cur = t
            if self.has_act:
                dst = o if res is None else self._next(self.temp, "temp")[:tsz, :csz]
                nisa.activation(dst=dst, op=self.act, data=cur)
                self.evac.charge("scalar", csz)
                cur = dst
            if res is not None:
                nisa.tensor_tensor(dst=o, data1=cur, data2=res, op=nl.add)
                self.evac.charge("vector", csz, inputs=2)
        return [
            partial(nisa.dma_copy, dst=dst, src=src)
            for src, dst in row_tiles(self.out, staged, row0 + blk.r0, blk.rsz, blk.c0, blk.csz)
        ]
