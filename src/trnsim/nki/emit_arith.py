"""Builders of the arithmetic instructions: activation, tensor_tensor, tensor_scalar, scalar_tensor_tensor,
tensor_tensor_scan and reciprocal.

Each turns a kernel's arguments (tiles, scalars or [P, 1] tiles, ALU ops as names or numpy functions, a
mask) into one call of the issue path; the rules, cost and semantics are the instruction's record.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import UsageError
from trnsim.isa import semantics as sem
from trnsim.isa.alu import ACTIVATIONS, BINARY_OPS, REDUCE_OPS, SCALAR_SLOT_OPS, UNARY_ALU_OPS
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.rules import ARITH_OPS
from trnsim.nki import replay_recorder
from trnsim.nki.context import current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import (
    broadcast_mask,
    check_tile,
    op_name,
    read_f32,
    read_for_op,
    read_masked,
    require_tensor,
    resolve_operand,
    same_shape_tiles,
    vector_operand,
    write,
)
from trnsim.nki.tensor import NkiTensor


def _named(**tiles: list[NkiTensor]) -> dict[str, NkiTensor]:
    """The optional tile operands that were passed (scalars are parameters, not tiles)."""
    return {k: v[0] for k, v in tiles.items() if v}


def slot_operand(ctx: Any, op: str, operand: Any, p: int, what: str, loc: str) -> tuple[Any, list[NkiTensor]]:
    """The operand of a tensor_scalar-style op slot: a scalar or a [P, 1] tile; for a unary ALU op (abs,
    square, relu, rsqrt, reciprocal) None or 0, which the op ignores (NKI docs, nki.isa.tensor_scalar)."""
    if op not in UNARY_ALU_OPS:
        return vector_operand(ctx, operand, p, what, loc)
    try:
        unused = operand is None or (not isinstance(operand, NkiTensor) and float(operand) == 0.0)
    except (TypeError, ValueError):
        unused = False
    if not unused:
        raise UsageError(
            f"{what} must be None or 0 when its op is the unary {op}, got {operand!r}", loc, rule="unary-operand"
        )
    return 0.0, []


def activation(
    dst: Any,
    op: Any,
    data: Any,
    bias: Any = None,
    scale: Any = 1.0,
    reduce_op: Any = None,
    reduce_res: Any = None,
    accumulate_reduce: bool = False,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst, data = same_shape_tiles(ctx, "activation", loc, dst=dst, data=data)
    fn = op_name(op, ACTIVATIONS, "activation function", loc)
    p = data.partition_size()
    scale_v, scale_t = vector_operand(ctx, scale, p, "activation scale", loc)
    bias_v, bias_t = (None, []) if bias is None else vector_operand(ctx, bias, p, "activation bias", loc)
    m = broadcast_mask(mask, dst.shape, loc)
    outputs: dict[str, NkiTensor] = {}
    if reduce_res is not None:
        red = require_tensor(reduce_res, "activation reduce_res", loc)
        check_tile(ctx, red, "activation reduce_res", loc)
        outputs["reduce_res"] = red
        rop = op_name(reduce_op or "add", REDUCE_OPS, "reduce_op", loc)
    fp32_out: list[np.ndarray] = []  # the reduction sees ScalarE's fp32 results, before the cast on write

    def compute() -> np.ndarray:
        x = read_masked(ctx, data, m, loc).reshape(dst.shape)
        s = resolve_operand(scale_t[0], ctx, loc, m) if scale_t else scale_v
        b = resolve_operand(bias_t[0], ctx, loc, m) if bias_t else bias_v
        out = sem.activation(fn, x, s, b)
        if outputs:  # the reduction below reads it
            fp32_out[:] = [out]
        return out

    ins = issue(
        Opcode.ACTIVATION,
        dst,
        {"data": data, **_named(scale=scale_t, bias=bias_t)},
        None,
        loc,
        params={"func": fn, "scalar_bias": bias is not None and not bias_t},
        mask=m,
        outputs=outputs,
        label=f"activation({fn})",
        compute=compute,
    )
    if outputs and ctx.machine.functional:
        red = outputs["reduce_res"]

        def reduce() -> None:
            out = fp32_out[0] if m is None else np.where(m, fp32_out[0], 0.0)
            values = sem.reduce_free(rop, out)
            if accumulate_reduce:
                values = sem.tensor_tensor(rop, read_f32(ctx, red, None, loc).reshape(values.shape), values)
            write(red, values, None)

        replay_recorder.builder_step(reduce, loc)  # part of the instruction's values (replayed with them)
    return ins


def tensor_tensor(
    dst: Any,
    data1: Any,
    data2: Any,
    op: Any,
    engine: Engine | None = None,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst, a, b = same_shape_tiles(ctx, "tensor_tensor", loc, dst=dst, data1=data1, data2=data2)
    name = op_name(op, BINARY_OPS, "tensor_tensor op", loc)
    m = broadcast_mask(mask, dst.shape, loc)
    return issue(
        Opcode.TENSOR_TENSOR,
        dst,
        {"data1": a, "data2": b},
        lambda _: {
            "op": name,
            "a": read_for_op(ctx, a, m, loc, name).reshape(dst.shape),
            "b": read_for_op(ctx, b, m, loc, name).reshape(dst.shape),
        },
        loc,
        params={"op": name},
        engine=engine,
        mask=m,
        label=f"tensor_tensor({name})",
    )


def tensor_scalar(
    dst: Any,
    data: Any,
    op0: Any,
    operand0: Any,
    reverse0: bool = False,
    op1: Any = None,
    operand1: Any = None,
    reverse1: bool = False,
    engine: Engine | None = None,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst, data = same_shape_tiles(ctx, "tensor_scalar", loc, dst=dst, data=data)
    p = data.partition_size()
    n0 = op_name(op0, SCALAR_SLOT_OPS, "tensor_scalar op0", loc)
    v0, t0 = slot_operand(ctx, n0, operand0, p, "tensor_scalar operand0", loc)
    n1, v1 = None, None
    t1: list[NkiTensor] = []
    if op1 is not None:
        n1 = op_name(op1, SCALAR_SLOT_OPS, "tensor_scalar op1", loc)
        v1, t1 = slot_operand(ctx, n1, operand1, p, "tensor_scalar operand1", loc)
    m = broadcast_mask(mask, dst.shape, loc)

    def values(_: Any) -> dict[str, Any]:
        return {
            "data": read_for_op(ctx, data, m, loc, n0).reshape(dst.shape),
            "op0": n0,
            "operand0": resolve_operand(t0[0], ctx, loc, m) if t0 else v0,
            "reverse0": reverse0,
            "op1": n1,
            "operand1": (resolve_operand(t1[0], ctx, loc, m) if t1 else v1) if n1 else None,
            "reverse1": reverse1,
        }

    return issue(
        Opcode.TENSOR_SCALAR,
        dst,
        {"data": data, **_named(operand0=t0, operand1=t1)},
        values,
        loc,
        params={"op0": n0, "op1": n1},
        engine=engine,
        mask=m,
        label=f"tensor_scalar({n0}{',' + n1 if n1 else ''})",
    )


def tensor_tensor_scan(
    dst: Any,
    data0: Any,
    data1: Any,
    initial: Any,
    op0: Any,
    op1: Any,
    reverse0: bool = False,
    reverse1: bool = False,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    """Per partition: r[i] = op1(op0(data0[i], r[i-1]), data1[i]) with r[-1] = initial (VectorE)."""
    ctx = current()
    loc = location or user_location()
    what = "tensor_tensor_scan"
    dst, a, b = same_shape_tiles(ctx, what, loc, dst=dst, data0=data0, data1=data1)
    n0 = op_name(op0, ARITH_OPS, f"{what} op0", loc)
    n1 = op_name(op1, ARITH_OPS, f"{what} op1", loc)
    init_v, init_t = vector_operand(ctx, initial, a.partition_size(), f"{what} initial", loc)
    m = broadcast_mask(mask, dst.shape, loc)

    def values(_: Any) -> dict[str, Any]:
        return {
            "data0": read_masked(ctx, a, m, loc).reshape(dst.shape),
            "data1": read_masked(ctx, b, m, loc).reshape(dst.shape),
            "initial": resolve_operand(init_t[0], ctx, loc, m) if init_t else init_v,
            "op0": n0,
            "op1": n1,
            "reverse0": reverse0,
            "reverse1": reverse1,
        }

    return issue(
        Opcode.TENSOR_TENSOR_SCAN,
        dst,
        {"data0": a, "data1": b, **_named(initial=init_t)},
        values,
        loc,
        params={"op0": n0, "op1": n1},
        mask=m,
        label=f"tensor_tensor_scan({n0},{n1})",
    )


def scalar_tensor_tensor(
    dst: Any,
    data: Any,
    op0: Any,
    operand0: Any,
    op1: Any,
    operand1: Any,
    reverse0: bool = False,
    reverse1: bool = False,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    """dst = (data op0 operand0) op1 operand1: operand0 a scalar or [P, 1] tile, operand1 a whole tile (VectorE)."""
    ctx = current()
    loc = location or user_location()
    what = "scalar_tensor_tensor"
    dst, x, y = same_shape_tiles(ctx, what, loc, dst=dst, data=data, operand1=operand1)
    n0 = op_name(op0, ARITH_OPS, f"{what} op0", loc)
    n1 = op_name(op1, ARITH_OPS, f"{what} op1", loc)
    s_v, s_t = vector_operand(ctx, operand0, x.partition_size(), f"{what} operand0", loc)
    m = broadcast_mask(mask, dst.shape, loc)

    def values(_: Any) -> dict[str, Any]:
        return {
            "data": read_masked(ctx, x, m, loc).reshape(dst.shape),
            "op0": n0,
            "operand0": resolve_operand(s_t[0], ctx, loc, m) if s_t else s_v,
            "op1": n1,
            "operand1": read_masked(ctx, y, m, loc).reshape(dst.shape),
            "reverse0": reverse0,
            "reverse1": reverse1,
        }

    return issue(
        Opcode.SCALAR_TENSOR_TENSOR,
        dst,
        {"data": x, "operand1": y, **_named(operand0=s_t)},
        values,
        loc,
        params={"op0": n0, "op1": n1},
        mask=m,
        label=f"scalar_tensor_tensor({n0},{n1})",
    )


def reciprocal(dst: Any, data: Any, mask: Any = None, location: str | None = None) -> Instruction:
    """dst = 1 / data on VectorE (fp32; on hardware more precise, and ~8x slower, than activation(nl.reciprocal))."""
    ctx = current()
    loc = location or user_location()
    dst, x = same_shape_tiles(ctx, "reciprocal", loc, dst=dst, data=data)
    m = broadcast_mask(mask, dst.shape, loc)
    return issue(
        Opcode.RECIPROCAL,
        dst,
        {"data": x},
        lambda _: {"data": read_masked(ctx, x, m, loc).reshape(dst.shape)},
        loc,
        mask=m,
        label="reciprocal",
    )
