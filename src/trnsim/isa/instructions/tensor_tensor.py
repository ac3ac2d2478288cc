"""tensor_tensor: dst = data1 op data2, elementwise on two same-shape tiles (VectorE or GpSimd)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.alu import FAST_BF16_TT_OPS
from trnsim.isa.cost_rules import CostArgs, any_in_psum, streaming, streaming_args, vector_speedup
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import integer_bits, not_both_psum

GPSIMD_OPS = frozenset({"power"})  # ops only GpSimd runs (§3.6: "power and int32 ops run on GpSimd")


def default_engine(params: Mapping[str, Any]) -> Engine | None:
    return Engine.GPSIMD if params.get("op") in GPSIMD_OPS else None


def check(call: Call) -> None:
    a, b = call.inputs["data1"], call.inputs["data2"]
    not_both_psum(a, b, "tensor_tensor", call.location)
    integer_bits(call.param("op"), [a, b], call.location)


def cost_args(call: Call) -> CostArgs:
    return streaming_args(
        call,
        "dst",
        "data1",
        "data2",
        n_inputs=2,
        psum_input=any_in_psum(call, "data1", "data2"),
        alu_op=call.param("op"),
    )


def two_input_cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, N) with an input in PSUM or all-bf16 add/multiply/subtract in SBUF at unit stride, else
    max(MIN_II, 2N); then the bf16 perf mode (§3.6, §3.7)."""

    def formula(ii: float, n: float) -> float:
        fast = a.psum_input or (a.all_bf16 and a.sbuf_only and not a.strided and a.alu_op in FAST_BF16_TT_OPS)
        return max(ii, (n if fast else 2 * n) / vector_speedup(core, a, copy_like=False))

    return streaming(core, engine, a, formula)


RECORD = InstructionRecord(
    opcode=Opcode.TENSOR_TENSOR,
    engines=(Engine.VECTOR, Engine.GPSIMD),
    cycles=two_input_cycles,
    semantics=sem.tensor_tensor,
    check=check,
    cost_args=cost_args,
    default_engine=default_engine,
    source="trainium.md §3.6 tensor_tensor, §3.7 perf modes",
)
