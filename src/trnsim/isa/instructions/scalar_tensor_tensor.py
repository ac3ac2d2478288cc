"""scalar_tensor_tensor: dst = (data op0 operand0) op1 operand1, operand0 a scalar or [P, 1], operand1 a tile."""

from __future__ import annotations

from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, streaming, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import not_both_psum


def check(call: Call) -> None:
    not_both_psum(call.inputs["data"], call.inputs["operand1"], "scalar_tensor_tensor", call.location)


def cost_args(call: Call) -> CostArgs:
    alu = f"{call.param('op0')},{call.param('op1')}"
    return streaming_args(call, "dst", "data", "operand1", n_inputs=2, alu_op=alu)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """N for bf16 subtract-then-multiply on an even N, else 2N; the documented estimate has no MIN_II floor."""
    fast = a.all_bf16 and a.alu_op == "subtract,multiply" and a.n % 2 == 0
    return streaming(core, engine, a, lambda ii, n: n if fast else 2 * n)


RECORD = InstructionRecord(
    opcode=Opcode.SCALAR_TENSOR_TENSOR,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=sem.scalar_tensor_tensor,
    check=check,
    cost_args=cost_args,
    source="trainium.md §3.6 scalar_tensor_tensor",
)
