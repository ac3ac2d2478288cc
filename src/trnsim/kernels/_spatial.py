"""Helpers shared by the NCHW image kernels (conv2d, pooling): argument parsing and padded input slabs.

Both kernels walk the output in bands of rows. A band needs a slab of input rows (the band's rows
times the stride plus the kernel's reach); the slab is loaded into an SBUF tile whose border rows and
columns stand for the padding, so every kernel tap is a plain strided view of that tile. (Pooling
pads rows only and clips its windows at the left and right edges, so its rows DMA contiguously.)
"""

from __future__ import annotations

from typing import Any

import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.kernels._common import require


def pair(value: Any, what: str, kernel: str, minimum: int) -> tuple[int, int]:
    """An int or an (h, w) pair of ints, each at least `minimum`."""
    vals = tuple(value) if isinstance(value, tuple | list) else (value, value)
    ok = len(vals) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in vals)
    require(ok, f"{kernel}: {what} must be an int or a pair of ints, got {value!r}", rule="argument")
    require(min(vals) >= minimum, f"{kernel}: {what} must be >= {minimum}, got {value!r}", rule="argument")
    return int(vals[0]), int(vals[1])


def out_extent(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """Output length along one axis (floor mode, like torch)."""
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def input_rows(r0: int, r1: int, stride: int, reach: int) -> tuple[int, int]:
    """Padded-input rows [lo, hi) that output rows [r0, r1) read; `reach` = dilation * (kernel - 1) + 1."""
    return r0 * stride, (r1 - 1) * stride + reach


def load_slab(pieces: list[tuple[Any, tuple[int, int]]], pad: tuple[int, int], fill: float, engine: Any) -> Any:
    """SBUF tile [P, rows, W + 2 * pad_w] of padded input rows, the pieces stacked on partitions.

    Each piece is (src, (lo, hi)): an HBM view [p, H, W] and the padded-input rows [lo, hi) it needs
    (every piece the same number of rows). The padding strips are filled with `fill` (only where a piece
    has padding; rows that another piece fills with input are overwritten by its DMA, which the
    dependency tracking orders after the fill) on `engine`, then each piece's rows are DMAed in.
    """
    ph, pw = pad
    first, (lo0, hi0) = pieces[0]
    h, w = first.shape[1], first.shape[2]
    parts = sum(src.shape[0] for src, _ in pieces)
    n_rows = hi0 - lo0
    slab = nl.ndarray((parts, n_rows, w + 2 * pw), first.dtype, buffer=nl.sbuf)
    top = max(max(ph - lo, 0) for _, (lo, _) in pieces)  # leading slab rows that are padding
    bottom = max(max(hi - (ph + h), 0) for _, (_, hi) in pieces)  # trailing rows that are padding
    if pw > 0:
        nisa.memset(dst=slab[:, :, 0:pw], value=fill, engine=engine)
        nisa.memset(dst=slab[:, :, pw + w :], value=fill, engine=engine)
    if top > 0:
        nisa.memset(dst=slab[:, 0 : min(top, n_rows), pw : pw + w], value=fill, engine=engine)
    if bottom > 0:
        nisa.memset(dst=slab[:, max(n_rows - bottom, 0) :, pw : pw + w], value=fill, engine=engine)
    p0 = 0
    for src, (lo, hi) in pieces:
        real_lo, real_hi = max(lo, ph), min(hi, ph + h)  # slab rows that hold input, not padding
        if real_hi > real_lo:
            nisa.dma_copy(
                dst=slab[p0 : p0 + src.shape[0], real_lo - lo : real_hi - lo, pw : pw + w],
                src=src[:, real_lo - ph : real_hi - ph, :],
            )
        p0 += src.shape[0]
    return slab


def tap_view(slab: Any, row0: int, rows: int, col0: int, cols: int, stride: tuple[int, int]) -> Any:
    """The [P, rows, cols] strided view of `slab` one kernel tap reads: slab[:, row0 + s*r, col0 + s*c]."""
    sh, sw = stride
    return slab[:, row0 : row0 + (rows - 1) * sh + 1 : sh, col0 : col0 + (cols - 1) * sw + 1 : sw]
