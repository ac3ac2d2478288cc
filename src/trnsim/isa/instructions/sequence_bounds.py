"""sequence_bounds (GpSimdE): for each segment id of a [1, N] tile, the [start, end) of its run of equal ids,
as dst[1, 2, N]; padding (id 0) gets start N and end -1 (NKI docs, nki.isa.sequence_bounds and its example)."""

from __future__ import annotations

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError, TileShapeError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, gpsimd_cycles, streaming_args
from trnsim.isa.instructions.iota import gpsimd_reachable
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord

DTYPES = (dtypes.float32, dtypes.int32)
_in_sbuf = gpsimd_reachable("sequence_bounds")


def semantics(segment_ids: np.ndarray) -> np.ndarray:
    """[1, N] ids -> [1, 2, N] (start, end) in fp32."""
    ids = segment_ids.reshape(-1)
    n = ids.size
    index = np.arange(n)
    new_run = np.r_[True, ids[1:] != ids[:-1]]
    run_start = np.maximum.accumulate(np.where(new_run, index, 0))
    run_last = np.r_[ids[1:] != ids[:-1], True]
    run_end = np.minimum.accumulate(np.where(run_last, index + 1, n)[::-1])[::-1]
    pad = ids == 0
    start = np.where(pad, n, run_start)
    end = np.where(pad, -1, run_end)
    return np.stack([start, end]).astype(np.float32).reshape(1, 2, n)


def check(call: Call) -> None:
    loc = call.location
    _in_sbuf(call)
    dst, ids = call.dst, call.inputs["segment_ids"]
    assert dst is not None
    for t, what in ((ids, "segment_ids"), (dst, "dst")):
        if t.dtype not in DTYPES:
            raise DtypeError(
                f"sequence_bounds {what} must be float32 or int32, got {dtypes.name(t.dtype)}", loc, rule="dtype"
            )
    if ids.partitions != 1:
        raise TileShapeError(
            f"sequence_bounds takes segment_ids with 1 partition, got {list(ids.shape)}", loc, rule="partitions"
        )
    if dst.partitions != 1 or dst.free != 2 * ids.free:
        raise ShapeMismatchError(
            f"sequence_bounds dst must be [1, 2, {ids.free}] (start and end per id), got {list(dst.shape)}",
            loc,
            rule="shape",
        )


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", "segment_ids")


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """Undocumented: the GpSimd rule GPSIMD_START + N over the segment ids (§3.6)."""
    return gpsimd_cycles(core, a)


RECORD = InstructionRecord(
    opcode=Opcode.SEQUENCE_BOUNDS,
    engines=(Engine.GPSIMD,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    source="NKI docs nki.isa.sequence_bounds; cost undocumented: the GpSimd rule GPSIMD_START + N (§3.6)",
)
