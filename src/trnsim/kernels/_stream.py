"""Streaming helpers for the memory-bound kernels (elementwise, reductions, norms).

A memory-bound kernel runs at the speed of its DMAs when three things hold, and these helpers give them:
- every DMA moves long contiguous runs per partition (`row_blocks` packs several short rows into one
  partition, `col_chunks` cuts very long rows), so the per-descriptor overhead is small;
- loads are issued ahead of the compute that needs them (`prefetch`), so the in-order DMA queues never
  sit behind a store that waits for an engine;
- a row vector used by every row (gamma, a bias) is loaded once and broadcast across partitions on chip
  (`broadcast_row`), not re-read from HBM by every partition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.isa.cost import dma_queue_occupancy_ns, dma_queue_pieces, dma_transfer_ns
from trnsim.kernels._common import cdiv, core, pmax, psum_fmax, sbuf_bytes_per_partition

# Contiguous bytes per partition that one DMA should move. The DMA guide: >= 2 KiB per partition
# approaches peak and >= 4 KiB saturates; 16 KiB puts the descriptor overhead under 2%.
DMA_RUN_BYTES = 16 * 1024
# Blocks loaded ahead of the one being computed: two keep the queues busy while an engine is late.
PREFETCH_DEPTH = 3
# Share of SBUF the streamed blocks may use (the rest is for resident vectors and per-row statistics).
SBUF_SHARE = 0.75

T = TypeVar("T")
L = TypeVar("L")


@dataclass(frozen=True)
class RowBlock:
    """`p` partitions x `k` consecutive rows each, starting at row `row`: rows row .. row + p*k - 1."""

    row: int
    p: int
    k: int

    @property
    def rows(self) -> int:
        return self.p * self.k


def rows_per_transfer(partitions: int, run_bytes: int, limit: int) -> int:
    """The fewest runs of `run_bytes` per partition (at most `limit`) that make a DMA of `partitions`
    partitions data-bound: each of its pieces (isa/cost.py dma_queue_pieces) holds its queue for its data
    time, not the per-transfer overhead (dma_queue_occupancy_ns)."""
    c = core()
    pieces = dma_queue_pieces(c, partitions)
    for k in range(1, max(1, limit) + 1):
        data = dma_transfer_ns(c.dma, partitions * k * run_bytes / pieces, run_bytes, c.dma.queue_bytes_per_ns)
        if dma_queue_occupancy_ns(c.dma, data) <= data:
            return k
    return max(1, limit)


def row_blocks(n_rows: int, row_bytes: int, run_bytes: int = DMA_RUN_BYTES) -> list[RowBlock]:
    """Cut `n_rows` rows into blocks that fill the partitions, k rows per partition.

    Short rows are packed k to a partition (partition i of a block holds rows row + i*k .. row + i*k + k - 1,
    which are contiguous in HBM) so each DMA descriptor is about `run_bytes` long. Ragged row counts end
    with a block of fewer rows per partition, then one with fewer partitions.
    """
    pm = pmax()
    k = max(1, min(run_bytes // max(1, row_bytes), n_rows // pm))
    blocks = []
    row = 0
    while n_rows - row >= pm * k:
        blocks.append(RowBlock(row, pm, k))
        row += pm * k
    if n_rows - row >= pm:  # the rest still fills every partition with k2 < k rows
        k2 = (n_rows - row) // pm
        blocks.append(RowBlock(row, pm, k2))
        row += pm * k2
    if len(blocks) > 1 and blocks[-1].k > 1:
        # Taper: cut the last block into halves, quarters, ... so the compute left after the last load
        # (which nothing can overlap) is small.
        last = blocks.pop()
        row, k = last.row, last.k
        while k > 0:
            step = max(1, k // 2)
            blocks.append(RowBlock(row, pm, step))
            row += pm * step
            k -= step
    if row < n_rows:
        blocks.append(RowBlock(row, n_rows - row, 1))
    return blocks


def col_chunks(n_cols: int, itemsize: int, run_bytes: int = DMA_RUN_BYTES) -> list[tuple[int, int]]:
    """(start, size) column chunks of about `run_bytes` each (one chunk when the row is short)."""
    size = max(1, run_bytes // itemsize)
    n = cdiv(n_cols, size)
    size = cdiv(n_cols, n)  # even chunks: no tiny last chunk
    return [(c * size, min(size, n_cols - c * size)) for c in range(n)]


def block_run_bytes(widest: int, bytes_per_elem: int, reserved_bytes: int = 0, live_blocks: int = 2) -> int:
    """The longest DMA run per partition (bytes of the widest operand), at most DMA_RUN_BYTES, for which
    `live_blocks` blocks fit in the streaming share of SBUF beside `reserved_bytes`, when each element of a
    block takes `bytes_per_elem` over all its tiles. Two blocks are live in a `prefetch` loop with nothing
    loaded ahead (the one computed and the next loading), three with one block ahead."""
    budget = (int(sbuf_bytes_per_partition() * SBUF_SHARE) - reserved_bytes) // live_blocks
    fitting = budget * widest // max(1, bytes_per_elem)
    return max(widest, min(DMA_RUN_BYTES, fitting - fitting % widest))


def blocks_that_fit(block_bytes: int, reserved_bytes: int = 0) -> int:
    """How many blocks of `block_bytes` per partition fit in the streaming share of SBUF."""
    return (int(sbuf_bytes_per_partition() * SBUF_SHARE) - reserved_bytes) // max(1, block_bytes)


def prefetch_depth(block_bytes: int, reserved_bytes: int = 0, held: int = 1) -> int:
    """How many blocks to load ahead (0: none), given each block's SBUF bytes per partition and how many
    blocks the consumer still holds while the next one loads: 1 for a `for` loop over `prefetch` (its
    loop variable keeps the previous block alive), 2 for a skewed loop."""
    return max(0, min(PREFETCH_DEPTH, blocks_that_fit(block_bytes, reserved_bytes) - 1 - held))


def prefetch(items: Iterable[T], load: Callable[[T], L], depth: int = PREFETCH_DEPTH) -> Iterator[tuple[T, L]]:
    """Yield (item, load(item)) with the loads of the next `depth` items already issued.

    Issue order is what the DMA queues see: load 0, load 1, load 2, (compute 0, store 0), load 3, ...
    so store i sits behind `depth` loads instead of in front of them. Each loaded tile is freed when the
    caller drops it, so at most depth + 1 blocks are live.
    """
    pending: deque[tuple[T, L]] = deque()
    for item in items:
        pending.append((item, load(item)))
        if len(pending) > depth:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


def skewed(items: Iterable[T], first: Callable[[T], L], second: Callable[[T, L], None], skew: bool = True) -> None:
    """Run first(item) for every item and second(item, its result), with item i+1's first phase issued
    before item i's second phase (unless skew is False, when two items do not fit in SBUF at once).

    Engine queues run in program order, so a kernel that issues [stats(i), normalise(i), stats(i+1), ...]
    makes stats(i+1) wait behind normalise(i), which waits on the other engine's part of stats(i): the
    engines take turns. Skewed, each engine always has the next block's work queued.
    """
    iterator = iter(items)
    if not skew:  # one block at a time, dropped before the next one loads (only one fits in SBUF)
        while (item := next(iterator, None)) is not None:
            second(item, first(item))
            del item
        return
    previous: tuple[T, L] | None = None
    for item in iterator:
        result = first(item)
        if previous is not None:
            second(*previous)
        previous = (item, result)
    if previous is not None:
        second(*previous)


def broadcast_row(dst: Any, src: Any, keep_psum: bool = False) -> list[tuple[int, Any]]:
    """dst[p, :] = src[:] for every partition p of the SBUF tile dst [P, D]; src is an HBM vector [D].

    One DMA brings the vector into a single partition, then TensorE multiplies it by a row of ones
    (contraction over that one partition), which writes it to every partition of PSUM, 512 columns at a
    time. This reads HBM once instead of once per partition. With keep_psum the fp32 PSUM tiles are
    returned as (first column, tile) pairs, to serve as operands too.
    """
    p, d = dst.shape
    ones = nl.ndarray((1, p), src.dtype, buffer=nl.sbuf)
    nisa.memset(dst=ones, value=1.0)
    kept = []
    step = psum_fmax()
    for s0 in range(0, d, 8 * step):  # the vector comes in through one partition, a few KiB at a time
        s1 = min(d, s0 + 8 * step)
        row = nl.ndarray((1, s1 - s0), src.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=row, src=src[s0:s1])
        for c0 in range(s0, s1, step):
            c1 = min(s1, c0 + step)
            ps = nl.ndarray((p, c1 - c0), nl.float32, buffer=nl.psum)
            nisa.nc_matmul(ps, ones, row[:, c0 - s0 : c1 - s0])
            nisa.tensor_copy(dst=dst[:, c0:c1], src=ps)
            if keep_psum:
                kept.append((c0, ps))
    return kept


def const_column(value: float, p: int | None = None) -> Any:
    """A [P, 1] fp32 tile holding `value` (an activation bias operand; NC-v2 takes no scalar bias)."""
    t = nl.ndarray((p or pmax(), 1), nl.float32, buffer=nl.sbuf)
    nisa.memset(dst=t, value=value)
    return t
