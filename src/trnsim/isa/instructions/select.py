"""select (nl.where): dst = on_true where predicate != 0, else on_false (a tile or a number)."""

from __future__ import annotations

from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, streaming_args
from trnsim.isa.instructions.tensor_tensor import two_input_cycles
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord


def cost_args(call: Call) -> CostArgs:
    """Costed like a two-input tensor_tensor: the predicate and the tiles it picks from are read."""
    return streaming_args(call, "dst", *call.inputs, n_inputs=len(call.inputs))


RECORD = InstructionRecord(
    opcode=Opcode.SELECT,
    engines=(Engine.VECTOR, Engine.GPSIMD),
    cycles=two_input_cycles,
    semantics=sem.select,
    cost_args=cost_args,
    source="trainium.md §3.6 tensor_tensor (select has the same access pattern)",
)
