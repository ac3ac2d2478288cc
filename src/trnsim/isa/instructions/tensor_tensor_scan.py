"""tensor_tensor_scan: per partition r[i] = op1(op0(data0[i], r[i-1]), data1[i]), r[-1] = initial (VectorE)."""

from __future__ import annotations

from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, streaming, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import not_both_psum


def check(call: Call) -> None:
    not_both_psum(call.inputs["data0"], call.inputs["data1"], "tensor_tensor_scan", call.location)


def cost_args(call: Call) -> CostArgs:
    alu = f"{call.param('op0')},{call.param('op1')}"
    return streaming_args(call, "dst", "data0", "data1", n_inputs=2, alu_op=alu)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, 2N) (§3.6)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, 2 * n))


RECORD = InstructionRecord(
    opcode=Opcode.TENSOR_TENSOR_SCAN,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=sem.tensor_tensor_scan,
    check=check,
    cost_args=cost_args,
    source="trainium.md §3.6 tensor_tensor_scan",
)
