"""nc_matmul_mx (NC-v4): dst[M, N] = dequant(stationary)[K x4, M].T @ dequant(moving)[K x4, N] on the PE array.

The contraction runs over the partitions and the four values of each x4-packed element; every 32-value group
(8 partitions x 4 values) carries one e8m0 scale (mx_format.py).
"""

from __future__ import annotations

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError, TileShapeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs
from trnsim.isa.instructions import mx_format as mx
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import PSUM, Call
from trnsim.isa.record import InstructionRecord

MX_DATA_DTYPES = tuple(dtypes.PACKED_X4)
# moving free size: 8 PSUM banks (all of PSUM) of fp32 or bf16 results (NKI docs, nki.isa.nc_matmul_mx)
MOVING_FMAX = {dtypes.float32: 4096, dtypes.bfloat16: 8192}


def _scaled(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """values [K, C, 4] times each group's factor (scale [K // 8, C]), by broadcasting over whole groups."""
    k, c = values.shape[:2]
    if k % mx.GROUP_PARTITIONS:
        return values * mx.expand_scales(scale, k)
    grouped = values.reshape(k // mx.GROUP_PARTITIONS, mx.GROUP_PARTITIONS, c, values.shape[2])
    return (grouped * scale[: k // mx.GROUP_PARTITIONS, None, :, None]).reshape(values.shape)


def semantics(
    stationary: np.ndarray, moving: np.ndarray, stationary_scale: np.ndarray, moving_scale: np.ndarray
) -> np.ndarray:
    """stationary [K, M, 4] and moving [K, N, 4] values (fp32); scales [K // 8, M] / [K // 8, N] factors."""
    st = _scaled(stationary, stationary_scale)
    mv = _scaled(moving, moving_scale)
    # sum over (k, q) of st[k, i, q] * mv[k, j, q] as one float64 GEMM (BLAS; einsum took 11x the CPU at 128x512x256):
    # each product of two scaled MX values is exact in float64, so only the float64 summation order can differ
    lhs = st.transpose(1, 0, 2).reshape(st.shape[1], -1).astype(np.float64)
    rhs = mv.transpose(0, 2, 1).reshape(-1, mv.shape[1]).astype(np.float64)
    with sem.one_blas_thread():
        return np.matmul(lhs, rhs).astype(np.float32)


def check(call: Call) -> None:
    core, loc = call.core, call.location
    dst, st, mv = call.dst, call.inputs["stationary"], call.inputs["moving"]
    assert dst is not None
    mx.require_mx_target(call, "nc_matmul_mx", core.tensor.mx_speedup > 0)
    for t, what in ((st, "stationary"), (mv, "moving")):
        mx.require_sbuf(t, f"nc_matmul_mx {what}", loc)
        if t.dtype not in MX_DATA_DTYPES:
            names = ", ".join(dtypes.name(d) for d in MX_DATA_DTYPES)
            raise DtypeError(
                f"nc_matmul_mx {what} must be one of {names}, got {dtypes.name(t.dtype)}", loc, rule="mx-dtype"
            )
        mx.require_quadrants(t, f"nc_matmul_mx {what}", loc)
        mx.check_scale(call.inputs[f"{what}_scale"], t, f"nc_matmul_mx {what}_scale", loc)
    if dst.buffer != PSUM:
        raise UsageError(f"nc_matmul_mx writes to PSUM, but dst {dst} is in {dst.buffer.upper()}", loc, rule="buffer")
    if dst.dtype not in MOVING_FMAX:
        raise DtypeError(
            f"nc_matmul_mx dst must be float32 or bfloat16, got {dtypes.name(dst.dtype)}", loc, rule="mx-dtype"
        )
    if st.partitions != mv.partitions:
        raise ShapeMismatchError(
            f"nc_matmul_mx contraction dims differ: stationary has {st.partitions} partitions, moving has "
            f"{mv.partitions}",
            loc,
            rule="contraction",
        )
    if st.free % 2 or st.free > core.tensor.pe_cols:
        raise TileShapeError(
            f"nc_matmul_mx stationary free size {st.free} must be even and at most {core.tensor.pe_cols}",
            loc,
            rule="gemm_stationary_fmax",
        )
    fmax = MOVING_FMAX[dst.dtype]
    if mv.free > fmax:
        raise TileShapeError(
            f"nc_matmul_mx moving free size {mv.free} exceeds {fmax} (8 PSUM banks of {dtypes.name(dst.dtype)})",
            loc,
            rule="gemm_moving_fmax",
        )
    if dst.partitions != st.free or dst.free != mv.free:
        raise ShapeMismatchError(
            f"nc_matmul_mx dst must be [{st.free}, {mv.free}] (stationary free x moving free), got {list(dst.shape)}",
            loc,
            rule="shape",
        )


def flops(call: Call) -> int:
    """2 K M N with K = partitions x 4 values per packed element."""
    st, mv = call.inputs["stationary"], call.inputs["moving"]
    return 2 * st.partitions * mx.VALUES_PER_PACKED * st.free * mv.free


def cost_args(call: Call) -> CostArgs:
    st, mv = call.inputs["stationary"], call.inputs["moving"]
    return CostArgs(n_stationary=st.free, n_moving=mv.free, p=st.partitions)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """nc_matmul's max(min(MIN_II, N_stationary), N_moving) with the moving stream at the MX rate.

    A bf16 matmul streams one moving column (K <= 128 values) per cycle; MX contracts 4 values per packed
    element at `mx_speedup` times the bf16 rate, so a moving column of packed elements takes 4 / mx_speedup
    cycles (1 on NC-v4: 315 vs 79 TFLOPS, trainium.md §1).
    """
    t = core.tensor
    if t.mx_speedup <= 0:  # planners asking a target without MX
        raise UsageError(f"nc_matmul_mx needs NeuronCore-v4 or newer; this is NeuronCore-v{core.nc_version}", "")
    stream = a.n_moving * mx.VALUES_PER_PACKED / t.mx_speedup
    return float(max(min(t.min_ii_cycles, a.n_stationary), stream))


RECORD = InstructionRecord(
    opcode=Opcode.NC_MATMUL_MX,
    engines=(Engine.TENSOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    flops=flops,
    source="NKI docs nki.isa.nc_matmul_mx (rules); trainium.md §1 TensorE MX rate, §3.6 nc_matmul cost",
)
