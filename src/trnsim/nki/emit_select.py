"""Builders of index patterns and selects: iota and affine_select (GpSimd), select (nl.where)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import broadcast_mask, check_tile, read_masked, require_tensor, same_elements
from trnsim.nki.tensor import NkiTensor


def iota(dst: Any, values: np.ndarray, mask: Any = None, location: str | None = None) -> Instruction:
    """Fill dst with integer index values generated on GpSimd (values computed from the index pattern)."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "iota dst", loc)
    check_tile(ctx, dst, "iota dst", loc)
    m = broadcast_mask(mask, dst.shape, loc)
    vals = np.broadcast_to(np.asarray(values), dst.shape).astype(np.int32)  # GpSimd integer arithmetic
    if dtypes.is_float(dst.dtype):
        vals = vals.astype(np.float32)  # int32 -> fp32 -> dst dtype, like every engine's cast on write
    return issue(Opcode.IOTA, dst, {}, None, loc, mask=m, label="iota", compute=lambda: vals)


def affine_select(
    dst: Any, predicate: np.ndarray, on_true: Any, on_false_value: float, mask: Any = None, location: str | None = None
) -> Instruction:
    """dst = on_true where the compile-time affine predicate holds, else on_false_value (GpSimd)."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "affine_select dst", loc)
    src = require_tensor(on_true, "affine_select on_true", loc)
    check_tile(ctx, dst, "affine_select dst", loc)
    check_tile(ctx, src, "affine_select on_true", loc)
    same_elements(dst, src, "affine_select", loc)
    pred = np.broadcast_to(np.asarray(predicate, dtype=bool), dst.shape)
    m = broadcast_mask(mask, dst.shape, loc)
    return issue(
        Opcode.AFFINE_SELECT,
        dst,
        {"on_true": src},
        lambda _: {
            "predicate": pred,
            "on_true": read_masked(ctx, src, m, loc).reshape(dst.shape),
            "on_false_value": on_false_value,
        },
        loc,
        mask=m,
        label="affine_select",
    )


def select(
    dst: Any,
    predicate: Any,
    on_true: Any,
    on_false: Any,
    engine: Engine | None = None,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    """dst = on_true where predicate != 0 else on_false (a tile or a number): nl.where."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "where dst", loc)
    pred = require_tensor(predicate, "where condition", loc)
    a = require_tensor(on_true, "where x", loc)
    inputs = {"predicate": pred, "on_true": a}
    if isinstance(on_false, NkiTensor):
        inputs["on_false"] = on_false
    for t in (dst, *inputs.values()):
        check_tile(ctx, t, "where operand", loc)
        same_elements(dst, t, "where", loc)
    m = broadcast_mask(mask, dst.shape, loc)

    def values(_: Any) -> dict[str, Any]:
        f = (
            read_masked(ctx, on_false, m, loc).reshape(dst.shape)
            if isinstance(on_false, NkiTensor)
            else float(on_false)
        )
        return {
            "predicate": read_masked(ctx, pred, m, loc).reshape(dst.shape),
            "on_true": read_masked(ctx, a, m, loc).reshape(dst.shape),
            "on_false": f,
        }

    return issue(Opcode.SELECT, dst, inputs, values, loc, engine=engine, mask=m, label="select")
