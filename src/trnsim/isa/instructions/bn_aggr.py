"""bn_aggr: combine bn_stats triples per partition into (mean, variance) -> [P, 2] (VectorE)."""

from __future__ import annotations

from trnsim.errors import ShapeMismatchError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.instructions.bn_stats import whole_input_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import shape_is


def check(call: Call) -> None:
    dst, data = call.dst, call.inputs["data"]
    assert dst is not None
    if data.free % 3:
        raise ShapeMismatchError(
            f"bn_aggr input must hold (count, mean, var*count) triples: elements per partition {data.free} "
            "is not a multiple of 3",
            call.location,
            rule="shape",
        )
    shape_is(dst, data.partitions, 2, "bn_aggr dst", call.location)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, 13 * (N / 3)) (§3.6)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, 13 * (n / 3)))


RECORD = InstructionRecord(
    opcode=Opcode.BN_AGGR,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=sem.bn_aggr,
    check=check,
    cost_args=whole_input_args,
    source="trainium.md §3.6 bn_aggr",
)
