"""Layout of the row-wise kernels (reductions over the last axis, softmax, norms).

Rows go onto partitions: x is seen as [R, D] (leading dims flattened) and cut into RowBlocks of
p partitions x k rows (k > 1 only for short rows, so each DMA still moves ~16 KiB per partition).
When a block's rows fit in SBUF they stay resident: loaded once, in column chunks so compute on the
first chunk starts while the rest still streams in, and stored chunk by chunk. Rows too long for SBUF
are streamed twice instead (statistics, then output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.kernels._common import FLOAT_DTYPES, require, require_dtype
from trnsim.kernels._stream import RowBlock, blocks_that_fit, col_chunks, prefetch_depth, row_blocks
from trnsim.nki.tensor import NkiTensor

# Bytes per partition per DMA for row kernels: half the elementwise size. Their per-block chain is
# longer (statistics, then normalisation), and smaller blocks shorten the pipeline's fill and drain.
ROW_RUN_BYTES = 8 * 1024

# Dtypes of the row kernels: fp8 has too little precision for statistics over a row.
ROW_DTYPES = tuple(d for d in FLOAT_DTYPES if d.itemsize >= 2)


@dataclass
class RowPlan:
    """How a row kernel walks x: blocks of rows, column chunks of each row, buffering."""

    x2: Any  # x as [R, D]
    rows: int
    cols: int
    blocks: list[RowBlock]
    chunks: list[tuple[int, int]]  # (start, size) column chunks; one chunk [0, D] when k > 1
    resident: bool  # whole rows fit in SBUF (else: two passes over HBM)
    skew: bool  # two resident blocks fit, so block i+1's statistics can go ahead of block i's output
    depth: int  # blocks (resident) or chunks (streamed) loaded ahead


def check_rows(x: Any, kernel: str) -> None:
    require(isinstance(x, NkiTensor), f"{kernel}: x must be a tensor, got {type(x).__name__}")
    require_dtype("x", x, ROW_DTYPES, kernel)
    require(x.ndim >= 1 and x.size > 0, f"{kernel}: x must have at least one dim and one element")


def plan_rows(x: Any, bytes_per_elem: int, reserved_bytes: int = 0, run_bytes: int = ROW_RUN_BYTES) -> RowPlan:
    """Plan for x; bytes_per_elem: SBUF bytes per element of a block (x's tile plus any scratch)."""
    d = x.shape[-1]
    r = x.size // d
    blocks = row_blocks(r, d * x.itemsize, run_bytes)
    k = max(b.k for b in blocks)
    fits = blocks_that_fit(k * d * bytes_per_elem, reserved_bytes)
    resident = fits >= 1
    # a skewed loop holds two blocks while a third loads; else one block at a time
    skew = fits >= 3
    chunks = col_chunks(d, x.itemsize, run_bytes) if k == 1 else [(0, d)]
    if resident:
        depth = prefetch_depth(k * d * bytes_per_elem, reserved_bytes, held=2 if skew else 0)
    else:
        depth = prefetch_depth(max(s for _, s in chunks) * bytes_per_elem, reserved_bytes)
    return RowPlan(x.reshape((r, d)), r, d, blocks, chunks, resident, skew, depth)


def load_block(plan: RowPlan, b: RowBlock) -> Any:
    """A block's rows as a [p, k, D] tile, one DMA per column chunk."""
    t = nl.ndarray((b.p, b.k, plan.cols), plan.x2.dtype, buffer=nl.sbuf)
    for c0, cs in plan.chunks:
        load_chunk(plan, b, c0, cs, t[:, :, c0 : c0 + cs])
    return t


def load_chunk(plan: RowPlan, b: RowBlock, c0: int, cs: int, dst: Any = None) -> Any:
    """Columns c0 .. c0 + cs of a block's rows into dst (a new [p, k, cs] tile if None)."""
    if dst is None:
        dst = nl.ndarray((b.p, b.k, cs), plan.x2.dtype, buffer=nl.sbuf)
    if b.k == 1:
        nisa.dma_copy(dst=dst[:, 0, :], src=plan.x2[b.row : b.row + b.p, c0 : c0 + cs])
    else:  # k whole rows per partition: one contiguous run of k*D elements each
        nisa.dma_copy(dst=dst, src=plan.x2[b.row : b.row + b.rows, :])
    return dst


def store_chunk(out2: Any, b: RowBlock, c0: int, cs: int, src: Any) -> None:
    """Store src [p, k, cs] to columns c0 .. c0 + cs of the block's rows of out2 [R, D]."""
    if b.k == 1:
        nisa.dma_copy(dst=out2[b.row : b.row + b.p, c0 : c0 + cs], src=src[:, 0, :])
    else:
        nisa.dma_copy(dst=out2[b.row : b.row + b.rows, :], src=src)
