"""bn_stats: per-partition (count, mean, var*count) of the even and the odd elements -> [P, 6] (VectorE)."""

from __future__ import annotations

from trnsim.errors import TileShapeError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, operand_facts, streaming
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import shape_is


def check(call: Call) -> None:
    dst, data = call.dst, call.inputs["data"]
    assert dst is not None
    fmax = call.core.vector.bn_stats_fmax
    if data.free > fmax:
        raise TileShapeError(
            f"bn_stats takes at most {fmax} elements per partition (nl.tile_size.bn_stats_fmax), got {data.free}",
            call.location,
            rule="bn_stats_fmax",
        )
    shape_is(dst, data.partitions, 6, "bn_stats dst", call.location)


def whole_input_args(call: Call) -> CostArgs:
    """The whole input tile (these statistics take no mask)."""
    data = call.inputs["data"]
    return CostArgs(n=data.free, p=data.partitions, **operand_facts(call.core, call.operands("dst", "data")))


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, N) (§3.6)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.BN_STATS,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=sem.bn_stats,
    check=check,
    cost_args=whole_input_args,
    source="trainium.md §3.6 bn_stats",
)
