"""Builder of dma_compute: a DMA queue adds up to 16 sources element-wise (fp32) into dst."""

from __future__ import annotations

from typing import Any

from trnsim.errors import UsageError
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import op_name, read_f32, require_tensor

REDUCE_OPS = {"add": "add"}


def dma_compute(
    dst: Any, srcs: Any, reduce_op: Any, scales: Any = None, unique_indices: bool = True, location: str | None = None
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "dma_compute dst", loc)
    if not isinstance(srcs, list | tuple):
        raise UsageError(f"dma_compute srcs must be a list of tensors, got {type(srcs).__name__}", loc)
    tiles = [require_tensor(t, f"dma_compute srcs[{i}]", loc) for i, t in enumerate(srcs)]
    ks = [1.0] * len(tiles) if scales is None else list(scales)
    if len(ks) != len(tiles):
        raise UsageError(f"dma_compute has {len(tiles)} srcs but {len(ks)} scales", loc, rule="scales")
    name = op_name(reduce_op, REDUCE_OPS, "dma_compute reduce_op", loc)
    try:
        factors = tuple(float(k) for k in ks)
    except (TypeError, ValueError):
        raise UsageError(f"dma_compute scales must be numbers, got {scales!r}", loc, rule="scales") from None
    inputs = {f"srcs[{i}]": t for i, t in enumerate(tiles)}
    return issue(
        Opcode.DMA_COMPUTE,
        dst,
        inputs,
        lambda _: {"srcs": [read_f32(ctx, t, None, loc) for t in tiles], "scales": list(factors)},
        loc,
        params={"reduce_op": name, "scales": factors, "unique_indices": bool(unique_indices)},
        label=f"dma_compute({len(tiles)} srcs)",
    )
