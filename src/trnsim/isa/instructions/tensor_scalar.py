"""tensor_scalar: dst = (data op0 operand0) op1 operand1, operands scalars or [P, 1] vectors."""

from __future__ import annotations

from trnsim.errors import UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.alu import SCALAR_ENGINE_ALU_OPS
from trnsim.isa.cost_rules import CostArgs, copy_like_speedup, streaming, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import integer_bits


def check(call: Call) -> None:
    ops = [x for x in (call.param("op0"), call.param("op1")) if x is not None]
    if call.engine is Engine.SCALAR:
        bad = [x for x in ops if x not in SCALAR_ENGINE_ALU_OPS]
        if call.core.nc_version < 3 or bad:
            raise UsageError(
                "tensor_scalar on the scalar engine supports only add and multiply, from NeuronCore-v3 on",
                call.location,
                rule="engine",
            )
    integer_bits(call.param("op0"), [call.inputs["data"]], call.location)


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", "data", alu_op=call.param("op0"))


def copy_like_cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, N), one op or two; faster in the bf16 perf modes (§3.6, §3.7)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n / copy_like_speedup(core, engine, a)))


RECORD = InstructionRecord(
    opcode=Opcode.TENSOR_SCALAR,
    engines=(Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD),
    cycles=copy_like_cycles,
    semantics=sem.tensor_scalar,
    check=check,
    cost_args=cost_args,
    source="trainium.md §3.6 tensor_scalar, §3.7 perf modes",
)
