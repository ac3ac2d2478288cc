"""Issuing VectorE's compound instructions: tensor_tensor_scan, scalar_tensor_tensor, reciprocal."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import ShapeMismatchError, TileShapeError
from trnsim.isa import semantics as sem
from trnsim.isa.alu import BINARY_OPS
from trnsim.isa.cost import CostArgs
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.emit import issue
from trnsim.nki.operands import (
    broadcast_mask,
    check_tile,
    cost_facts,
    masked_extent,
    not_both_psum,
    op_name,
    read_masked,
    require_tensor,
    resolve_operand,
    same_shape_tiles,
    vector_operand,
)

# These instructions do fp32 arithmetic only: no bitvec ops (trainium.md §3.6).
_BITVEC = ("bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift")
ARITH_OPS = {k: v for k, v in BINARY_OPS.items() if k not in _BITVEC}


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
    not_both_psum(a, b, what, loc)
    n0 = op_name(op0, ARITH_OPS, f"{what} op0", loc)
    n1 = op_name(op1, ARITH_OPS, f"{what} op1", loc)
    init_v, init_t = vector_operand(ctx, initial, a.partition_size(), f"{what} initial", loc)
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    cost = CostArgs(n=n, p=pe, n_inputs=2, alu_op=f"{n0},{n1}", **cost_facts(ctx.machine.spec.core, [dst, a, b]))

    def compute() -> np.ndarray:
        x = read_masked(ctx, a, m, loc).reshape(dst.shape)
        y = read_masked(ctx, b, m, loc).reshape(dst.shape)
        init = resolve_operand(init_t[0], ctx, loc, m) if init_t else init_v
        return sem.tensor_tensor_scan(x, y, init, n0, n1, reverse0, reverse1)

    return issue(
        ctx,
        Opcode.TENSOR_TENSOR_SCAN,
        Engine.VECTOR,
        dst,
        [a, b, *init_t],
        cost,
        compute,
        loc,
        m,
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
    not_both_psum(x, y, what, loc)
    n0 = op_name(op0, ARITH_OPS, f"{what} op0", loc)
    n1 = op_name(op1, ARITH_OPS, f"{what} op1", loc)
    s_v, s_t = vector_operand(ctx, operand0, x.partition_size(), f"{what} operand0", loc)
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    cost = CostArgs(n=n, p=pe, n_inputs=2, alu_op=f"{n0},{n1}", **cost_facts(ctx.machine.spec.core, [dst, x, y]))

    def compute() -> np.ndarray:
        s = resolve_operand(s_t[0], ctx, loc, m) if s_t else s_v
        xv = read_masked(ctx, x, m, loc).reshape(dst.shape)
        yv = read_masked(ctx, y, m, loc).reshape(dst.shape)
        return sem.scalar_tensor_tensor(xv, n0, s, n1, yv, reverse0, reverse1)

    return issue(
        ctx,
        Opcode.SCALAR_TENSOR_TENSOR,
        Engine.VECTOR,
        dst,
        [x, y, *s_t],
        cost,
        compute,
        loc,
        m,
        label=f"scalar_tensor_tensor({n0},{n1})",
    )


def reciprocal(dst: Any, data: Any, mask: Any = None, location: str | None = None) -> Instruction:
    """dst = 1 / data on VectorE (fp32; on hardware more precise, and ~8x slower, than activation(nl.reciprocal))."""
    ctx = current()
    loc = location or user_location()
    dst, x = same_shape_tiles(ctx, "reciprocal", loc, dst=dst, data=data)
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    cost = CostArgs(n=n, p=pe, **cost_facts(ctx.machine.spec.core, [dst, x]))
    return issue(
        ctx,
        Opcode.RECIPROCAL,
        Engine.VECTOR,
        dst,
        [x],
        cost,
        lambda: sem.reciprocal(read_masked(ctx, x, m, loc).reshape(dst.shape)),
        loc,
        m,
        label="reciprocal",
    )


def bn_stats(dst: Any, data: Any, mask: Any = None, location: str | None = None) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "bn_stats dst", loc)
    data = require_tensor(data, "bn_stats data", loc)
    check_tile(ctx, dst, "bn_stats dst", loc)
    check_tile(ctx, data, "bn_stats data", loc)
    fmax = ctx.machine.spec.core.vector.bn_stats_fmax
    if data.free_size() > fmax:
        raise TileShapeError(
            f"bn_stats takes at most {fmax} elements per partition (nl.tile_size.bn_stats_fmax), got "
            f"{data.free_size()}",
            loc,
            rule="bn_stats_fmax",
        )
    if dst.partition_size() != data.partition_size() or dst.free_size() != 6:
        raise ShapeMismatchError(
            f"bn_stats dst must be [{data.partition_size()}, 6], got {list(dst.shape)}", loc, rule="shape"
        )
    cost = CostArgs(n=data.free_size(), p=data.partition_size(), **cost_facts(ctx.machine.spec.core, [dst, data]))
    return issue(
        ctx,
        Opcode.BN_STATS,
        Engine.VECTOR,
        dst,
        [data],
        cost,
        lambda: sem.bn_stats(read_masked(ctx, data, None, loc)).reshape(dst.shape),
        loc,
        None,
        label="bn_stats",
    )


def bn_aggr(dst: Any, data: Any, mask: Any = None, location: str | None = None) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "bn_aggr dst", loc)
    data = require_tensor(data, "bn_aggr data", loc)
    check_tile(ctx, dst, "bn_aggr dst", loc)
    check_tile(ctx, data, "bn_aggr data", loc)
    if data.free_size() % 3:
        raise ShapeMismatchError(
            f"bn_aggr input must hold (count, mean, var*count) triples: elements per partition {data.free_size()} "
            "is not a multiple of 3",
            loc,
            rule="shape",
        )
    if dst.partition_size() != data.partition_size() or dst.free_size() != 2:
        raise ShapeMismatchError(
            f"bn_aggr dst must be [{data.partition_size()}, 2], got {list(dst.shape)}", loc, rule="shape"
        )
    cost = CostArgs(n=data.free_size(), p=data.partition_size(), **cost_facts(ctx.machine.spec.core, [dst, data]))
    return issue(
        ctx,
        Opcode.BN_AGGR,
        Engine.VECTOR,
        dst,
        [data],
        cost,
        lambda: sem.bn_aggr(read_masked(ctx, data, None, loc)).reshape(dst.shape),
        loc,
        None,
        label="bn_aggr",
    )
