"""Builders of the instructions that move or fill data: dma_copy, tensor_copy, memset, partition broadcast.

Each turns a kernel's arguments into tiles and a mask and hands them to the one issue path (issue.py);
the rules, cost and semantics are the instruction's record (isa/instructions/).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import UsageError
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import (
    broadcast_mask,
    check_tile,
    read_f32,
    read_stored,
    require_tensor,
    same_shape_tiles,
)
from trnsim.nki.tensor import NkiTensor
from trnsim.nki.tensor_indirect import skip_out_of_bounds


def dma_copy(dst: Any, src: Any, mask: Any = None, location: str | None = None, oob_skip: bool = False) -> Instruction:
    """`oob_skip` (oob_mode.skip): elements whose index-tile row is out of bounds are left out."""
    loc = location or user_location()
    ctx = current()
    dst = require_tensor(dst, "dma_copy dst", loc)
    src = require_tensor(src, "dma_copy src", loc)
    m = broadcast_mask(mask, dst.shape, loc)
    src_m = m if src.shape == dst.shape else None
    if oob_skip:
        m, src_m = skip_out_of_bounds(dst, src, m)
    # A DMA moves bytes: same-dtype copies are bit-exact; a dtype change goes through fp32.
    read = read_stored if src.dtype == dst.dtype else read_f32
    return issue(
        Opcode.DMA_COPY,
        dst,
        {"src": src},
        lambda _: {"src": read(ctx, src, src_m, loc)},
        loc,
        mask=m,
        src_mask=src_m,
        label=f"dma {src.buffer}->{dst.buffer}",
    )


def dma_transpose(dst: NkiTensor, permuted: NkiTensor, location: str) -> Instruction:
    """The DMA engines' transpose (isa/instructions/dma_transpose.py): `permuted` is the source seen in dst's
    shape (the wrapper's permutation), copied bit-exactly."""
    ctx = current()
    return issue(
        Opcode.DMA_TRANSPOSE,
        dst,
        {"src": permuted},
        lambda _: {"src": read_stored(ctx, permuted, None, location)},
        location,
        label=f"dma_transpose {permuted.buffer}->{dst.buffer}",
    )


def tensor_copy(
    dst: Any, src: Any, engine: Engine | None = None, mask: Any = None, location: str | None = None
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst, src = same_shape_tiles(ctx, "tensor_copy", loc, dst=dst, src=src)
    m = broadcast_mask(mask, dst.shape, loc)
    src_mask = m if m is not None and m.shape == src.shape else None

    def values(call: Any) -> dict[str, Any]:
        # Vector and GpSimd copy same-dtype data bit-exactly; ScalarE (and any cast) goes through fp32.
        exact = src.dtype == dst.dtype and call.engine is not Engine.SCALAR
        return {"src": (read_stored if exact else read_f32)(ctx, src, src_mask, loc)}

    return issue(
        Opcode.TENSOR_COPY, dst, {"src": src}, values, loc, engine=engine, mask=m, label="tensor_copy({engine})"
    )


def broadcast_copy(out: NkiTensor, src: NkiTensor, location: str) -> Instruction:
    """out = src broadcast to out's shape (e.g. one partition to many): a GpSimd copy with partition broadcast."""
    ctx = current()
    return issue(
        Opcode.TENSOR_COPY,
        out,
        {"src": src},
        lambda _: {"src": np.broadcast_to(read_f32(ctx, src, None, location), out.shape)},
        location,
        engine=Engine.GPSIMD,
        label="broadcast",
    )


def memset(
    dst: Any, value: Any, engine: Engine | None = None, mask: Any = None, location: str | None = None
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "memset dst", loc)
    check_tile(ctx, dst, "memset dst", loc)
    m = broadcast_mask(mask, dst.shape, loc)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"memset value must be a number, got {type(value).__name__} {value!r}", loc) from None
    return issue(
        Opcode.MEMSET,
        dst,
        {},
        lambda _: {"shape": dst.shape, "value": v},
        loc,
        params={"value": v},
        engine=engine,
        mask=m,
        label="memset",
    )
