"""The instruction set: one record per opcode (engines, legality, cost, numpy semantics) in isa/instructions/."""

from trnsim.isa.instruction import Instruction, Region
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call, Operand
from trnsim.isa.record import InstructionRecord
from trnsim.isa.registry import ALLOWED_ENGINES, RECORDS, record

__all__ = [
    "ALLOWED_ENGINES",
    "RECORDS",
    "Call",
    "Engine",
    "Instruction",
    "InstructionRecord",
    "Opcode",
    "Operand",
    "Region",
    "record",
]
