"""max_pool2d and avg_pool2d (NCHW, like torch's defaults: floor mode, avg counts the padding).

Each (image, channel) plane is independent, so planes go on partitions and the spatial window on
the free axis; every kernel tap is a strided view of an input slab (padded above and below; windows
are clipped at the left and right edges so the rows DMA contiguously), combined tap by tap with
two-input max / add instructions. The taps are split between VectorE and GpSimd (in proportion to
their throughput) into two partial results that are combined at the end. When there are fewer planes
than partitions, several row bands of the image share one tile so that every partition works.
"""

from __future__ import annotations

from typing import Any

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.kernels._common import cdiv, pmax, require, require_dtype, sbuf_bytes_per_partition
from trnsim.kernels._engine_load import instruction_ns
from trnsim.kernels._spatial import input_rows, load_slab, out_extent, pair, tap_view

POOL_DTYPES = (dtypes.float32, dtypes.bfloat16)
_TARGET_ELEMS = 4096  # output elements per partition per tile: amortises the per-instruction cost
_MIN_TILES = 4
_PREFETCH = 2


def _split(lo: int, hi: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, hi)) for a in range(lo, hi, size)]


def _gpsimd_taps(taps: int, elems: int, dtype: Any, kind: str) -> int:
    """How many of `taps` taps (each two row halves of `elems` elements) to give GpSimd.

    Estimated from the ISA's cost of the tensor_tensor each tap issues on either engine (with the
    target's clocks), so both engines take about as long; VectorE also does the final combine. An
    all-bf16 max runs in VectorE's bf16 mode; sums accumulate in fp32.
    """
    args = {"n_inputs": 2, "alu_op": kind, "all_bf16": dtype == dtypes.bfloat16 and kind == "max"}
    v_ns = 2 * instruction_ns(Opcode.TENSOR_TENSOR, Engine.VECTOR, elems, **args)
    g_ns = 2 * instruction_ns(Opcode.TENSOR_TENSOR, Engine.GPSIMD, elems, **args)
    return min(range(taps), key=lambda n_gp: max((taps - n_gp + 1) * v_ns, n_gp * g_ns))


def _reduce_taps(acc: Any, taps: list[Any], op: Any, fill: float, engine: Any) -> None:
    """acc = op over the taps, each a (view, (x0, x1)) of its valid output columns, on one engine.

    Windows are clipped at the image's left and right edges instead of padding the slab's rows (so the
    rows DMA contiguously); a tap covering every column starts the result, else `fill` does. Each step
    runs on two row halves in turn, so one half's instruction never waits for the other's result.
    """
    rows, wo = acc.shape[1], acc.shape[2]
    halves = [(0, rows)] if rows == 1 else [(0, rows // 2), (rows // 2, rows)]
    full = [view for view, cols in taps if cols == (0, wo)]
    rest = [(view, cols) for view, cols in taps if cols != (0, wo)] + [(v, (0, wo)) for v in full[2:]]
    for r0, r1 in halves:
        if len(full) >= 2:
            nisa.tensor_tensor(
                dst=acc[:, r0:r1], data1=full[0][:, r0:r1], data2=full[1][:, r0:r1], op=op, engine=engine
            )
        elif full:
            nisa.tensor_copy(dst=acc[:, r0:r1], src=full[0][:, r0:r1], engine=engine)
        else:
            nisa.memset(dst=acc[:, r0:r1], value=fill, engine=engine)
    for view, (x0, x1) in rest:
        for r0, r1 in halves:
            part = acc[:, r0:r1, x0:x1]
            nisa.tensor_tensor(dst=part, data1=part, data2=view[:, r0:r1], op=op, engine=engine)


def _finish(res: Any, partials: list[Any], kind: str, scale: float) -> None:
    """res = the two engines' partial results combined (max, or the sum times 1 / window size) and cast."""
    if kind == "max":
        if len(partials) == 1:
            nisa.tensor_copy(dst=res, src=partials[0])
        else:
            nisa.tensor_tensor(dst=res, data1=partials[0], data2=partials[1], op=nl.maximum)
        return
    total = partials[0]
    if len(partials) == 2:
        total = nl.ndarray(res.shape, nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=total, data1=partials[0], data2=partials[1], op=nl.add)
    nisa.activation(dst=res, op=nl.copy, data=total, scale=scale)  # ScalarE: the scale and cast are free


Unit = tuple[tuple[int, int], tuple[int, int]]  # (planes [q0, q1), output rows [b0, b1))


def _plan_tiles(n_planes: int, ho: int, wo: int, row_bytes: int, kh: int, sh: int) -> list[list[Unit]]:
    """Tiles of work, each a list of units stacked on partitions (all the same number of rows).

    Row bands of the output are small enough for SBUF, at least _MIN_TILES in all (so loads, compute
    and stores overlap), and when planes are few, several bands of them share a tile's partitions.
    """
    p = pmax()
    chunks = _split(0, n_planes, p)
    fold = max(1, p // n_planes)
    max_rows = max(1, ((sbuf_bytes_per_partition() // 8) // row_bytes - kh) // sh + 1)
    band = max(1, min(ho, max_rows, _TARGET_ELEMS // wo, cdiv(ho * len(chunks), fold * _MIN_TILES)))
    tiles: list[list[Unit]] = []
    for b in _split(0, ho, band):
        for q in chunks:
            last = tiles[-1] if tiles else []
            same_height = bool(last) and last[0][1][1] - last[0][1][0] == b[1] - b[0]
            if same_height and sum(u1 - u0 for (u0, u1), _ in last) + q[1] - q[0] <= p:
                last.append((q, b))
            else:
                tiles.append([(q, b)])
    return tiles


def _pool(x: Any, kernel_size: Any, stride: Any, padding: Any, kind: str) -> Any:
    name = f"{kind}_pool2d"
    require(len(x.shape) == 4, f"{name}: x must be [N, C, H, W], got shape {list(x.shape)}")
    require_dtype("x", x, POOL_DTYPES, name)
    n, c, h, w = x.shape
    kh, kw = pair(kernel_size, "kernel_size", name, 1)
    sh, sw = pair(kernel_size if stride is None else stride, "stride", name, 1)
    ph, pw = pair(padding, "padding", name, 0)
    require(
        2 * ph <= kh and 2 * pw <= kw,
        f"{name}: padding {(ph, pw)} must be at most half the kernel size {(kh, kw)}",
        rule="argument",
    )
    ho, wo = out_extent(h, kh, sh, ph, 1), out_extent(w, kw, sw, pw, 1)
    require(ho >= 1 and wo >= 1, f"{name}: kernel {kh}x{kw} is larger than the padded input {h + 2 * ph}x{w + 2 * pw}")
    # The output is allocated as planes [N*C, Ho, Wo] and returned as [N, C, Ho, Wo]: the simulator tracks
    # dependencies by (first dim, rest) boxes, so stores of different row bands of one plane overlap as
    # boxes of an [N, C, Ho, Wo] allocation but not of a [planes, Ho, Wo] one.
    out_planes = nl.ndarray((n * c, ho, wo), x.dtype, buffer=nl.shared_hbm)
    planes = x.reshape((n * c, h, w))

    tiles = _plan_tiles(n * c, ho, wo, w * x.dtype.itemsize, kh, sh)
    op = nl.maximum if kind == "max" else nl.add
    acc_dtype = x.dtype if kind == "max" else nl.float32  # sums in fp32; max is exact in any dtype
    fill = float("-inf") if kind == "max" else 0.0
    # Output columns [x0, x1) whose window column j lands inside the image.
    cols = [(max(0, cdiv(pw - j, sw)), min(wo, (w - 1 + pw - j) // sw + 1)) for j in range(kw)]
    taps = [(i, j) for i in range(kh) for j in range(kw) if cols[j][1] > cols[j][0]]
    n_gp = _gpsimd_taps(len(taps), (tiles[0][0][1][1] - tiles[0][0][1][0]) * wo // 2, x.dtype, kind)
    engine_taps = ((nisa.vector_engine, taps[: len(taps) - n_gp]), (nisa.gpsimd_engine, taps[len(taps) - n_gp :]))

    def load(tile: list[Unit]) -> Any:
        pieces = [(planes[q0:q1], input_rows(b0, b1, sh, kh)) for (q0, q1), (b0, b1) in tile]
        return load_slab(pieces, (ph, 0), fill, nisa.vector_engine)

    # Inputs are prefetched _PREFETCH tiles ahead, so a load never waits behind the stores of the tile
    # before it in the (in-order) DMA queues: a tile computes in about the time its load takes.
    slabs = [load(t) for t in tiles[:_PREFETCH]]
    for k, tile in enumerate(tiles):
        if k + _PREFETCH < len(tiles):
            slabs.append(load(tiles[k + _PREFETCH]))
        slab = slabs.pop(0)
        rows = tile[0][1][1] - tile[0][1][0]
        parts = slab.shape[0]

        # Each tap: the view of the slab it reads, on its valid output columns [x0, x1).
        views = {
            (i, j): (tap_view(slab, i, rows, cols[j][0] * sw + j - pw, cols[j][1] - cols[j][0], (sh, sw)), cols[j])
            for i, j in taps
        }
        partials = []
        for engine, mine in engine_taps:
            if len(mine) == 1 and cols[mine[0][1]] == (0, wo):
                partials.append(views[mine[0]][0])
            elif mine:
                acc = nl.ndarray((parts, rows, wo), acc_dtype, buffer=nl.sbuf)
                _reduce_taps(acc, [views[t] for t in mine], op, fill, engine)
                partials.append(acc)
        res = nl.ndarray((parts, rows, wo), x.dtype, buffer=nl.sbuf)
        _finish(res, partials, kind, 1.0 / (kh * kw))
        p0 = 0
        for (q0, q1), (b0, b1) in tile:
            nisa.dma_copy(dst=out_planes[q0:q1, b0:b1, :], src=res[p0 : p0 + q1 - q0])
            p0 += q1 - q0
    return out_planes.reshape((n, c, ho, wo))


@nki.jit
def max_pool2d(x, kernel_size, stride=None, padding=0):
    """torch.nn.functional.max_pool2d on NCHW x (stride defaults to kernel_size; padding counts as -inf)."""
    return _pool(x, kernel_size, stride, padding, "max")


@nki.jit
def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """torch.nn.functional.avg_pool2d on NCHW x (count_include_pad=True: padding counts as zeros)."""
    return _pool(x, kernel_size, stride, padding, "avg")
