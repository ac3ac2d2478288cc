"""tensor_scalar_cumulative (VectorE): a running reduction along each partition's free elements.

reg starts per reduce_cmd (reset_reduce: op1's identity; load_reduce: imm1; reduce: the Vector engine's
accumulator left by an earlier instruction), then for each element i: reg = op1(op0(src[i], imm0), reg) and
dst[i] = reg (NKI docs, nki.isa.tensor_scalar_cumulative, pseudocode taken literally: subtract gives
op0(src[i]) - reg).
"""

from __future__ import annotations

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, streaming, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import ARITH_OPS

RESET, KEEP, LOAD = "reset_reduce", "reduce", "load_reduce"
REDUCE_CMDS = (RESET, KEEP, LOAD)
IDENTITY = {"add": 0.0, "subtract": 0.0, "multiply": 1.0, "maximum": -np.inf, "minimum": np.inf}
_ACCUMULATE = {"add": np.add, "multiply": np.multiply, "maximum": np.maximum, "minimum": np.minimum}
_NO_INT32 = (dtypes.int32, dtypes.uint32)


def semantics(src: np.ndarray, op0: str, imm0: np.ndarray | float, op1: str, start: np.ndarray) -> np.ndarray:
    """The running values [P, ...] (fp32) from the accumulator's start values `start` [P]."""
    x = sem.tensor_scalar(src.reshape(src.shape[0], -1).astype(np.float32), op0, imm0)
    init = np.asarray(start, dtype=np.float32).reshape(-1, 1)
    if op1 in _ACCUMULATE:  # associative: numpy accumulates left to right in fp32, as the register does
        out = _ACCUMULATE[op1].accumulate(np.concatenate([init, x], axis=1), axis=1, dtype=np.float32)[:, 1:]
    else:  # subtract: reg = x[i] - reg
        out = np.empty_like(x)
        reg = init[:, 0]
        for i in range(x.shape[1]):
            reg = x[:, i] - reg
            out[:, i] = reg
    return out.reshape(src.shape)


def check(call: Call) -> None:
    loc = call.location
    op0, op1, cmd = call.param("op0"), call.param("op1"), call.param("reduce_cmd")
    if op0 not in ARITH_OPS:
        raise UsageError(f"tensor_scalar_cumulative op0 must be an arithmetic op, got {op0}", loc, rule="alu-op")
    if op1 not in IDENTITY:
        raise UsageError(
            f"tensor_scalar_cumulative op1 must be one of {', '.join(IDENTITY)}, got {op1}", loc, rule="alu-op"
        )
    if cmd not in REDUCE_CMDS:
        raise UsageError(
            f"tensor_scalar_cumulative reduce_cmd must be one of {', '.join(REDUCE_CMDS)}, got {cmd}",
            loc,
            rule="reduce",
        )
    if cmd == LOAD and not call.param("has_imm1", False):
        raise UsageError(
            "tensor_scalar_cumulative reduce_cmd=load_reduce needs imm1 (the start value)", loc, rule="reduce"
        )
    for t in call.operands("dst", "src"):
        if t.dtype in _NO_INT32:
            raise DtypeError(
                f"tensor_scalar_cumulative does not take {dtypes.name(t.dtype)} tiles ({t}); int32/uint32 are not "
                "supported (use a float or 8/16-bit integer type)",
                loc,
                rule="dtype",
            )


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", "src")


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """Undocumented: the general one-input VectorE rule max(MIN_II, N) (as tensor_scalar, §3.6)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.TENSOR_SCALAR_CUMULATIVE,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    source="NKI docs nki.isa.tensor_scalar_cumulative; cost undocumented: the VectorE rule max(MIN_II, N) (§3.6)",
)
