"""range_select (NC-v3+, VectorE): keep on_true where comp_op0(i, bound0) and comp_op1(i, bound1) hold for the
free index i (+ range_start), else on_false_value (FP32_MIN); the running max goes to the Vector engine's
accumulator (NKI docs, nki.isa.range_select)."""

from __future__ import annotations

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import shape_is

COMPARISONS = {
    "equal": np.equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
}
FP32_MIN = float(np.finfo(np.float32).min)  # the only on_false_value the hardware takes
RESET, KEEP, IDLE = "reset_reduce", "reduce", "idle"
REDUCE_CMDS = (RESET, KEEP, IDLE)


def _is_fp32_min(value: object) -> bool:
    """on_false_value is a float32 immediate ("must be float32", nki.isa docs): a Python float that rounds to
    FP32_MIN in float32 (e.g. nkilib's literal -3.4028235e38) is FP32_MIN."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        return False
    with np.errstate(over="ignore"):
        return bool(np.float32(value) == np.float32(FP32_MIN))


def semantics(
    on_true: np.ndarray, bound0: np.ndarray, bound1: np.ndarray, comp_op0: str, comp_op1: str, range_start: int
) -> np.ndarray:
    p = on_true.shape[0]
    x = on_true.reshape(p, -1).astype(np.float32)
    index = (np.float32(range_start) + np.arange(x.shape[1], dtype=np.float32))[None, :]
    keep = COMPARISONS[comp_op0](index, bound0.reshape(p, 1)) & COMPARISONS[comp_op1](index, bound1.reshape(p, 1))
    return np.where(keep, x, np.float32(FP32_MIN)).reshape(on_true.shape)


def check(call: Call) -> None:
    loc, core = call.location, call.core
    if core.nc_version < 3:
        raise UsageError(
            f"range_select needs NeuronCore-v3 or newer; this target is NeuronCore-v{core.nc_version}",
            loc,
            rule="range-select-target",
        )
    for name in ("comp_op0", "comp_op1"):
        if call.param(name) not in COMPARISONS:
            raise UsageError(
                f"range_select {name} must be one of {', '.join(COMPARISONS)}, got {call.param(name)}",
                loc,
                rule="alu-op",
            )
    if call.param("reduce_op") != "maximum":
        raise UsageError(f"range_select reduce_op must be maximum, got {call.param('reduce_op')}", loc, rule="alu-op")
    if call.param("reduce_cmd") not in REDUCE_CMDS:
        raise UsageError(
            f"range_select reduce_cmd must be one of {', '.join(REDUCE_CMDS)}, got {call.param('reduce_cmd')}",
            loc,
            rule="reduce",
        )
    if not _is_fp32_min(call.param("on_false_value")):
        raise UsageError(
            f"range_select on_false_value must be FP32_MIN ({FP32_MIN:.8g}), got {call.param('on_false_value')}",
            loc,
            rule="on-false",
        )
    on_true = call.inputs["on_true"]
    if not dtypes.is_float(on_true.dtype):
        raise DtypeError(
            f"range_select on_true must be a float type, got {dtypes.name(on_true.dtype)}", loc, rule="dtype"
        )
    for name in ("bound0", "bound1"):
        b = call.inputs[name]
        shape_is(b, on_true.partitions, 1, f"range_select {name}", loc)
        if b.dtype != dtypes.float32:
            raise DtypeError(f"range_select {name} must be float32, got {dtypes.name(b.dtype)}", loc, rule="dtype")
    red = call.outputs.get("reduce_res")
    if red is not None:
        shape_is(red, on_true.partitions, 1, "range_select reduce_res", loc)


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", "on_true")


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, N) (§3.6: tensor_copy_predicated, select_reduce, range_select)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.RANGE_SELECT,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    source="NKI docs nki.isa.range_select; trainium.md §3.6 (max(MIN_II, N))",
)
