"""Builders for data movement decided by the data or a pattern: tensor_copy_predicated, nonzero_with_count
and nc_stream_shuffle.

Each turns kernel arguments into tiles and issues one instruction through nki/issue.py; the records in
isa/instructions/ say what the instruction is and costs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import UsageError
from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions.nonzero_with_count import PARTITIONS_PER_GPSIMD_CORE
from trnsim.isa.opcodes import Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import check_tile, read_masked, require_tensor, same_elements
from trnsim.nki.tensor import NkiTensor


def tensor_copy_predicated(
    dst: Any, src: Any, predicate: Any, reverse_pred: bool = False, location: str | None = None
) -> Instruction:
    """dst = src where predicate is nonzero (zero with reverse_pred); elsewhere dst keeps its values."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "tensor_copy_predicated dst", loc)
    pred = require_tensor(predicate, "tensor_copy_predicated predicate", loc)
    inputs = {"predicate": pred, "prior": dst}
    if isinstance(src, NkiTensor):
        inputs["src"] = src
    for t in (dst, *inputs.values()):
        check_tile(ctx, t, "tensor_copy_predicated operand", loc)
        same_elements(dst, t, "tensor_copy_predicated", loc)

    def values(_: Any) -> dict[str, Any]:
        return {
            "src": read_masked(ctx, src, None, loc).reshape(dst.shape) if isinstance(src, NkiTensor) else float(src),
            "predicate": read_masked(ctx, pred, None, loc).reshape(dst.shape),
            "prior": read_masked(ctx, dst, None, loc),
            "reverse_pred": reverse_pred,
        }

    return issue(Opcode.TENSOR_COPY_PREDICATED, dst, inputs, values, loc, label="tensor_copy_predicated")


def nonzero_with_count(
    dst: Any, src: Any, index_offset: int = 0, padding_val: float = -1, location: str | None = None
) -> Instruction:
    """Per GpSimd core (partitions 0, 16, ..., 112): nonzero indices + index_offset, padding, then the count."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "nonzero_with_count dst", loc)
    src = require_tensor(src, "nonzero_with_count src", loc)
    check_tile(ctx, dst, "nonzero_with_count dst", loc, allow_psum=False)
    check_tile(ctx, src, "nonzero_with_count src", loc, allow_psum=False)
    # only the first partition of each GpSimd core's 16 is written; the others keep their values
    rows = np.zeros(dst.shape, dtype=bool)
    rows[::PARTITIONS_PER_GPSIMD_CORE] = True

    def values(_: Any) -> dict[str, Any]:
        return {
            "src": read_masked(ctx, src, None, loc),
            "prior": np.zeros(dst.shape, dtype=np.float32),  # masked out: never written
            "index_offset": int(index_offset),
            "padding_val": float(padding_val),
        }

    return issue(
        Opcode.NONZERO_WITH_COUNT,
        dst,
        {"src": src},
        values,
        loc,
        mask=rows,
        src_mask=np.ones(src.shape, dtype=bool),
        extent=(src.partition_size(), src.free_size()),
        label="nonzero_with_count",
    )


def nc_stream_shuffle(dst: Any, src: Any, shuffle_mask: Any, location: str | None = None) -> Instruction:
    """Per 32-partition quadrant: dst[i] = src[shuffle_mask[i]] (255: dst[i] unchanged)."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "nc_stream_shuffle dst", loc)
    src = require_tensor(src, "nc_stream_shuffle src", loc)
    check_tile(ctx, dst, "nc_stream_shuffle dst", loc)
    check_tile(ctx, src, "nc_stream_shuffle src", loc)
    try:
        mask = tuple(int(m) for m in shuffle_mask)
    except (TypeError, ValueError):
        raise UsageError(f"nc_stream_shuffle shuffle_mask must be a list of ints, got {shuffle_mask!r}", loc) from None

    # only the output partitions whose mask entry is 255 keep (read) their prior values; the others are overwritten,
    # so a dst that was never written is not an uninitialised read there (nki-library's stream_shuffle_broadcast)
    rows = [bool(mask) and mask[i % len(mask)] == 255 for i in range(dst.partition_size())]
    kept = np.zeros(dst.shape, dtype=bool)
    kept[np.array(rows, dtype=bool)] = True

    def values(_: Any) -> dict[str, Any]:
        return {
            "src": read_masked(ctx, src, None, loc).reshape(src.partition_size(), -1),
            "prior": read_masked(ctx, dst, kept, loc).reshape(dst.partition_size(), -1),
            "shuffle_mask": mask,
        }

    return issue(
        Opcode.NC_STREAM_SHUFFLE,
        dst,
        {"src": src, "prior": dst},
        values,
        loc,
        params={"shuffle_mask": mask},
        extent=(dst.partition_size(), dst.free_size()),
        label="nc_stream_shuffle",
    )
