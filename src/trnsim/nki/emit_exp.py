"""Builder of NC-v4's exponential (VectorE): exp(src - max_value) with the engine's running-sum registers.

The Vector engine keeps the sum between instructions (reduce_cmd=reduce adds to it, reduce_res=None leaves
it unread): nki/engine_accumulators.py holds it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import UsageError
from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions import exponential as record
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki import engine_accumulators as accumulators
from trnsim.nki.context import TraceContext, current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import (
    check_tile,
    read_masked,
    require_tensor,
    resolve_operand,
    same_shape_tiles,
    vector_operand,
    write,
)
from trnsim.nki.tensor import NkiTensor


def exponential(
    dst: Any,
    src: Any,
    max_value: Any = 0.0,
    reduce_res: Any = None,
    reduce_cmd: str = record.IDLE,
    reduce_init: Any = None,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst, src = same_shape_tiles(ctx, "exponential", loc, dst=dst, src=src)
    p = src.partition_size()
    mv, mt = vector_operand(ctx, max_value, p, "exponential max_value", loc)
    outputs: dict[str, NkiTensor] = {}
    if reduce_res is not None:
        red = require_tensor(reduce_res, "exponential reduce_res", loc)
        check_tile(ctx, red, "exponential reduce_res", loc)
        outputs["reduce_res"] = red
    init_tiles = [reduce_init] if isinstance(reduce_init, NkiTensor) else []
    fp32_out: list[np.ndarray] = []

    def compute() -> np.ndarray:
        m = resolve_operand(mt[0], ctx, loc) if mt else mv
        out = record.semantics(read_masked(ctx, src, None, loc), m)
        fp32_out.append(out)
        return out

    if reduce_init is not None and not init_tiles and not isinstance(reduce_init, (int, float)):
        raise UsageError(f"exponential reduce_init must be a number or a [{p}, 1] tile, got {reduce_init!r}", loc)
    has_init = bool(init_tiles) or (reduce_init is not None and float(reduce_init) != 0.0)  # 0.0 is the default
    ins = issue(
        Opcode.EXPONENTIAL,
        dst,
        {"src": src, **({"max_value": mt[0]} if mt else {}), **({"reduce_init": init_tiles[0]} if init_tiles else {})},
        None,
        loc,
        params={"reduce_cmd": reduce_cmd, "has_init": has_init},
        outputs=outputs,
        extent=(p, src.free_size()),
        label="exponential",
        compute=compute,
    )
    if reduce_cmd != record.IDLE and ctx.machine.functional:
        sums = fp32_out[0].reshape(p, -1).sum(axis=1, dtype=np.float32)
        if reduce_cmd == record.KEEP:
            sums = _running(ctx, p, loc) + sums
        elif reduce_cmd == record.LOAD:
            init = resolve_operand(reduce_init, ctx, loc) if reduce_init is not None else 0.0
            sums = np.asarray(init, dtype=np.float32).reshape(-1) + sums
        accumulators.store(ctx, Engine.VECTOR, sums)
        if outputs:
            write(outputs["reduce_res"], sums.reshape(p, 1), None)
    return ins


def _running(ctx: TraceContext, p: int, loc: str) -> np.ndarray:
    """The accumulator reduce_cmd=reduce adds to: zeros (with a warning) if nothing reset or loaded it."""
    acc = accumulators.load(ctx, Engine.VECTOR, p, "exponential", loc)
    if acc is None:
        ctx.machine.warn(f"{loc}: exponential reduce_cmd=reduce before any reset_reduce/load_reduce (reads as 0)")
        return np.zeros(p, np.float32)
    return acc
