"""conv2d's stationary operands: w [O, C/groups, kh, kw] -> per (tile, chunk) [channels, taps, outputs].

The weights arrive in their natural layout, output channels outermost, so rows of w load into SBUF
contiguously with outputs on partitions; TensorE then transposes each tap's [outputs, channels] slice.
With packed groups, each group's rows land in its own column block of a zeroed tile, so the transpose
is block-diagonal (diagonal for depthwise conv). A chunk with kernel rows folded in has (kernel row,
channel) columns, one DMA per kernel row, and its taps are the kernel columns.
"""

from __future__ import annotations

from typing import Any

import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.kernels._common import efficient_dma_row_bytes, psum_fmax
from trnsim.kernels._conv_plan import Geometry, OutTile, split


class ConvWeights:
    """Stationaries of one block of output tiles (all tiles of a block have chunks of the same shapes).

    `load(k0, k1)` DMAs the rows for chunks [k0, k1) of every tile; `prepare(k)` transposes chunk k
    (a no-op when done), so a kernel can place the transposes in TensorE's in-order queue where the
    rows have arrived; `tap(t, k, i, j)` is the [partitions, outputs] stationary of one matmul (i is
    None for a chunk with the kernel rows folded in).
    """

    def __init__(self, w: Any, block: list[OutTile], g: Geometry) -> None:
        self.w, self.block, self.g = w, block, g
        self.n_chunks = len(block[0].chunks)
        self.rows: dict[tuple[OutTile, int], Any] = {}  # loaded, not yet transposed: [outputs, chunk, taps]
        self.stationary: dict[tuple[OutTile, int], Any] = {}  # [chunk, taps, outputs]

    def load_groups(self) -> list[tuple[int, int]]:
        """Chunk-index ranges loaded by one DMA per tile: enough channel chunks for >= 2 KiB rows."""
        first = self.block[0].chunks[0]
        if first.rows:  # folded chunks load kernel row by kernel row
            return [(k, k + 1) for k in range(self.n_chunks)]
        chunk_bytes = (first.c1 - first.c0) * self.g.taps * self.w.dtype.itemsize
        return split(0, self.n_chunks, max(1, efficient_dma_row_bytes() // chunk_bytes))

    def load(self, k0: int, k1: int) -> None:
        """DMA the rows of chunks [k0, k1) of every tile: [outputs, partitions of the chunks, taps per chunk]."""
        g = self.g
        for t in self.block:
            first, last = t.chunks[k0], t.chunks[k1 - 1]
            if first.rows:
                rows = nl.ndarray((t.o1 - t.o0, first.parts, g.kw), self.w.dtype, buffer=nl.sbuf)
                n_ch = first.c1 - first.c0
                for idx, r in enumerate(first.rows):  # partition block idx: kernel row r of every channel
                    src = self.w[t.o0 : t.o1, first.c0 - t.c0 : first.c1 - t.c0, r, :]
                    nisa.dma_copy(dst=rows[:, idx * n_ch : (idx + 1) * n_ch, :], src=src)
                self.rows[(t, k0)] = rows
                continue
            c0, c1 = first.c0, last.c1
            rows = nl.ndarray((t.o1 - t.o0, c1 - c0, g.taps), self.w.dtype, buffer=nl.sbuf)
            if t.g1 - t.g0 > 1:
                nisa.memset(dst=rows, value=0.0)
            w_rows = self.w.reshape((g.o, g.cg * g.taps))
            for grp in range(t.g0, t.g1):
                o0, o1 = max(t.o0, grp * g.og), min(t.o1, (grp + 1) * g.og)
                gc0, gc1 = max(c0, grp * g.cg), min(c1, (grp + 1) * g.cg)  # the group's channels here
                src = w_rows[o0:o1, (gc0 - grp * g.cg) * g.taps : (gc1 - grp * g.cg) * g.taps]
                nisa.dma_copy(dst=rows[o0 - t.o0 : o1 - t.o0, gc0 - c0 : gc1 - c0, :], src=src)
            for k in range(k0, k1):
                ch = t.chunks[k]
                self.rows[(t, k)] = rows[:, ch.c0 - c0 : ch.c1 - c0, :]

    def prepare(self, k: int) -> None:
        """Transpose chunk k of every tile: several taps into one PSUM bank, then one copy out."""
        if k >= self.n_chunks or (self.block[0], k) in self.stationary:
            return
        for t in self.block:
            rows = self.rows.pop((t, k))
            m, c, taps = rows.shape
            per_bank = max(1, (psum_fmax() * 4) // (m * rows.dtype.itemsize))
            stat = nl.ndarray((c, taps, m), rows.dtype, buffer=nl.sbuf)
            for t0, t1 in split(0, taps, per_bank):
                pt = nl.ndarray((c, t1 - t0, m), rows.dtype, buffer=nl.psum)
                for tap in range(t0, t1):
                    nisa.nc_transpose(dst=pt[:, tap - t0, :], data=rows[:, :, tap])
                nisa.tensor_copy(dst=stat[:, t0:t1, :], src=pt)
            self.stationary[(t, k)] = stat

    def tap(self, t: OutTile, k: int, i: int | None, j: int) -> Any:
        return self.stationary[(t, k)][:, j if i is None else i * self.g.kw + j, :]
