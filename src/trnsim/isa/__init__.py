"""The instruction set: opcodes, numpy semantics (semantics.py) and cycle costs (cost.py)."""

from trnsim.isa.instruction import Instruction, Region
from trnsim.isa.opcodes import ALLOWED_ENGINES, Engine, Opcode

__all__ = ["ALLOWED_ENGINES", "Engine", "Instruction", "Opcode", "Region"]
