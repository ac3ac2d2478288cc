"""memset: fill a tile with one value (VectorE or GpSimd)."""

from __future__ import annotations

from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, streaming, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", zero_fill=call.param("value") == 0.0)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, N/2) for a zero fill of bf16/fp16, else max(MIN_II, N) (§3.6)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n / 2 if (a.zero_fill and a.all_bf16) else n))


RECORD = InstructionRecord(
    opcode=Opcode.MEMSET,
    engines=(Engine.VECTOR, Engine.GPSIMD),
    cycles=cycles,
    semantics=sem.memset,
    cost_args=cost_args,
    source="trainium.md §3.6 memset",
)
