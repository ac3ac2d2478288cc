"""Builders of the reductions: tensor_reduce (over free axes, masked lanes taking no part), bn_stats, bn_aggr."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.isa.alu import REDUCE_OPS
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import (
    broadcast_mask,
    check_tile,
    masked_extent,
    op_name,
    read_for_op,
    read_masked,
    reduce_axes,
    require_tensor,
)

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
    m = broadcast_mask(mask, data.shape, loc)
    # dst lanes written: those whose reduced lanes the mask lets through (the record checks dst's shape)
    reached = None if m is None else m.any(axis=axes, keepdims=keepdims)
    dmask = reached.reshape(dst.shape) if reached is not None and reached.size == dst.size else None

    def values(_: Any) -> dict[str, Any]:
        x = read_for_op(ctx, data, m, loc, name)
        if m is not None:  # masked-out lanes take no part: fill them with the op's identity
            x = np.where(m, x, _REDUCE_IDENTITY.get(name, 0.0))
        return {"op": name, "data": x, "axes": axes, "negate": negate, "keepdims": keepdims}

    return issue(
        Opcode.TENSOR_REDUCE,
        dst,
        {"data": data},
        values,
        loc,
        params={"op": name, "axes": axes, "keepdims": keepdims},
        mask=dmask,
        src_mask=m,
        extent=masked_extent(m, data.shape),
        label=f"tensor_reduce({name})",
    )


def _statistics(op: Opcode, dst: Any, data: Any, loc: str) -> Instruction:
    """bn_stats / bn_aggr: per-partition statistics of the whole input tile (they take no mask)."""
    ctx = current()
    what = op.key
    dst = require_tensor(dst, f"{what} dst", loc)
    data = require_tensor(data, f"{what} data", loc)
    check_tile(ctx, dst, f"{what} dst", loc)
    check_tile(ctx, data, f"{what} data", loc)
    return issue(op, dst, {"data": data}, lambda _: {"data": read_masked(ctx, data, None, loc)}, loc, label=what)


def bn_stats(dst: Any, data: Any, mask: Any = None, location: str | None = None) -> Instruction:
    return _statistics(Opcode.BN_STATS, dst, data, location or user_location())


def bn_aggr(dst: Any, data: Any, mask: Any = None, location: str | None = None) -> Instruction:
    return _statistics(Opcode.BN_AGGR, dst, data, location or user_location())
