"""Builders for reductions fused into compute (tensor_scalar_reduce) and the top-8 family (max8,
nc_find_index8, nc_match_replace8).

Each turns kernel arguments into tiles and issues one instruction through nki/issue.py; the records in
isa/instructions/ say what the instruction is and costs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import UsageError
from trnsim.isa import semantics as sem
from trnsim.isa.alu import REDUCE_OPS, SCALAR_SLOT_OPS
from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions.nc_match_replace8 import match_indices8
from trnsim.isa.opcodes import Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.emit_arith import slot_operand
from trnsim.nki.issue import issue
from trnsim.nki.operands import (
    check_tile,
    op_name,
    read_f32,
    read_for_op,
    read_masked,
    require_tensor,
    resolve_operand,
    same_shape_tiles,
    write,
)
from trnsim.nki.tensor import NkiTensor

# reduce_cmd values: start from the op's identity, keep the accumulator, or load reduce_init first
RESET, KEEP, LOAD = "reset_reduce", "reduce", "load_reduce"


def tensor_scalar_reduce(
    dst: Any,
    data: Any,
    op0: Any,
    operand0: Any,
    reduce_op: Any,
    reduce_res: Any = None,
    reverse0: bool = False,
    reduce_cmd: str = RESET,
    reduce_init: Any = None,
    reduce_res_negate: bool = False,
    location: str | None = None,
) -> Instruction:
    """dst = data op0 operand0; reduce_res[P, 1] = reduce_op over dst's free elements (fp32, before the cast)."""
    ctx = current()
    loc = location or user_location()
    dst, data = same_shape_tiles(ctx, "tensor_scalar_reduce", loc, dst=dst, data=data)
    p = data.partition_size()
    n0 = op_name(op0, SCALAR_SLOT_OPS, "tensor_scalar_reduce op0", loc)
    rop = op_name(reduce_op, REDUCE_OPS, "tensor_scalar_reduce reduce_op", loc)
    v0, t0 = slot_operand(ctx, n0, operand0, p, "tensor_scalar_reduce operand0", loc)
    outputs: dict[str, NkiTensor] = {}
    if reduce_res is not None:
        red = require_tensor(reduce_res, "tensor_scalar_reduce reduce_res", loc)
        check_tile(ctx, red, "tensor_scalar_reduce reduce_res", loc)
        outputs["reduce_res"] = red
    if (reduce_init is not None) != (reduce_cmd == LOAD):
        raise UsageError("tensor_scalar_reduce: pass reduce_init exactly when reduce_cmd is load_reduce", loc)
    fp32_out: list[np.ndarray] = []

    def compute() -> np.ndarray:
        x = read_for_op(ctx, data, None, loc, n0).reshape(dst.shape)
        operand = resolve_operand(t0[0], ctx, loc) if t0 else v0
        out = sem.tensor_scalar(x, n0, operand, reverse0)
        fp32_out.append(out)
        return out

    ins = issue(
        Opcode.TENSOR_SCALAR_REDUCE,
        dst,
        {"data": data, **({"operand0": t0[0]} if t0 else {})},
        None,
        loc,
        params={"op0": n0, "reduce_op": rop},
        outputs=outputs,
        label=f"tensor_scalar_reduce({n0}, {rop})",
        compute=compute,
    )
    if outputs and ctx.machine.functional:
        red = outputs["reduce_res"]
        values = sem.reduce_free(rop, fp32_out[0])
        if reduce_cmd == KEEP:
            values = sem.tensor_tensor(rop, read_f32(ctx, red, None, loc).reshape(values.shape), values)
        elif reduce_cmd == LOAD:
            init = resolve_operand(reduce_init, ctx, loc) if isinstance(reduce_init, NkiTensor) else reduce_init
            values = sem.tensor_tensor(rop, np.broadcast_to(np.float32(init), values.shape), values)
        write(red, -values if reduce_res_negate else values, None)
    return ins


def max8(dst: Any, src: Any, location: str | None = None) -> Instruction:
    """dst[P, 8] = the 8 largest values of each partition of src, descending."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "max8 dst", loc)
    src = require_tensor(src, "max8 src", loc)
    check_tile(ctx, dst, "max8 dst", loc)
    check_tile(ctx, src, "max8 src", loc)
    return issue(
        Opcode.MAX8,
        dst,
        {"src": src},
        lambda _: {"src": read_masked(ctx, src, None, loc)},
        loc,
        extent=(src.partition_size(), src.free_size()),
        label="max8",
    )


def _sentinel(t: NkiTensor) -> int:
    """All ones of an index tile's integer width: 'value not found'."""
    return int(np.iinfo(t.dtype).max) if t.dtype.kind in "iu" else -1


def nc_find_index8(dst: Any, data: Any, vals: Any, location: str | None = None) -> Instruction:
    """dst[P, 8] = the index in each partition of data of each of its 8 vals."""
    ctx = current()
    loc = location or user_location()
    dst, data, vals = (
        require_tensor(t, f"nc_find_index8 {w}", loc) for t, w in ((dst, "dst"), (data, "data"), (vals, "vals"))
    )
    for t in (dst, data, vals):
        check_tile(ctx, t, "nc_find_index8 operand", loc)
    return issue(
        Opcode.NC_FIND_INDEX8,
        dst,
        {"data": data, "vals": vals},
        lambda _: {
            "data": read_masked(ctx, data, None, loc),
            "vals": read_masked(ctx, vals, None, loc),
            "sentinel": _sentinel(dst),
        },
        loc,
        extent=(data.partition_size(), data.free_size()),
        label="nc_find_index8",
    )


def nc_match_replace8(
    dst: Any, data: Any, vals: Any, imm: float, dst_idx: Any = None, location: str | None = None
) -> Instruction:
    """dst = data with the first match of each of the 8 vals replaced by imm; dst_idx gets the positions."""
    ctx = current()
    loc = location or user_location()
    dst, data, vals = (
        require_tensor(t, f"nc_match_replace8 {w}", loc) for t, w in ((dst, "dst"), (data, "data"), (vals, "vals"))
    )
    outputs: dict[str, NkiTensor] = {}
    if dst_idx is not None:
        outputs["dst_idx"] = require_tensor(dst_idx, "nc_match_replace8 dst_idx", loc)
    for t in (dst, data, vals, *outputs.values()):
        check_tile(ctx, t, "nc_match_replace8 operand", loc)
    # The positions are matched in the data as read, before dst is written: kernels replace in place
    # (dst=data, as nki-library's topk does), and matching after the write finds nothing.
    read: list[tuple[np.ndarray, np.ndarray]] = []

    def values(_: Any) -> dict[str, Any]:
        # copies: a read may be a view of the tile's storage, which the write below changes
        read.append((read_masked(ctx, data, None, loc).copy(), read_masked(ctx, vals, None, loc).copy()))
        return {"data": read[0][0].reshape(dst.shape), "vals": read[0][1], "imm": float(imm)}

    ins = issue(
        Opcode.NC_MATCH_REPLACE8,
        dst,
        {"data": data, "vals": vals},
        values,
        loc,
        outputs=outputs,
        extent=(data.partition_size(), data.free_size()),
        label="nc_match_replace8",
    )
    if outputs and ctx.machine.functional:
        idx = outputs["dst_idx"]
        write(idx, match_indices8(*read[0], _sentinel(idx)), None)
    return ins
