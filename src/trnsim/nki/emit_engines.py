"""Issuing Vector, Scalar and GpSimd instructions (activation, tensor_*, memset, iota, bn_*, selects)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.isa import semantics as sem
from trnsim.isa.alu import ACTIVATIONS, BINARY_OPS, REDUCE_OPS, SCALAR_ENGINE_ALU_OPS
from trnsim.isa.cost import CostArgs
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.emit import issue, pick_engine, read_masked
from trnsim.nki.operands import (
    broadcast_mask,
    check_tile,
    cost_facts,
    masked_extent,
    not_both_psum,
    op_name,
    read_f32,
    read_for_op,
    read_stored,
    reduce_axes,
    require_tensor,
    resolve_operand,
    same_shape_tiles,
    vector_operand,
    write,
)
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.memory import MemoryKind

# What masked-out lanes contribute to a reduction: each op's identity element.
_REDUCE_IDENTITY = {
    "add": 0.0,
    "multiply": 1.0,
    "maximum": -np.inf,
    "minimum": np.inf,
    "logical_and": 1.0,
    "logical_or": 0.0,
    "logical_xor": 0.0,
    "bitwise_and": -1,
    "bitwise_or": 0,
    "bitwise_xor": 0,
}


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
    if bias is not None and not bias_t and ctx.machine.spec.core.nc_version < 3:
        raise UsageError(
            "activation bias on NeuronCore-v2 must be a [P, 1] tile (a scalar bias needs NeuronCore-v3 or newer)",
            loc,
            rule="bias",
        )
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    red = None
    if reduce_res is not None:
        red = require_tensor(reduce_res, "activation reduce_res", loc)
        check_tile(ctx, red, "activation reduce_res", loc)
        if red.partition_size() != p or red.free_size() != 1:
            raise ShapeMismatchError(f"reduce_res must be [{p}, 1], got {list(red.shape)}", loc, rule="shape")
        rop = op_name(reduce_op or "add", REDUCE_OPS, "reduce_op", loc)
    cost = CostArgs(n=n, p=pe, reduce=red is not None, **cost_facts(ctx.machine.spec.core, [dst, data]))

    fp32_out: list[np.ndarray] = []  # the reduction sees ScalarE's fp32 results, before the cast on write

    def compute() -> np.ndarray:
        x = read_masked(ctx, data, m, loc).reshape(dst.shape)
        s = resolve_operand(scale_t[0], ctx, loc, m) if scale_t else scale_v
        b = resolve_operand(bias_t[0], ctx, loc, m) if bias_t else bias_v
        out = sem.activation(fn, x, s, b)
        fp32_out.append(out)
        return out

    ins = issue(
        ctx,
        Opcode.ACTIVATION,
        Engine.SCALAR,
        dst,
        [data, *scale_t, *bias_t],
        cost,
        compute,
        loc,
        m,
        label=f"activation({fn})",
    )
    if red is not None:
        ins.writes = (*ins.writes, red.region())
        if ctx.machine.functional:
            out = fp32_out[0]
            if m is not None:
                out = np.where(m, out, 0.0)
            values = sem.reduce_free(rop, out)
            if accumulate_reduce:
                values = sem.tensor_tensor(rop, read_f32(ctx, red, None, loc).reshape(values.shape), values)
            write(red, values, None)
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
    not_both_psum(a, b, "tensor_tensor", loc)
    name = op_name(op, BINARY_OPS, "tensor_tensor op", loc)
    if engine is None and name == "power":
        engine = Engine.GPSIMD  # power runs on GpSimd (trainium.md §3.6)
    eng = pick_engine(Opcode.TENSOR_TENSOR, engine, loc, [dst, a, b])
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    psum_in = MemoryKind.PSUM in (a.buffer, b.buffer)
    cost = CostArgs(
        n=n, p=pe, n_inputs=2, psum_input=psum_in, alu_op=name, **cost_facts(ctx.machine.spec.core, [dst, a, b])
    )
    return issue(
        ctx,
        Opcode.TENSOR_TENSOR,
        eng,
        dst,
        [a, b],
        cost,
        lambda: sem.tensor_tensor(
            name,
            read_for_op(ctx, a, m, loc, name).reshape(dst.shape),
            read_for_op(ctx, b, m, loc, name).reshape(dst.shape),
        ),
        loc,
        m,
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
    n0 = op_name(op0, BINARY_OPS, "tensor_scalar op0", loc)
    v0, t0 = vector_operand(ctx, operand0, p, "tensor_scalar operand0", loc)
    n1, v1 = None, None
    t1: list[NkiTensor] = []
    if op1 is not None:
        n1 = op_name(op1, BINARY_OPS, "tensor_scalar op1", loc)
        v1, t1 = vector_operand(ctx, operand1, p, "tensor_scalar operand1", loc)
    eng = pick_engine(Opcode.TENSOR_SCALAR, engine, loc, [dst, data])
    if eng is Engine.SCALAR:
        core = ctx.machine.spec.core
        bad = [x for x in (n0, n1) if x is not None and x not in SCALAR_ENGINE_ALU_OPS]
        if core.nc_version < 3 or bad:
            raise UsageError(
                "tensor_scalar on the scalar engine supports only add and multiply, from NeuronCore-v3 on",
                loc,
                rule="engine",
            )
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    cost = CostArgs(n=n, p=pe, alu_op=n0, **cost_facts(ctx.machine.spec.core, [dst, data]))

    def compute() -> np.ndarray:
        x = read_for_op(ctx, data, m, loc, n0).reshape(dst.shape)
        o0 = resolve_operand(t0[0], ctx, loc, m) if t0 else v0
        o1 = (resolve_operand(t1[0], ctx, loc, m) if t1 else v1) if n1 else None
        return sem.tensor_scalar(x, n0, o0, reverse0, n1, o1, reverse1)

    return issue(
        ctx,
        Opcode.TENSOR_SCALAR,
        eng,
        dst,
        [data, *t0, *t1],
        cost,
        compute,
        loc,
        m,
        label=f"tensor_scalar({n0}{',' + n1 if n1 else ''})",
    )


def tensor_reduce(
    dst: Any,
    op: Any,
    data: Any,
    axis: Any,
    negate: bool = False,
    keepdims: bool = False,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "tensor_reduce dst", loc)
    data = require_tensor(data, "tensor_reduce data", loc)
    check_tile(ctx, dst, "tensor_reduce dst", loc)
    check_tile(ctx, data, "tensor_reduce data", loc)
    name = op_name(op, REDUCE_OPS, "tensor_reduce op", loc)
    axes = reduce_axes(data, axis, "tensor_reduce", loc)
    out_shape = tuple(1 if d in axes else s for d, s in enumerate(data.shape) if keepdims or d not in axes)
    if int(np.prod(out_shape)) != dst.size or dst.partition_size() != data.partition_size():
        raise ShapeMismatchError(
            f"tensor_reduce dst must hold {list(out_shape)}, got {list(dst.shape)}", loc, rule="shape"
        )
    m = broadcast_mask(mask, data.shape, loc)
    dmask = None if m is None else m.any(axis=axes, keepdims=keepdims).reshape(dst.shape)
    pe, n = masked_extent(m, data.shape)
    cost = CostArgs(n=n, p=pe, alu_op=name, **cost_facts(ctx.machine.spec.core, [dst, data]))

    def compute() -> np.ndarray:
        x = read_for_op(ctx, data, m, loc, name)
        if m is not None:  # masked-out lanes take no part: fill them with the op's identity
            x = np.where(m, x, _REDUCE_IDENTITY.get(name, 0.0))
        return sem.tensor_reduce(name, x, axes, negate, keepdims).reshape(dst.shape)

    return issue(
        ctx,
        Opcode.TENSOR_REDUCE,
        Engine.VECTOR,
        dst,
        [data],
        cost,
        compute,
        loc,
        dmask,
        label=f"tensor_reduce({name})",
        src_mask=m,
    )


def tensor_copy(
    dst: Any, src: Any, engine: Engine | None = None, mask: Any = None, location: str | None = None
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst, src = same_shape_tiles(ctx, "tensor_copy", loc, dst=dst, src=src)
    eng = pick_engine(Opcode.TENSOR_COPY, engine, loc, [dst, src])
    # Vector and GpSimd copy same-dtype data bit-exactly; ScalarE (and any cast) goes through fp32.
    read = read_stored if src.dtype == dst.dtype and eng is not Engine.SCALAR else read_f32
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    cost = CostArgs(
        n=n, p=pe, psum_input=src.buffer is MemoryKind.PSUM, **cost_facts(ctx.machine.spec.core, [dst, src])
    )

    def compute() -> np.ndarray:
        vals = read(ctx, src, m if m is not None and m.shape == src.shape else None, loc)
        return sem.tensor_copy(vals).reshape(dst.shape)

    return issue(
        ctx,
        Opcode.TENSOR_COPY,
        eng,
        dst,
        [src],
        cost,
        compute,
        loc,
        m,
        label=f"tensor_copy({eng.key})",
    )


def memset(
    dst: Any, value: Any, engine: Engine | None = None, mask: Any = None, location: str | None = None
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "memset dst", loc)
    check_tile(ctx, dst, "memset dst", loc)
    eng = pick_engine(Opcode.MEMSET, engine, loc, [dst])
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"memset value must be a number, got {type(value).__name__} {value!r}", loc) from None
    cost = CostArgs(n=n, p=pe, zero_fill=v == 0.0, **cost_facts(ctx.machine.spec.core, [dst]))
    return issue(ctx, Opcode.MEMSET, eng, dst, [], cost, lambda: sem.memset(dst.shape, v), loc, m, label="memset")
