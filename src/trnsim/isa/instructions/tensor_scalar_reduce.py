"""tensor_scalar_reduce: dst = data op0 operand0, and reduce_res[P, 1] = reduce_op over dst's free elements."""

from __future__ import annotations

from trnsim.errors import UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.alu import UNARY_ALU_OPS
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.instructions.tensor_scalar import cost_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import ARITH_OPS

# reduce ops the Vector engine's accumulator takes here (NKI docs, nki.isa.tensor_scalar_reduce)
REDUCE_OPS = ("add", "multiply", "maximum", "minimum")


def check(call: Call) -> None:
    op0, reduce_op = call.param("op0"), call.param("reduce_op")
    if op0 not in ARITH_OPS and op0 not in UNARY_ALU_OPS:
        raise UsageError(
            f"tensor_scalar_reduce op0 must be an arithmetic op, got {op0} (bitvec ops are not supported)",
            call.location,
            rule="alu-op",
        )
    if reduce_op not in REDUCE_OPS:
        raise UsageError(
            f"tensor_scalar_reduce reduce_op must be one of {', '.join(REDUCE_OPS)}, got {reduce_op}",
            call.location,
            rule="alu-op",
        )
    red, dst = call.outputs.get("reduce_res"), call.dst
    if red is not None and dst is not None and (red.partitions != dst.partitions or red.free != 1):
        raise UsageError(
            f"tensor_scalar_reduce reduce_res must hold one element per partition of dst "
            f"([{dst.partitions}, 1]), got {red}",
            call.location,
            rule="shape",
        )


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, N) + MIN_II: the tensor_scalar pass, then reading the accumulator out (§3.6)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n) + ii)


RECORD = InstructionRecord(
    opcode=Opcode.TENSOR_SCALAR_REDUCE,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=sem.tensor_scalar,
    check=check,
    cost_args=cost_args,
    source="trainium.md §3.6 tensor_scalar_reduce; NKI docs nki.isa.tensor_scalar_reduce",
)
