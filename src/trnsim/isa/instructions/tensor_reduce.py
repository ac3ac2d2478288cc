"""tensor_reduce: reduce a tile over free axes with an ALU op (VectorE), optionally negated."""

from __future__ import annotations

from math import prod

from trnsim.errors import ShapeMismatchError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, streaming, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import integer_bits

FAST_BF16_REDUCE_OPS = frozenset({"add", "maximum"})


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    return tuple(1 if d in axes else s for d, s in enumerate(shape) if keepdims or d not in axes)


def check(call: Call) -> None:
    dst, data = call.dst, call.inputs["data"]
    assert dst is not None
    out_shape = reduced_shape(data.shape, call.param("axes"), bool(call.param("keepdims", False)))
    if prod(out_shape) != dst.size or dst.partitions != data.partitions:
        raise ShapeMismatchError(
            f"tensor_reduce dst must hold {list(out_shape)}, got {list(dst.shape)}", call.location, rule="shape"
        )
    integer_bits(call.param("op"), [data], call.location)


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", "data", alu_op=call.param("op"))


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """N/2 with bf16 in and out and op add or max, else N; at least MIN_II (§3.6)."""
    fast = a.all_bf16 and a.alu_op in FAST_BF16_REDUCE_OPS
    return streaming(core, engine, a, lambda ii, n: max(ii, n / 2 if fast else n))


RECORD = InstructionRecord(
    opcode=Opcode.TENSOR_REDUCE,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=sem.tensor_reduce,
    check=check,
    cost_args=cost_args,
    source="trainium.md §3.6 tensor_reduce",
)
