"""Explicit multi-buffering: on-chip buffers allocated once and used in turn.

A buffer written for the next iteration while the previous contents are still being read is a
write-after-read hazard: the hardware's semaphores make the write wait for those reads. Allocating a
fresh tile per iteration hides that (a fresh tile has no readers), so the GEMM's streaming buffers are
allocated up front and reused in a fixed rotation: the write into a buffer depends on the reads of
its previous contents, and the depth of the rotation is the prefetch distance the kernel really has.
"""

from __future__ import annotations

from typing import Any

import trnsim.nki.language as nl
from trnsim.kernels._common import pmax


class Ring:
    """`depth` tiles of one shape, handed out in turn (`slot(i)` is tile i mod depth)."""

    def __init__(self, depth: int, shape: tuple[int, ...], dtype: Any, buffer: Any = nl.sbuf) -> None:
        self.tiles = [nl.ndarray(shape, dtype, buffer=buffer) for _ in range(max(1, depth))]

    def slot(self, i: int) -> Any:
        return self.tiles[i % len(self.tiles)]


class ChunkRing:
    """A circular staging buffer of `cols` columns per 128-row tile, for row chunks of varying width.

    Each chunk takes the next `width` columns of every row tile (wrapping to column 0 when it would run
    off the end). A chunk's columns are free again once its last reader is issued (`release`); placing
    a chunk over columns still in use is a sizing bug and fails loudly.
    """

    def __init__(self, row_tiles: int, cols: int, dtype: Any) -> None:
        self.tiles = [nl.ndarray((pmax(), cols), dtype, buffer=nl.sbuf) for _ in range(row_tiles)]
        self.cols = cols
        self.pos = 0
        self.in_use: dict[Any, tuple[int, int]] = {}  # chunk key -> its [start, end) columns

    def place(self, key: Any, width: int) -> int:
        if width > self.cols:
            raise AssertionError(f"chunk of {width} columns does not fit a staging ring of {self.cols}")
        if self.pos + width > self.cols:
            self.pos = 0
        start, end = self.pos, self.pos + width
        for other, (s, e) in self.in_use.items():
            if s < end and start < e:
                raise AssertionError(f"staging ring too small: chunk {key} would overwrite chunk {other}")
        self.in_use[key] = (start, end)
        self.pos = end
        return start

    def release(self, key: Any) -> None:
        del self.in_use[key]
