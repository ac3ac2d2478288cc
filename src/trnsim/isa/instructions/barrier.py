"""barrier: a Sync-engine instruction that orders the engines' streams; it computes nothing."""

from __future__ import annotations

from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.record import InstructionRecord


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    return float(core.sync.min_ii_cycles)


def no_values() -> None:
    return None


RECORD = InstructionRecord(
    opcode=Opcode.BARRIER,
    engines=(Engine.SYNC,),
    cycles=cycles,
    semantics=no_values,
    source="trainium.md §3.7 (engines synchronise through semaphores)",
)
