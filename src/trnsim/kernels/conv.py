"""conv2d (NCHW, stride / padding / dilation / groups) as an implicit GEMM on TensorE; pooling re-exported.

out[n, o, y, x] = bias[o] + sum over (c, i, j) of w[o, c, i, j] * xpad[n, g(o)*Cg + c, y*sh + i*dh, x*sw + j*dw]

The contraction runs over input channels on the partition axis: one matmul per kernel tap (i, j) and
channel chunk (<= 128), all accumulating into one PSUM tile per (output tile, pixel block):
- moving: the padded input slab (zero-filled borders, interior DMAed) viewed at tap (i, j) with the
  stride, [channels, rows, cols]: output pixels on the free axis, <= 512 (one PSUM bank);
- stationary: w[o_tile, chunk, i, j] transposed to [channels, outputs <= 128] (see _conv_weights).
Small groups are packed block-diagonally into one 128-row matmul, so depthwise conv is a matmul with
a diagonal stationary rather than a per-channel loop; with few channels and no groups (an RGB stem)
kernel rows are folded into the contraction instead (see _conv_plan.Chunk). The bias is added, and
the result cast, in the PSUM evacuation, which alternates between ScalarE and VectorE.

Output rows go in bands; the next band's input is prefetched while this one computes, and matmuls of
up to four accumulation groups are interleaved (see _GROUPS_IN_FLIGHT).
"""

from __future__ import annotations

from typing import Any

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.kernels._conv_plan import (
    Band,
    Chunk,
    Geometry,
    OutTile,
    geometry,
    out_tiles,
    pixel_bands,
    weight_blocks,
)
from trnsim.kernels._conv_weights import ConvWeights
from trnsim.kernels._spatial import load_slab, tap_view
from trnsim.kernels.pool import avg_pool2d, max_pool2d

__all__ = ["avg_pool2d", "conv2d", "max_pool2d"]

# Accumulation groups (PSUM tiles) whose matmuls are interleaved: a matmul accumulating into the tile
# the previous matmul wrote waits for that result, and alternating between groups hides the wait.
# Half of the 8 PSUM banks, so the next groups start while these are evacuated.
_GROUPS_IN_FLIGHT = 4


def _bias_columns(bias: Any, tiles: list[OutTile], g: Geometry) -> dict[OutTile, Any]:
    """Per output tile, the bias as an fp32 [outputs, 1] column (a per-partition operand)."""
    if bias is None:
        return {}
    rows = bias.reshape((g.o, 1))
    cols = {}
    for t in tiles:
        cols[t] = nl.ndarray((t.o1 - t.o0, 1), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=cols[t], src=rows[t.o0 : t.o1, :])
    return cols


def _evacuate(dst: Any, acc: Any, bias: Any, on_vector: bool) -> None:
    """PSUM accumulator -> SBUF output tile, adding the bias and casting to the output dtype."""
    if not on_vector:
        nisa.activation(dst=dst, op=nl.copy, data=acc, bias=bias)
    elif bias is None:
        nisa.tensor_copy(dst=dst, src=acc, engine=nisa.vector_engine)
    else:
        nisa.tensor_scalar(dst=dst, data=acc, op0=nl.add, operand0=bias, engine=nisa.vector_engine)


def _conv_band(
    planes: Any, n: int, band: Band, slabs: dict, weights: ConvWeights, bias_cols: dict, g: Geometry
) -> None:
    """All output tiles of one row band of image n: matmuls, evacuation, and a store per tile.

    `planes` is the output as [N*O, Ho, Wo].
    """
    r0, r1, pixel_blocks = band
    (sh, sw), (dh, dw) = g.stride, g.dilation
    # (chunk, kernel row or None when folded into the chunk, kernel col, position among the chunk's taps)
    steps = [
        (k, i, j, pos)
        for k, chunk in enumerate(weights.block[0].chunks)
        for pos, (i, j) in enumerate(g.chunk_taps(chunk))
    ]
    groups = [(t, pb) for t in weights.block for pb in pixel_blocks]  # tile-major: a tile finishes early
    res: dict[OutTile, Any] = {}
    for first in range(0, len(groups), _GROUPS_IN_FLIGHT):
        batch = groups[first : first + _GROUPS_IN_FLIGHT]
        accs = [
            nl.ndarray((t.o1 - t.o0, (b - a) * (c1 - c0)), nl.float32, buffer=nl.psum) for t, (a, b, c0, c1) in batch
        ]
        for s, (k, i, j, pos) in enumerate(steps):
            if pos == len(g.chunk_taps(weights.block[0].chunks[k])) // 2:
                weights.prepare(k + 1)  # in band 0 only: the next chunk's transposes, midway through this one
            for acc, (t, (a, b, c0, c1)) in zip(accs, batch):
                row = (a - r0) * sh + (0 if i is None else i * dh)
                window = tap_view(slabs[t.chunks[k]], row, b - a, c0 * sw + j * dw, c1 - c0, g.stride)
                nisa.nc_matmul(acc, weights.tap(t, k, i, j), window, accumulate=s > 0)
        for e, (acc, (t, (a, b, c0, c1))) in enumerate(zip(accs, batch)):
            if t not in res:
                res[t] = nl.ndarray((t.o1 - t.o0, r1 - r0, g.wo), planes.dtype, buffer=nl.sbuf)
            _evacuate(res[t][:, a - r0 : b - r0, c0:c1], acc, bias_cols.get(t), on_vector=e % 2 == 1)
            if (a, b, c0, c1) == pixel_blocks[-1]:
                nisa.dma_copy(dst=planes[n * g.o + t.o0 : n * g.o + t.o1, r0:r1, :], src=res.pop(t))


@nki.jit
def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d for NCHW x [N, C, H, W] and w [O, C/groups, kh, kw] -> [N, O, Ho, Wo]."""
    g = geometry(x, w, bias, stride, padding, dilation, groups)
    # Allocated as [N*O, Ho, Wo] planes, returned as [N, O, Ho, Wo]: the simulator tracks dependencies by
    # (first dim, rest) boxes, and stores of different row bands of one output tile overlap as boxes of
    # an [N, O, Ho, Wo] allocation but not of a planes one.
    planes = nl.ndarray((g.n * g.o, g.ho, g.wo), x.dtype, buffer=nl.shared_hbm)
    tiles = out_tiles(g)
    blocks = weight_blocks(tiles, g, x.dtype.itemsize)
    n_chunks = len({ch for t in tiles for ch in t.chunks})
    # A single output tile gets two pixel blocks per band, so there are two groups to interleave.
    bands = pixel_bands(g, n_chunks, x.dtype.itemsize, 2 if max(len(b) for b in blocks) == 1 else 1)
    bias_cols = _bias_columns(bias, tiles, g)
    work = [(n, band) for n in range(g.n) for band in bands]

    def load(n: int, band: Band, chunks: list[Chunk]) -> dict[Chunk, Any]:
        """Input slabs of band for each chunk (a folded chunk stacks one row-shifted slab per kernel row)."""
        slabs = {}
        for ch in chunks:
            pieces = [(x[n, ch.c0 : ch.c1, :, :], rows) for rows in g.chunk_rows(ch, band[0], band[1])]
            slabs[ch] = load_slab(pieces, g.pad, 0.0, nisa.gpsimd_engine)  # GpSimd is otherwise idle here
        return slabs

    for block in blocks:
        weights = ConvWeights(w, block, g)
        chunks_at = [list(dict.fromkeys(t.chunks[k] for t in block)) for k in range(weights.n_chunks)]
        # DMA order = the order the matmuls use the data: chunk by chunk, weights then the first band.
        slabs: dict[Chunk, Any] = {}
        for k0, k1 in weights.load_groups():
            weights.load(k0, k1)
            for k in range(k0, k1):
                slabs.update(load(*work[0], chunks_at[k]))
        weights.prepare(0)
        for step, (n, band) in enumerate(work):
            # Prefetch the next band before this band's stores enter the (in-order) DMA queues.
            nxt = load(*work[step + 1], [ch for cs in chunks_at for ch in cs]) if step + 1 < len(work) else {}
            _conv_band(planes, n, band, slabs, weights, bias_cols, g)
            slabs = nxt
    return planes.reshape((g.n, g.o, g.ho, g.wo))
