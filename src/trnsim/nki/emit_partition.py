"""Builders of the GpSimd instructions that work across partitions: tensor_partition_reduce, local_gather
(within 16-partition groups) and topk (16-partition snakes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import UsageError
from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions import local_gather as gather_rec
from trnsim.isa.instructions import tensor_partition_reduce as reduce_rec
from trnsim.isa.instructions import topk as topk_rec
from trnsim.isa.opcodes import Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import check_tile, op_name, read_for_op, read_stored, require_tensor, write

# op names NKI accepts (np.add, nl.add, nl.average, np.max, nl.maximum, ...), as the record's names
PARTITION_REDUCE_OPS = {name: name for name in reduce_rec.OPS}


def tensor_partition_reduce(dst: Any, op: Any, data: Any, location: str | None = None) -> Instruction:
    """dst[1, F...] = op over the partitions of data[P, F...]."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "tensor_partition_reduce dst", loc)
    data = require_tensor(data, "tensor_partition_reduce data", loc)
    check_tile(ctx, dst, "tensor_partition_reduce dst", loc)
    check_tile(ctx, data, "tensor_partition_reduce data", loc)
    name = op_name(op, PARTITION_REDUCE_OPS, "tensor_partition_reduce op", loc)
    return issue(
        Opcode.TENSOR_PARTITION_REDUCE,
        dst,
        {"data": data},
        lambda _: {"data": read_for_op(ctx, data, None, loc, name).reshape(data.partition_size(), -1), "op": name},
        loc,
        params={"op": name},
        extent=(data.partition_size(), data.free_size()),
        label=f"tensor_partition_reduce({name})",
    )


def local_gather(
    dst: Any,
    src_buffer: Any,
    index: Any,
    num_elem_per_idx: Any = 1,
    num_valid_indices: Any = None,
    location: str | None = None,
) -> Instruction:
    """dst = each 16-partition group's contiguous runs of src_buffer at the group's indices."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "local_gather dst", loc)
    src = require_tensor(src_buffer, "local_gather src_buffer", loc)
    idx = require_tensor(index, "local_gather index", loc)
    for t, what in ((dst, "dst"), (src, "src_buffer"), (idx, "index")):
        check_tile(ctx, t, f"local_gather {what}", loc)
    try:
        e = int(num_elem_per_idx)
        valid = None if num_valid_indices is None else int(num_valid_indices)
    except (TypeError, ValueError):
        raise UsageError(
            f"local_gather num_elem_per_idx and num_valid_indices must be ints, got {num_elem_per_idx!r} and "
            f"{num_valid_indices!r}",
            loc,
        ) from None

    def gathered() -> np.ndarray:
        ix = read_stored(ctx, idx, None, loc)
        v = valid if valid is not None else ix.size // (ix.shape[0] // gather_rec.GROUP)
        gather_rec.check_bounds(src.free_size(), ix, e, v, loc)
        return gather_rec.semantics(read_stored(ctx, src, None, loc), ix, e, v)

    return issue(
        Opcode.LOCAL_GATHER,
        dst,
        {"src_buffer": src, "index": idx},
        None,
        loc,
        params={"num_elem_per_idx": e, "num_valid_indices": valid},
        compute=gathered,
        label="local_gather",
    )


def topk(val_dst: Any, idx_dst: Any, src: Any, n: Any, location: str | None = None) -> Instruction:
    """val_dst, idx_dst = the K largest values (ascending) of each 16-partition snake and their positions."""
    ctx = current()
    loc = location or user_location()
    val = require_tensor(val_dst, "topk val_dst", loc)
    idx = require_tensor(idx_dst, "topk idx_dst", loc)
    s = require_tensor(src, "topk src", loc)
    for t, what in ((val, "val_dst"), (idx, "idx_dst"), (s, "src")):
        check_tile(ctx, t, f"topk {what}", loc)
    try:
        count = int(n)
    except (TypeError, ValueError):
        raise UsageError(f"topk n must be an int, got {n!r}", loc) from None

    k = val.free_size()  # every output snake position below K is written; the rest keep their values

    def values() -> np.ndarray:
        vals, positions = topk_rec.semantics(read_stored(ctx, s, None, loc), count, k)
        write(idx, positions.reshape(idx.shape), topk_rec.written(idx.partition_size(), k).reshape(idx.shape))
        return vals.reshape(val.shape)

    return issue(
        Opcode.TOPK,
        val,
        {"src": s},
        None,
        loc,
        params={"n": count},
        outputs={"idx_dst": idx},
        mask=topk_rec.written(val.partition_size(), k).reshape(val.shape),
        extent=(val.partition_size(), k),
        compute=values,
        label="topk",
    )
