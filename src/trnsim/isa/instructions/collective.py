"""collective: one nki.collectives call (all-reduce, all-gather, ..., permute) as a rank's Sync-engine
instruction that reads its sources and writes its destinations.

Its own cost is one Sync-engine issue (MIN_II), like a barrier. The exchange itself runs on the
collective-communication cores and the links: its time depends on the instance (the ranks' chips and the
topology), so sim/collective_costs.py computes it from the presets and sim/instance_timing.py adds it, with
the wait for the other ranks, when it times the ranks together. Values come from the other ranks
(nki/collectives.py), not from a numpy function of this rank's operands.
"""

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
    opcode=Opcode.COLLECTIVE,
    engines=(Engine.SYNC,),
    cycles=cycles,
    semantics=no_values,
    source="nki.collectives docstrings; link costs sim/collective_costs.py",
)
