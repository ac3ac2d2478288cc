"""reciprocal: dst = 1 / data on VectorE (exact fp32; slower than ScalarE's activation(reciprocal))."""

from __future__ import annotations

from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.record import InstructionRecord


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, 8N) (§3.6)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, 8 * n))


RECORD = InstructionRecord(
    opcode=Opcode.RECIPROCAL,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=sem.reciprocal,
    source="trainium.md §3.6 reciprocal",
)
