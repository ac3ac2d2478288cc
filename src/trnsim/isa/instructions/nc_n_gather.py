"""nc_n_gather (GpSimdE): dst[p, j] = data[p, indices[p, j]] with data's free dims flattened, per partition
(NKI docs, nki.isa.nc_n_gather). All tiles in SBUF; dst keeps data's dtype; indices are uint32."""

from __future__ import annotations

import numpy as np

from trnsim import dtypes
from trnsim.errors import BoundsError, DtypeError, ShapeMismatchError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, gpsimd_cycles, streaming_args
from trnsim.isa.instructions.iota import gpsimd_reachable
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord

_in_sbuf = gpsimd_reachable("nc_n_gather")


def semantics(data: np.ndarray, indices: np.ndarray, location: str = "") -> np.ndarray:
    """Per-partition gather from the flattened free elements (values keep data's dtype)."""
    p = data.shape[0]
    flat = data.reshape(p, -1)
    idx = indices.reshape(p, -1).astype(np.int64)
    bad = (idx < 0) | (idx >= flat.shape[1])
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise BoundsError(
            f"nc_n_gather index {int(idx[row, col])} at [{row}, {col}] is outside [0, {flat.shape[1]}) "
            "(data's elements per partition)",
            location,
            rule="gather-index",
        )
    return np.take_along_axis(flat, idx, axis=1)


def check(call: Call) -> None:
    loc = call.location
    _in_sbuf(call)
    dst, data, idx = call.dst, call.inputs["data"], call.inputs["indices"]
    assert dst is not None
    if idx.dtype != dtypes.uint32:
        raise DtypeError(f"nc_n_gather indices must be uint32, got {dtypes.name(idx.dtype)}", loc, rule="dtype")
    if dst.dtype != data.dtype:
        raise DtypeError(
            f"nc_n_gather dst ({dtypes.name(dst.dtype)}) must have data's dtype ({dtypes.name(data.dtype)})",
            loc,
            rule="dtype",
        )
    if not dst.partitions == data.partitions == idx.partitions or dst.free != idx.free:
        raise ShapeMismatchError(
            f"nc_n_gather: data {list(data.shape)}, indices {list(idx.shape)} and dst {list(dst.shape)} must share "
            "the partition size, and dst must hold one element per index",
            loc,
            rule="shape",
        )


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", "data", "indices")


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """Undocumented: the GpSimd rule GPSIMD_START + N over the gathered elements (§3.6)."""
    return gpsimd_cycles(core, a)


RECORD = InstructionRecord(
    opcode=Opcode.NC_N_GATHER,
    engines=(Engine.GPSIMD,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    source="NKI docs nki.isa.nc_n_gather; cost undocumented: the GpSimd rule GPSIMD_START + N (§3.6)",
)
