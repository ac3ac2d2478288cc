"""Builder of tensor_scalar_cumulative (VectorE): a running reduction whose register is the Vector engine's
shared accumulator (nki/engine_accumulators.py), so reduce_cmd=reduce continues an earlier instruction's."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.isa.alu import BINARY_OPS
from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions import tensor_scalar_cumulative as record
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki import engine_accumulators as accumulators
from trnsim.nki.context import current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import op_name, read_masked, resolve_operand, same_shape_tiles, vector_operand
from trnsim.nki.tensor import NkiTensor


def tensor_scalar_cumulative(
    dst: Any,
    src: Any,
    op0: Any,
    op1: Any,
    imm0: Any,
    imm1: Any = None,
    reduce_cmd: str = record.RESET,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst, src = same_shape_tiles(ctx, "tensor_scalar_cumulative", loc, dst=dst, src=src)
    n0 = op_name(op0, BINARY_OPS, "tensor_scalar_cumulative op0", loc)
    n1 = op_name(op1, BINARY_OPS, "tensor_scalar_cumulative op1", loc)
    p = src.partition_size()
    v0, t0 = vector_operand(ctx, imm0, p, "tensor_scalar_cumulative imm0", loc)
    v1, t1 = (None, []) if imm1 is None else vector_operand(ctx, imm1, p, "tensor_scalar_cumulative imm1", loc)
    running: list[np.ndarray] = []

    def compute() -> np.ndarray:
        if reduce_cmd == record.LOAD:
            start = np.broadcast_to(np.asarray(resolve_operand(t1[0], ctx, loc) if t1 else v1, np.float32), (p, 1))
        elif reduce_cmd == record.KEEP:
            acc = accumulators.load(ctx, Engine.VECTOR, p, "tensor_scalar_cumulative", loc)
            if acc is None:
                ctx.machine.warn(f"{loc}: tensor_scalar_cumulative reduce_cmd=reduce before any reset (identity)")
            start = np.full(p, record.IDENTITY[n1], np.float32) if acc is None else acc
        else:
            start = np.full(p, record.IDENTITY[n1], np.float32)
        operand = resolve_operand(t0[0], ctx, loc) if t0 else v0
        out = record.semantics(read_masked(ctx, src, None, loc), n0, operand, n1, np.asarray(start).reshape(-1))
        running.append(out.reshape(p, -1)[:, -1])
        return out

    tiles: dict[str, NkiTensor] = {"src": src, **({"imm0": t0[0]} if t0 else {}), **({"imm1": t1[0]} if t1 else {})}
    ins = issue(
        Opcode.TENSOR_SCALAR_CUMULATIVE,
        dst,
        tiles,
        None,
        loc,
        params={"op0": n0, "op1": n1, "reduce_cmd": reduce_cmd, "has_imm1": imm1 is not None},
        extent=(p, src.free_size()),
        label=f"tensor_scalar_cumulative({n0}, {n1})",
        compute=compute,
    )
    if running:
        accumulators.store(ctx, Engine.VECTOR, running[0])
    return ins
