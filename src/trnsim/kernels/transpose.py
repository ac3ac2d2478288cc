"""`transpose`: [M, N] -> [N, M], and the last two axes of a batched [B, M, N].

TensorE transposes 128 x 128 blocks (nc_transpose: a matmul against the identity, SBUF -> PSUM), which is
cheap next to the DMAs (128 cycles per block). The work is cut into panels of [Mp, Np] elements so that
both DMA directions move long contiguous runs: loads read Np-element pieces of x's rows, stores write
Mp-element pieces of the output's rows. Per panel:
    load    the panel's m-blocks, each [128 rows of x, Np]                    (one DMA per m-block)
    TensorE transpose every 128 x 128 block into PSUM, one bank per group of m-blocks
    copy    PSUM -> SBUF into the output panel [128 rows of out, Mp]          (VectorE / ScalarE, balanced)
    store   the panel's n-blocks, k at a time as [128 partitions, k rows of out, Mp]   (one DMA per group)
Every DMA piece holds its queue at least the per-transfer overhead (isa/cost.py), so stores group k
n-blocks, k the fewest that make a piece data-bound (_stream.rows_per_transfer): partition p holds out
rows p*k .. p*k + k - 1 of the group (consecutive in HBM), so its transposes read every k-th column.
Panels are loaded ahead of compute (_stream.prefetch). A DMA-only transpose would need one descriptor per
element (every run 2-4 bytes long), far below the 2 KiB per descriptor the DMA engines need.
"""

from __future__ import annotations

from typing import Any

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.kernels._common import FLOAT_DTYPES, core, pmax, require, require_dtype, sbuf_bytes_per_partition
from trnsim.kernels._engine_load import EngineLoad
from trnsim.kernels._stream import SBUF_SHARE, prefetch, prefetch_depth, rows_per_transfer
from trnsim.nki.tensor import NkiTensor

# Bytes of each contiguous run the panel DMAs move (rows of x in, rows of the output out).
PANEL_RUN_BYTES = 4 * 1024


@nki.jit
def transpose(x):
    """Swap the last two axes of a 2-D [M, N] or 3-D [B, M, N] tensor; the result has x's dtype."""
    require(isinstance(x, NkiTensor), f"transpose: x must be a tensor, got {type(x).__name__}")
    require_dtype("x", x, FLOAT_DTYPES, "transpose")
    require(x.ndim in (2, 3), f"transpose: x must be 2-D [M, N] or 3-D [B, M, N], got {list(x.shape)}")
    require(x.size > 0, "transpose: x is empty")
    *batch, m, n = x.shape
    b_count = batch[0] if batch else 1
    out = nl.ndarray((*batch, n, m), x.dtype, buffer=nl.shared_hbm)
    x3 = x.reshape((b_count, m, n))
    out3 = out.reshape((b_count, n, m))

    pm = pmax()
    # each axis' panel takes the SBUF the other's leaves (a short axis lets the other grow)
    mp = _panel(m, x.itemsize, _panel(n, x.itemsize))
    np_ = _panel(n, x.itemsize, mp)
    panels = [(b, m0, n0) for b in range(b_count) for m0 in range(0, m, mp) for n0 in range(0, n, np_)]
    # input panels are loaded ahead; two output panels (this one, and the last one's while it stores) are held
    panel_bytes = _ceil(mp, pm) * np_ * x.itemsize
    depth = prefetch_depth(panel_bytes, reserved_bytes=2 * panel_bytes)
    load = EngineLoad()
    group = core().psum.bank_bytes // x.itemsize // pm  # m-blocks whose transposes share one PSUM bank

    def load_panel(panel: tuple[int, int, int]) -> Any:
        b, m0, n0 = panel
        mw, nw = min(mp, m - m0), min(np_, n - n0)
        xt = nl.ndarray((pm, _ceil(mw, pm), nw), x.dtype, buffer=nl.sbuf)
        for i, r0 in enumerate(range(0, mw, pm)):
            rows = min(pm, mw - r0)
            nisa.dma_copy(dst=xt[:rows, i, :], src=x3[b, m0 + r0 : m0 + r0 + rows, n0 : n0 + nw])
        return xt

    for (b, m0, n0), xt in prefetch(panels, load_panel, depth):
        mw, nw = min(mp, m - m0), min(np_, n - n0)
        m_blocks = [(i, r0, min(pm, mw - r0)) for i, r0 in enumerate(range(0, mw, pm))]
        ot = nl.ndarray((pm, _ceil(nw, pm), mw), x.dtype, buffer=nl.sbuf)
        for c0, cols, k in _store_groups(nw, rows_per_transfer(pm, mw * x.itemsize, nw // pm)):
            for j in range(k):  # slot j: out rows c0 + p*k + j, i.e. x columns c0 + j, c0 + j + k, ...
                for g in range(0, len(m_blocks), group):
                    blocks = m_blocks[g : g + group]
                    g0 = blocks[0][1]
                    gw = blocks[-1][1] + blocks[-1][2] - g0
                    ps = nl.ndarray((cols, gw), x.dtype, buffer=nl.psum)
                    for i, r0, rows in blocks:
                        src = xt[:rows, i, c0 + j : c0 + j + (cols - 1) * k + 1 : k]
                        nisa.nc_transpose(dst=ps[:, r0 - g0 : r0 - g0 + rows], data=src)
                    dst = ot[:cols, c0 // pm + j, g0 : g0 + gw]
                    if load.pick(vector=load.vector_scalar_cycles(gw), scalar=load.scalar_cycles(gw)) == "vector":
                        nisa.tensor_copy(dst=dst, src=ps)
                    else:
                        nisa.activation(dst=dst, op=nl.copy, data=ps)
            # [cols, k, mw] in SBUF -> cols * k consecutive out rows: partition p, slot j is row c0 + p*k + j
            src = ot[:cols, c0 // pm : c0 // pm + k, :]
            nisa.dma_copy(dst=out3[b, n0 + c0 : n0 + c0 + cols * k, m0 : m0 + mw], src=src)
    return out


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _store_groups(nw: int, k: int) -> list[tuple[int, int, int]]:
    """(first column, partitions, rows per partition) of the panel's stores: groups of k full 128-column
    blocks while they last, then the rest one block per store."""
    pm = pmax()
    groups = []
    c0 = 0
    while nw - c0 >= k * pm > pm:
        groups.append((c0, pm, k))
        c0 += k * pm
    groups += [(c, min(pm, nw - c), 1) for c in range(c0, nw, pm)]
    return groups


def _panel(extent: int, itemsize: int, other: int | None = None) -> int:
    """Panel size along one axis: PANEL_RUN_BYTES of elements, in whole 128-blocks, within the SBUF budget
    next to a panel of `other` along the other axis (None: a square panel)."""
    pm = pmax()
    size = max(pm, PANEL_RUN_BYTES // itemsize // pm * pm)

    def tile_bytes(s: int) -> int:
        return s * (s if other is None else _ceil(other, pm) * pm) // pm * itemsize

    # five panel tiles per partition: three inputs (one loading ahead), two outputs
    while size > pm and 5 * tile_bytes(size) > sbuf_bytes_per_partition() * SBUF_SHARE:
        size -= pm
    return min(size, _ceil(extent, pm) * pm)
