"""How conv2d cuts its work (plain Python, no instructions): checked shapes, output-channel tiles,
pixel blocks and row bands, sized from the target's tile limits and SBUF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trnsim import dtypes
from trnsim.kernels._common import (
    cdiv,
    efficient_dma_row_bytes,
    moving_fmax,
    pmax,
    psum_fmax,
    require,
    require_dtype,
    sbuf_bytes_per_partition,
    stationary_fmax,
)
from trnsim.kernels._spatial import input_rows, out_extent, pair

CONV_DTYPES = (dtypes.float32, dtypes.bfloat16)
Range = tuple[int, int]
PixelBlock = tuple[int, int, int, int]  # output rows [a, b) x cols [c0, c1)
Band = tuple[int, int, list[PixelBlock]]  # output rows [r0, r1) and its pixel blocks


@dataclass(frozen=True)
class Geometry:
    """Shapes of one conv2d call, checked."""

    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    groups: int
    stride: tuple[int, int]
    pad: tuple[int, int]
    dilation: tuple[int, int]
    ho: int
    wo: int

    @property
    def taps(self) -> int:
        return self.kh * self.kw

    @property
    def cg(self) -> int:
        """Input channels per group."""
        return self.c // self.groups

    @property
    def og(self) -> int:
        """Output channels per group."""
        return self.o // self.groups

    def slab_rows(self, r0: int, r1: int) -> Range:
        """Padded-input rows that output rows [r0, r1) read."""
        return input_rows(r0, r1, self.stride[0], self.dilation[0] * (self.kh - 1) + 1)

    def chunk_rows(self, chunk: Chunk, r0: int, r1: int) -> list[Range]:
        """Per partition block of `chunk`, the padded-input rows its slab holds for output rows [r0, r1)."""
        if not chunk.rows:
            return [self.slab_rows(r0, r1)]
        lo, hi = input_rows(r0, r1, self.stride[0], 1)
        return [(lo + r * self.dilation[0], hi + r * self.dilation[0]) for r in chunk.rows]

    def chunk_taps(self, chunk: Chunk) -> list[tuple[int | None, int]]:
        """The (kernel row, kernel col) steps over `chunk`: the row is None when the rows are folded in."""
        rows: list[int | None] = [None] if chunk.rows else list(range(self.kh))
        return [(i, j) for i in rows for j in range(self.kw)]


@dataclass(frozen=True)
class Chunk:
    """One matmul's contraction (<= pmax partitions): input channels [c0, c1) and the kernel rows folded in.

    Unfolded (`rows` empty) the partitions are the channels and every kernel tap is one matmul. Folded,
    partition (r, c) holds channel c shifted down by kernel row r, so one matmul covers those rows of
    a tap column: few-channel convs (an RGB stem) then fill the PE rows instead of using 3 of 128.
    """

    c0: int
    c1: int
    rows: tuple[int, ...] = ()

    @property
    def parts(self) -> int:
        return (self.c1 - self.c0) * max(1, len(self.rows))


@dataclass(frozen=True)
class OutTile:
    """Output channels [o0, o1) that one stationary column block makes, and the input channels it reads.

    The tile spans groups [g0, g1) (more than one only when small groups are packed block-diagonally)
    and reads input channels [c0, c1) as `chunks` of contraction.
    """

    o0: int
    o1: int
    g0: int
    g1: int
    c0: int
    c1: int
    chunks: tuple[Chunk, ...]


def geometry(x: Any, w: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any) -> Geometry:
    require(len(x.shape) == 4, f"conv2d: x must be [N, C, H, W], got shape {list(x.shape)}")
    require(len(w.shape) == 4, f"conv2d: w must be [O, C/groups, kh, kw], got shape {list(w.shape)}")
    require_dtype("x", x, CONV_DTYPES, "conv2d")
    require_dtype("w", w, (x.dtype,), "conv2d")  # TensorE takes fp32 with fp32 only; one dtype is simplest
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ok = isinstance(groups, int) and not isinstance(groups, bool) and groups >= 1
    require(ok, f"conv2d: groups must be a positive int, got {groups!r}", rule="argument")
    require(c % groups == 0, f"conv2d: input channels {c} are not divisible by groups={groups}")
    require(o % groups == 0, f"conv2d: output channels {o} are not divisible by groups={groups}")
    require(cg == c // groups, f"conv2d: w has {cg} input channels per group, x has {c} / groups={groups}")
    require(kh >= 1 and kw >= 1, f"conv2d: kernel size must be at least 1x1, got {kh}x{kw}")
    if bias is not None:
        require(tuple(bias.shape) == (o,), f"conv2d: bias must have shape [{o}], got {list(bias.shape)}")
        require_dtype("bias", bias, CONV_DTYPES, "conv2d")
    s = pair(stride, "stride", "conv2d", 1)
    p = pair(padding, "padding", "conv2d", 0)
    d = pair(dilation, "dilation", "conv2d", 1)
    ho, wo = out_extent(h, kh, s[0], p[0], d[0]), out_extent(wd, kw, s[1], p[1], d[1])
    require(
        ho >= 1 and wo >= 1,
        f"conv2d: kernel {kh}x{kw} with dilation {d} reaches beyond the padded input {h + 2 * p[0]}x{wd + 2 * p[1]}",
    )
    return Geometry(n, c, h, wd, o, kh, kw, groups, s, p, d, ho, wo)


def split(lo: int, hi: int, size: int) -> list[Range]:
    return [(a, min(a + size, hi)) for a in range(lo, hi, size)]


def out_tiles(g: Geometry) -> list[OutTile]:
    """Output-channel tiles of <= 128 outputs, packing several small groups into one tile when they fit.

    Without groups, a few channels (<= pmax / 4) fold kernel rows into the contraction instead.
    """
    p, m = pmax(), stationary_fmax()
    per_tile = max(1, min(g.groups, p // g.cg, m // g.og))  # groups packed into one matmul
    tiles = []
    if per_tile > 1:
        for g0 in range(0, g.groups, per_tile):
            g1 = min(g0 + per_tile, g.groups)
            c0, c1 = g0 * g.cg, g1 * g.cg
            tiles.append(OutTile(g0 * g.og, g1 * g.og, g0, g1, c0, c1, (Chunk(c0, c1),)))
        return tiles
    fold = min(g.kh, p // g.cg) if g.groups == 1 and 4 * g.cg <= p and g.kh > 1 else 1
    for grp in range(g.groups):
        c0, c1 = grp * g.cg, (grp + 1) * g.cg
        if fold > 1:
            chunks = tuple(Chunk(c0, c1, tuple(range(a, b))) for a, b in split(0, g.kh, fold))
        else:
            chunks = tuple(Chunk(a, b) for a, b in split(c0, c1, p))
        for o0, o1 in split(grp * g.og, (grp + 1) * g.og, m):
            tiles.append(OutTile(o0, o1, grp, grp + 1, c0, c1, chunks))
    return tiles


def weight_blocks(tiles: list[OutTile], g: Geometry, itemsize: int) -> list[list[OutTile]]:
    """Output tiles grouped so that one group's stationaries stay resident in a third of SBUF."""
    budget = sbuf_bytes_per_partition() // 3
    blocks: list[list[OutTile]] = [[]]
    used = 0
    for t in tiles:
        need = sum(len(g.chunk_taps(ch)) for ch in t.chunks) * (t.o1 - t.o0) * itemsize
        if blocks[-1] and used + need > budget:
            blocks.append([])
            used = 0
        blocks[-1].append(t)
        used += need
    return blocks


def pixel_bands(g: Geometry, n_chunks: int, itemsize: int, min_blocks: int) -> list[Band]:
    """Output row bands, each with its pixel blocks (one block = one PSUM bank = one matmul's moving free).

    A band has at least `min_blocks` row blocks and grows while its input DMA rows are short of 2 KiB
    (a padded slab's rows are one image row, so padding stops the growth), as long as there are two
    bands (one loads while the other computes) and two bands of input fit a third of SBUF. Rows wider
    than a bank make one band per row.
    """
    fmax = min(psum_fmax(), moving_fmax())
    if g.wo > fmax:
        cols = split(0, g.wo, cdiv(g.wo, cdiv(g.wo, fmax)))
        bands: list[Band] = [(r, r + 1, [(r, r + 1, c0, c1) for c0, c1 in cols]) for r in range(g.ho)]
    else:
        blocks = split(0, g.ho, cdiv(g.ho, cdiv(g.ho, fmax // g.wo)))  # balanced row blocks

        def slab_bytes(k: int) -> int:
            lo, hi = g.slab_rows(0, min(g.ho, blocks[0][1] * k))
            return (hi - lo) * (g.w + 2 * g.pad[1]) * itemsize

        per_band = min(min_blocks, len(blocks))
        budget = sbuf_bytes_per_partition() // 3
        while (
            per_band < cdiv(len(blocks), 2)
            and g.pad[1] == 0
            and slab_bytes(per_band) < efficient_dma_row_bytes()
            and 2 * n_chunks * slab_bytes(per_band + 1) <= budget
        ):
            per_band += 1
        bands = []
        for k in range(0, len(blocks), per_band):
            mine = blocks[k : k + per_band]
            bands.append((mine[0][0], mine[-1][1], [(a, b, 0, g.wo) for a, b in mine]))
    lo, hi = g.slab_rows(bands[0][0], bands[0][1])  # the first band is the tallest
    need = n_chunks * (hi - lo) * (g.w + 2 * g.pad[1]) * itemsize
    require(
        2 * need <= sbuf_bytes_per_partition() // 3,
        f"conv2d: the input rows one output band reads take {need} bytes per partition; two of them "
        f"(double buffering) must fit a third of SBUF ({sbuf_bytes_per_partition() // 3} bytes)",
        rule="sbuf-capacity",
    )
    return bands
