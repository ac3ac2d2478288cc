"""iota: generate integer index values from an access pattern (GpSimd)."""

from __future__ import annotations

from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, gpsimd_cycles
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.record import InstructionRecord


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """GPSIMD_START + N (§3.6)."""
    return gpsimd_cycles(core, a)


RECORD = InstructionRecord(
    opcode=Opcode.IOTA,
    engines=(Engine.GPSIMD,),
    cycles=cycles,
    semantics=sem.iota,
    source="trainium.md §3.6 iota",
)
