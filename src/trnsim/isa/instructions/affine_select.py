"""affine_select: keep on_true where an affine predicate of the indices holds, else a value (GpSimd)."""

from __future__ import annotations

from trnsim.isa import semantics as sem
from trnsim.isa.instructions.iota import cycles, gpsimd_reachable
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.record import InstructionRecord

RECORD = InstructionRecord(
    opcode=Opcode.AFFINE_SELECT,
    engines=(Engine.GPSIMD,),
    cycles=cycles,
    semantics=sem.affine_select,
    check=gpsimd_reachable("affine_select"),
    source="trainium.md §3.6 affine_select",
)
