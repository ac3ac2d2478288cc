"""tensor_copy: copy (or cast) a tile between SBUF/PSUM locations on VectorE, ScalarE or GpSimd."""

from __future__ import annotations

from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, any_in_psum, streaming_args
from trnsim.isa.instructions.tensor_scalar import copy_like_cycles
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", "src", psum_input=any_in_psum(call, "src"))


RECORD = InstructionRecord(
    opcode=Opcode.TENSOR_COPY,
    engines=(Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD),
    cycles=copy_like_cycles,
    semantics=sem.tensor_copy,
    cost_args=cost_args,
    source="trainium.md §3.6 tensor_copy, §3.7 perf modes",
)
