"""activation: dst = f(data * scale + bias) on ScalarE, with an optional free-axis reduction into reduce_res."""

from __future__ import annotations

from trnsim.errors import UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, streaming, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import shape_is


def check(call: Call) -> None:
    data, loc = call.inputs["data"], call.location
    if call.param("scalar_bias", False) and call.core.nc_version < 3:
        raise UsageError(
            "activation bias on NeuronCore-v2 must be a [P, 1] tile (a scalar bias needs NeuronCore-v3 or newer)",
            loc,
            rule="bias",
        )
    red = call.outputs.get("reduce_res")
    if red is not None:
        shape_is(red, data.partitions, 1, "reduce_res", loc)


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", "data", reduce="reduce_res" in call.outputs)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, N), scale and bias free; a reduction adds an accumulator read of MIN_II (§3.6)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n) + (ii if a.reduce else 0))


RECORD = InstructionRecord(
    opcode=Opcode.ACTIVATION,
    engines=(Engine.SCALAR,),
    cycles=cycles,
    semantics=sem.activation,
    check=check,
    cost_args=cost_args,
    source="trainium.md §3.6 activation, activation_reduce",
)
