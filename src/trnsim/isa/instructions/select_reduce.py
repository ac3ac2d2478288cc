"""select_reduce (VectorE): dst = where(predicate, on_true, on_false), with an optional running max in the
Vector engine's accumulator registers (NKI docs, nki.isa.select_reduce)."""

from __future__ import annotations

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import PSUM, Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import shape_is

PREDICATE_DTYPES = (dtypes.int8, dtypes.uint8, dtypes.int16, dtypes.uint16)
NO_ON_TRUE = (dtypes.int32, dtypes.uint32)
IDLE, RESET, KEEP = "idle", "reset_reduce", "reduce"
REDUCE_CMDS = (IDLE, RESET, KEEP)


def semantics(
    predicate: np.ndarray, on_true: np.ndarray, on_false: np.ndarray | float, reverse_pred: bool
) -> np.ndarray:
    """fp32 where(predicate != 0, on_true, on_false) (== 0 with reverse_pred); on_false is a scalar or [P, 1]."""
    p = on_true.shape[0]
    pick = (predicate.reshape(p, -1) == 0) if reverse_pred else (predicate.reshape(p, -1) != 0)
    other = np.asarray(on_false, dtype=np.float32).reshape(-1, 1) if np.ndim(on_false) else np.float32(on_false)
    return np.where(pick, on_true.reshape(p, -1).astype(np.float32), other).astype(np.float32).reshape(on_true.shape)


def check(call: Call) -> None:
    loc = call.location
    pred, on_true = call.inputs["predicate"], call.inputs["on_true"]
    # a numpy bool array (the docs' own example's predicate) is NKI's bool_: one byte, as uint8
    if (dtypes.uint8 if pred.dtype == np.bool_ else pred.dtype) not in PREDICATE_DTYPES:
        names = ", ".join(dtypes.name(d) for d in PREDICATE_DTYPES)
        raise DtypeError(f"select_reduce predicate must be {names}, got {dtypes.name(pred.dtype)}", loc, rule="dtype")
    if on_true.dtype in NO_ON_TRUE:
        raise DtypeError(
            f"select_reduce on_true cannot be {dtypes.name(on_true.dtype)} (int32/uint32/tfloat32 are not supported)",
            loc,
            rule="dtype",
        )
    if pred.buffer == PSUM and on_true.buffer == PSUM:
        raise UsageError("select_reduce: on_true and predicate cannot both be in PSUM", loc, rule="psum")
    if call.param("reduce_op") != "maximum":
        raise UsageError(f"select_reduce reduce_op must be maximum, got {call.param('reduce_op')}", loc, rule="alu-op")
    cmd = call.param("reduce_cmd")
    if cmd not in REDUCE_CMDS:
        raise UsageError(
            f"select_reduce reduce_cmd must be one of {', '.join(REDUCE_CMDS)}, got {cmd}", loc, rule="reduce"
        )
    red = call.outputs.get("reduce_res")
    if red is not None:
        shape_is(red, on_true.partitions, 1, "select_reduce reduce_res", loc)
        if not dtypes.is_float(red.dtype):
            raise DtypeError(
                f"select_reduce reduce_res must be a float type, got {dtypes.name(red.dtype)}", loc, rule="dtype"
            )


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", "on_true", "predicate")


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, N) (§3.6: tensor_copy_predicated, select_reduce, range_select)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.SELECT_REDUCE,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    source="NKI docs nki.isa.select_reduce; trainium.md §3.6 (max(MIN_II, N))",
)
