"""activate2 (NC-v4, ScalarE): dst = op((data op0 imm0) op1 imm1), with an optional reduction into the Scalar
engine's accumulator registers (NKI docs, nki.isa.activate2).

Six (op0, op1) pairs are legal; reverse0/reverse1 swap an op's operands. reduce_cmd: reset (identity only),
reset_reduce, reduce (continue), idle (leave the registers alone); reduce_res reads the registers out.
relu_param feeds parameterized activations only; none of trnsim's activation functions takes it.
"""

from __future__ import annotations

import numpy as np

from trnsim.errors import UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, streaming, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import shape_is

BYPASS = "bypass"
# the (op0, op1) combinations the tensor-scalar stage supports (NKI docs, nki.isa.activate2)
OP_PAIRS = (
    ("multiply", "add"),
    ("multiply", "subtract"),
    ("multiply", BYPASS),
    ("add", BYPASS),
    ("subtract", BYPASS),
    (BYPASS, BYPASS),
)
IDLE, RESET, RESET_REDUCE, KEEP = "idle", "reset", "reset_reduce", "reduce"
REDUCE_CMDS = (IDLE, RESET, RESET_REDUCE, KEEP)
REDUCE_OPS = ("add", "maximum", "minimum", "abs_max", "abs_min")
IDENTITY = {"add": 0.0, "maximum": -np.inf, "minimum": np.inf, "abs_max": 0.0, "abs_min": np.inf}


def reduce_partitions(op: str, values: np.ndarray) -> np.ndarray:
    """[P, ...] -> [P]: one reduce_op over each partition's free elements."""
    flat = values.reshape(values.shape[0], -1)
    if op.startswith("abs_"):
        flat, op = np.abs(flat), "maximum" if op == "abs_max" else "minimum"
    if op == "add":
        return flat.sum(axis=1, dtype=np.float32)
    return np.asarray(flat.max(axis=1) if op == "maximum" else flat.min(axis=1), dtype=np.float32)


def combine(op: str, acc: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Accumulator update: acc op new (abs_ ops compare magnitudes; the registers hold magnitudes)."""
    if op == "add":
        return (acc + new).astype(np.float32)
    pick = np.maximum if op in ("maximum", "abs_max") else np.minimum
    return pick(acc, new).astype(np.float32)


def semantics(
    func: str,
    data: np.ndarray,
    op0: str,
    imm0: np.ndarray | float,
    op1: str,
    imm1: np.ndarray | float,
    reverse0: bool,
    reverse1: bool,
) -> np.ndarray:
    """op((data op0 imm0) op1 imm1) in fp32; bypass skips a stage."""
    x = data.reshape(data.shape[0], -1).astype(np.float32)
    if op0 != BYPASS:
        x = sem.tensor_scalar(x, op0, imm0, reverse0)
    if op1 != BYPASS:
        x = sem.tensor_scalar(x, op1, imm1, reverse1)
    return sem.activation(func, x).reshape(data.shape)


def check(call: Call) -> None:
    loc, core = call.location, call.core
    if core.nc_version < 4:
        raise UsageError(
            f"activate2 needs NeuronCore-v4 or newer; this target is NeuronCore-v{core.nc_version} "
            "(use nisa.activation)",
            loc,
            rule="act2-target",
        )
    op0, op1 = call.param("op0"), call.param("op1")
    if (op0, op1) not in OP_PAIRS:
        pairs = ", ".join(f"({a}, {b})" for a, b in OP_PAIRS)
        raise UsageError(f"activate2 (op0, op1) = ({op0}, {op1}) is not supported; supported: {pairs}", loc, rule="op")
    for flag, op, name in (("reverse0", op0, "op0"), ("reverse1", op1, "op1")):
        if call.param(flag, False) and op == BYPASS:
            raise UsageError(f"activate2 {flag}=True needs {name} to be set (it is bypass)", loc, rule="op")
    cmd, rop = call.param("reduce_cmd", IDLE), call.param("reduce_op")
    if cmd not in REDUCE_CMDS:
        raise UsageError(f"activate2 reduce_cmd must be one of {', '.join(REDUCE_CMDS)}, got {cmd}", loc, rule="reduce")
    if cmd in (RESET, RESET_REDUCE, KEEP) and rop not in REDUCE_OPS:
        raise UsageError(
            f"activate2 reduce_cmd={cmd} needs reduce_op, one of {', '.join(REDUCE_OPS)}; got {rop}",
            loc,
            rule="reduce",
        )
    red = call.outputs.get("reduce_res")
    if red is not None:
        shape_is(red, call.inputs["data"].partitions, 1, "reduce_res", loc)


def cost_args(call: Call) -> CostArgs:
    return streaming_args(call, "dst", "data", reduce="reduce_res" in call.outputs)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """activation's rule (undocumented for activate2): max(MIN_II, N), the tensor-scalar stage in the same
    pass; reading the accumulator into reduce_res is one more instruction of MIN_II (§3.6 activation)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n) + (ii if a.reduce else 0))


RECORD = InstructionRecord(
    opcode=Opcode.ACTIVATE2,
    engines=(Engine.SCALAR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    source="NKI docs nki.isa.activate2 (semantics, rules); cost undocumented: trainium.md §3.6 activation's rule",
)
