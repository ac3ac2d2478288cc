"""The GEMM's operands: how k-tiles [k, columns] of each side reach SBUF (see _gemm).

- `KMajor` operands are stored [K, cols] in HBM (matmul's b): a k-tile is one DMA.
- `RowMajor` operands are stored [rows, K] (matmul's a, linear's x and w): long row chunks are DMA'd
  into a staging ring (long contiguous rows keep the DMA queues near their peak), then TensorE
  transposes each [128, 128] block into PSUM and VectorE / ScalarE copy the batch to SBUF.

fp8 on cores with double-row matmuls takes K 256 rows per step as [128, 2, .] tiles: row k0 + 2p + j
of K at partition p, slot j, the same way on both sides (a DMA of 256 rows lands that way; the
transposes read every other column).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trnsim.nki.isa as nisa
from trnsim.kernels._buffers import ChunkRing
from trnsim.kernels._common import core, pmax
from trnsim.kernels._evacuate import Evacuator
from trnsim.nki.loop_template import Templates


@dataclass(frozen=True)
class KStep:
    """One matmul step along K: `size` rows of K from k0, as [rows, g, ...] tiles (g = 2: double-row)."""

    k0: int
    size: int
    rows: int
    g: int


def k_steps(k: int, double_row: bool) -> list[KStep]:
    p = pmax()
    steps = []
    k0 = 0
    if double_row:  # [128, 2, .] tiles: row k0 + 2p + j of K sits at partition p, slot j
        while k - k0 >= 2 * p:
            steps.append(KStep(k0, 2 * p, p, 2))
            k0 += 2 * p
    while k0 < k:
        size = min(p, k - k0)
        steps.append(KStep(k0, size, size, 1))
        k0 += size
    return steps


def tiles(start: int, size: int, width: int) -> list[tuple[int, int]]:
    """(offset, size) of consecutive tiles of at most `width` covering [start, start + size)."""
    return [(start + o, min(width, size - o)) for o in range(0, size, width)]


class KMajor:
    """An HBM matrix stored [K, cols]: each k-tile [k, cols] (or a group of them) is one DMA."""

    def __init__(self, hbm: Any) -> None:
        self.hbm = hbm
        self.dtype = hbm.dtype

    def k_tile(self, c0: int, csz: int, step: KStep) -> Any:
        """The k-step's rows [size, csz] of columns [c0, c0 + csz): a DMA of them into [rows, g, csz] puts row
        k0 + g p + j at partition p, slot j."""
        return self.hbm[step.k0 : step.k0 + step.size, c0 : c0 + csz]

    def k_group(self, c0: int, csz: int, k0: int, rows: int, n: int) -> Any:
        """n k-tiles of `rows` rows from row k0 (all full but a lone ragged one) as one access pattern, which a
        DMA into [rows, n, csz] lands row k0 + 128 i + p at [p, i]."""
        p, row = pmax(), self.hbm.strides[0]  # elements between consecutive K rows (columns are unit stride)
        return self.hbm.ap([[row, rows], [p * row, n], [1, csz]], offset=k0 * row + c0)


class RowMajor:
    """An HBM matrix stored [rows, K]: k-tiles [k, rows] are made on chip by TensorE transposes."""

    def __init__(self, hbm: Any) -> None:
        self.hbm = hbm
        self.dtype = hbm.dtype
        self._views: dict[tuple[int, ...], tuple[ChunkRing, Any]] = {}  # staged row views (_staged)

    def load_chunk(self, ring: ChunkRing, key: Any, r0: int, rsz: int, k0: int, ksz: int, templates: Templates) -> int:
        """Rows [r0, r0 + rsz) x K [k0, k0 + ksz) into the staging ring, one DMA per 128 rows; returns
        the chunk's first column in the ring."""
        start = ring.place(key, ksz)
        for t, (ro, rs) in zip(ring.tiles, tiles(r0, rsz, pmax())):
            dst, src = t[:rs, start : start + ksz], self.hbm[ro : ro + rs, k0 : k0 + ksz]
            templates.run("dma", (dst, src), dma, dst, src)  # one DMA: a loop body of its own (loop_template)
        return start

    def transpose(
        self, ring: ChunkRing, col: int, rsz: int, step: KStep, dst: Any, evac: Evacuator, templates: Templates
    ) -> None:
        """dst [k, g, rsz] <- the k-step's columns (from ring column `col`) of the staged rows, transposed."""
        p = pmax()
        rows = [rs for _, rs in tiles(0, rsz, p)]
        per_bank = max(1, core().psum.bank_bytes // self.dtype.itemsize // p)  # transposed blocks per PSUM bank
        for j in range(step.g):
            for b0 in range(0, len(rows), per_bank):
                group = range(b0, min(len(rows), b0 + per_bank))
                width = sum(rows[i] for i in group)
                ps = evac.transient((step.rows, width), self.dtype)
                # K columns col + j, col + j + 2, ...: slot j of the double-row tile
                lo, hi, stride = (col + j, col + step.size, 2) if step.g == 2 else (col, col + step.size, 1)
                srcs = tuple(self._staged(ring, i, rows[i], lo, hi, stride) for i in group)
                # the group's transposes are one loop body (nki/loop_template.py): the same but for ps and srcs
                key = ("transpose", step.g, tuple(rows[i] for i in group))
                templates.run(key, (ps, *srcs), _transposes, ps, srcs)
                evac(dst[:, j, b0 * p : b0 * p + width], ps)

    def _staged(self, ring: ChunkRing, i: int, rows: int, lo: int, hi: int, stride: int) -> Any:
        """ring.tiles[i][:rows, lo:hi:stride], made once (the ring's chunks sit at a few columns in turn)."""
        key = (id(ring), i, rows, lo, hi, stride)
        got = self._views.get(key)
        if got is None:
            got = self._views[key] = (ring, ring.tiles[i][:rows, lo:hi:stride])  # the ring kept: its id stays its own
        return got[1]


def dma(dst: Any, src: Any) -> None:
    nisa.dma_copy(dst=dst, src=src)


def _transposes(ps: Any, srcs: tuple[Any, ...]) -> None:
    """ps [k, sum of rows] <- each src [rows, k] transposed, side by side."""
    c = 0
    for src in srcs:
        r = src.shape[0]
        nisa.nc_transpose(dst=ps[:, c : c + r], data=src)
        c += r
