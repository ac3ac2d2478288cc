"""Builder of select_reduce (VectorE): a predicated select whose running max lives in the Vector engine's
shared accumulator (nki/engine_accumulators.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.isa.alu import REDUCE_OPS
from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions import select_reduce as record
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki import engine_accumulators as accumulators
from trnsim.nki.context import TraceContext, current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import (
    check_tile,
    op_name,
    read_masked,
    read_stored,
    require_tensor,
    resolve_operand,
    same_shape_tiles,
    vector_operand,
    write,
)
from trnsim.nki.tensor import NkiTensor


def select_reduce(
    dst: Any,
    predicate: Any,
    on_true: Any,
    on_false: Any,
    reduce_res: Any = None,
    reduce_cmd: str = record.IDLE,
    reduce_op: Any = "maximum",
    reverse_pred: bool = False,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst, pred, on_true = same_shape_tiles(ctx, "select_reduce", loc, dst=dst, predicate=predicate, on_true=on_true)
    p = on_true.partition_size()
    rop = op_name(reduce_op, REDUCE_OPS, "select_reduce reduce_op", loc)
    fv, ft = vector_operand(ctx, on_false, p, "select_reduce on_false", loc)
    outputs: dict[str, NkiTensor] = {}
    if reduce_res is not None:
        red = require_tensor(reduce_res, "select_reduce reduce_res", loc)
        check_tile(ctx, red, "select_reduce reduce_res", loc)
        outputs["reduce_res"] = red
    result: list[np.ndarray] = []

    def compute() -> np.ndarray:
        other = resolve_operand(ft[0], ctx, loc) if ft else fv
        raw_pred = read_stored(ctx, pred, None, loc)
        out = record.semantics(raw_pred, read_masked(ctx, on_true, None, loc), other, reverse_pred)
        result.append(out)
        return out

    ins = issue(
        Opcode.SELECT_REDUCE,
        dst,
        {"predicate": pred, "on_true": on_true, **({"on_false": ft[0]} if ft else {})},
        None,
        loc,
        params={"reduce_op": rop, "reduce_cmd": reduce_cmd, "reverse_pred": reverse_pred},
        outputs=outputs,
        extent=(p, on_true.free_size()),
        label="select_reduce",
        compute=compute,
    )
    if result and (reduce_cmd != record.IDLE or outputs):
        update_running_max(ctx, "select_reduce", reduce_cmd, result[0], outputs.get("reduce_res"), loc)
    return ins


def update_running_max(
    ctx: TraceContext, what: str, cmd: str, result: np.ndarray, reduce_res: NkiTensor | None, loc: str
) -> None:
    """reset_reduce / reduce the Vector engine's running max with `result`'s per-partition max (idle leaves it),
    then read it into reduce_res if given."""
    p = result.shape[0]
    acc = accumulators.load(ctx, Engine.VECTOR, p, what, loc)
    if cmd != record.IDLE:
        new = result.reshape(p, -1).max(axis=1)
        if cmd == record.KEEP and acc is None:
            ctx.machine.warn(f"{loc}: {what} reduce_cmd=reduce before any reset_reduce (starts at -inf)")
        acc = new if cmd == record.RESET or acc is None else np.maximum(acc, new)
        accumulators.store(ctx, Engine.VECTOR, acc)
    elif acc is None:
        ctx.machine.warn(f"{loc}: {what} reads the Vector engine's accumulator before anything set it (0)")
        acc = np.zeros(p, np.float32)
    if reduce_res is not None:
        write(reduce_res, np.asarray(acc, np.float32).reshape(p, 1), None)
