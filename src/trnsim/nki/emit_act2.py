"""Builder of NC-v4's activate2 (ScalarE): the tensor-scalar stage, the activation, and the Scalar engine's
reduction registers (nki/engine_accumulators.py), which persist between instructions."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.isa.alu import ACTIVATIONS, BINARY_OPS
from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions import activate2 as record
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki import engine_accumulators as accumulators
from trnsim.nki.context import TraceContext, current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import (
    check_tile,
    op_name,
    read_masked,
    require_tensor,
    resolve_operand,
    same_shape_tiles,
    vector_operand,
    write,
)
from trnsim.nki.tensor import NkiTensor

_ALU = {**BINARY_OPS, record.BYPASS: None}  # op0/op1 names; None or nl.bypass skips the stage
_REDUCE = dict.fromkeys(record.REDUCE_OPS)


def _alu_name(op: Any, what: str, loc: str) -> str:
    return record.BYPASS if op is None else op_name(op, _ALU, what, loc)


def activate2(
    dst: Any,
    op: Any,
    data: Any,
    imm0: Any,
    imm1: Any,
    op0: Any,
    op1: Any,
    relu_param: Any = 0.0,
    reverse0: bool = False,
    reverse1: bool = False,
    reduce_op: Any = None,
    reduce_res: Any = None,
    reduce_cmd: str = record.IDLE,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst, data = same_shape_tiles(ctx, "activate2", loc, dst=dst, data=data)
    fn = op_name(op, ACTIVATIONS, "activate2 activation function", loc)
    n0, n1 = _alu_name(op0, "activate2 op0", loc), _alu_name(op1, "activate2 op1", loc)
    rop = None if reduce_op is None else op_name(reduce_op, _REDUCE, "activate2 reduce_op", loc)
    p = data.partition_size()
    v0, t0 = vector_operand(ctx, imm0, p, "activate2 imm0", loc)
    v1, t1 = vector_operand(ctx, imm1, p, "activate2 imm1", loc)
    _, tr = vector_operand(ctx, relu_param, p, "activate2 relu_param", loc)  # only parameterized functions read it
    outputs: dict[str, NkiTensor] = {}
    if reduce_res is not None:
        red = require_tensor(reduce_res, "activate2 reduce_res", loc)
        check_tile(ctx, red, "activate2 reduce_res", loc)
        outputs["reduce_res"] = red
    fp32_out: list[np.ndarray] = []

    def compute() -> np.ndarray:
        a = resolve_operand(t0[0], ctx, loc) if t0 else v0
        b = resolve_operand(t1[0], ctx, loc) if t1 else v1
        out = record.semantics(fn, read_masked(ctx, data, None, loc), n0, a, n1, b, reverse0, reverse1)
        fp32_out.append(out)
        return out

    tiles = {"data": data, **{k: t[0] for k, t in (("imm0", t0), ("imm1", t1), ("relu_param", tr)) if t}}
    ins = issue(
        Opcode.ACTIVATE2,
        dst,
        tiles,
        None,
        loc,
        params={"func": fn, "op0": n0, "op1": n1, "reverse0": reverse0, "reverse1": reverse1, "reduce_op": rop}
        | {"reduce_cmd": reduce_cmd},
        outputs=outputs,
        extent=(p, data.free_size()),
        label=f"activate2({fn})",
        compute=compute,
    )
    if ctx.machine.functional and (outputs or reduce_cmd != record.IDLE):
        acc = _update(ctx, reduce_cmd, rop, fp32_out[0], p, loc)
        if outputs:
            write(outputs["reduce_res"], acc.reshape(p, 1), None)
    return ins


def _update(ctx: TraceContext, cmd: str, rop: str | None, out: np.ndarray, p: int, loc: str) -> np.ndarray:
    """Apply reduce_cmd to the Scalar engine's registers and return their new values."""
    acc = accumulators.load(ctx, Engine.SCALAR, p, "activate2", loc)
    if cmd == record.IDLE:
        if acc is None:
            ctx.machine.warn(f"{loc}: activate2 reads the Scalar engine's accumulator before anything set it (0)")
            return np.zeros(p, np.float32)
        return acc
    assert rop is not None  # the record's check requires reduce_op with every other command
    identity = np.full(p, record.IDENTITY[rop], np.float32)
    if cmd == record.RESET:
        acc = identity
    elif cmd == record.RESET_REDUCE:
        acc = record.reduce_partitions(rop, out)
    else:
        if acc is None:
            ctx.machine.warn(f"{loc}: activate2 reduce_cmd=reduce before any reset (starts from the identity)")
        acc = record.combine(rop, identity if acc is None else acc, record.reduce_partitions(rop, out))
    accumulators.store(ctx, Engine.SCALAR, acc)
    return acc
