"""exponential (NC-v4, VectorE): dst = exp(src - max_value), optionally summed into the engine's accumulator.

max_value is a scalar or a [P, 1] tile; reduce_cmd drives the Vector engine's internal sum registers
(reset_reduce, reduce, load_reduce; idle leaves them alone), and reduce_res[P, 1] receives the sum
(NKI docs, nki.isa.exponential).
"""

from __future__ import annotations

import numpy as np

from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord

IDLE, RESET, KEEP, LOAD = "idle", "reset_reduce", "reduce", "load_reduce"
REDUCE_CMDS = (IDLE, RESET, KEEP, LOAD)


def semantics(src: np.ndarray, max_value: np.ndarray | float) -> np.ndarray:
    """exp(src - max_value) in fp32 (max_value broadcast per partition)."""
    x = src.reshape(src.shape[0], -1).astype(np.float32)
    m = np.asarray(max_value, dtype=np.float32).reshape(-1, 1) if np.ndim(max_value) else np.float32(max_value)
    with np.errstate(over="ignore"):
        return np.exp(x - m).reshape(src.shape)


def check(call: Call) -> None:
    core, loc = call.core, call.location
    if core.vector.exponential_speedup <= 0:
        raise UsageError(
            f"exponential needs NeuronCore-v4 or newer; this target is NeuronCore-v{core.nc_version} "
            "(use nisa.activation(op=nl.exp) on the scalar engine)",
            loc,
            rule="exp-target",
        )
    cmd = call.param("reduce_cmd", IDLE)
    if cmd not in REDUCE_CMDS:
        raise UsageError(
            f"exponential reduce_cmd must be one of {', '.join(REDUCE_CMDS)}, got {cmd}", loc, rule="reduce"
        )
    if call.param("has_init", False) and cmd != LOAD:
        raise UsageError("exponential: reduce_init is only read with reduce_cmd=load_reduce", loc, rule="reduce")
    red, src = call.outputs.get("reduce_res"), call.inputs["src"]
    if red is not None:
        if cmd == IDLE:
            raise UsageError(
                "exponential: reduce_res needs a reduce_cmd (reset_reduce, reduce or load_reduce); idle sums nothing",
                loc,
                rule="reduce",
            )
        if red.partitions != src.partitions or red.free != 1:
            raise ShapeMismatchError(
                f"exponential reduce_res must be [{src.partitions}, 1] (one sum per partition), got {red}",
                loc,
                rule="shape",
            )


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", "src", reduce=call.param("reduce_cmd", IDLE) != IDLE)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """ScalarE's activation(exp) rule max(MIN_II, N) at `exponential_speedup` x its rate; a reduction adds
    activation's accumulator read of MIN_II (that part undocumented for exponential: the general rule)."""
    speedup = core.vector.exponential_speedup
    if speedup <= 0:  # planners asking a target without it
        raise UsageError(f"exponential needs NeuronCore-v4 or newer; this is NeuronCore-v{core.nc_version}", "")
    return streaming(core, engine, a, lambda ii, n: max(ii, n / speedup) + (ii if a.reduce else 0))


RECORD = InstructionRecord(
    opcode=Opcode.EXPONENTIAL,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    source="NKI docs nki.isa.exponential; trainium3_arch 'Fast Exponential Evaluation' (4x activation exp); "
    "trainium.md §3.6 activation (the reduction's MIN_II, undocumented for exponential)",
)
