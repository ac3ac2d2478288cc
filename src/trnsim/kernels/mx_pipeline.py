"""The MX GEMM's software pipeline: out[tokens, N] = x[tokens, K] @ W[K, N] with W pre-quantised in HBM.

Per token strip (plan.strip_tiles tiles of <= 128 tokens) x arrives bf16 and is quantised on chip once: each
[tokens, 512] K group goes through four TensorE transposes (column q, q + 4, ... of the group lands as PSUM
column 4t + q, so partition p holds x[t, 4p .. 4p + 3], mx_weights' packing), one PSUM -> SBUF copy and one
VectorE quantize_mx into the strip's packed x [128, K groups, tokens] and its e8m0 scales. Then every feature
block (<= 512 features) runs one nc_matmul_mx per (K group, token tile) with the strip's x stationary
([128 x4, tokens]) and the streamed weight tile moving ([128 x4, block]), accumulating in one PSUM bank per
token tile; the block's epilogue empties them (mx_matmul.py) and its stores leave a few steps later.

Overlap, as in the bf16 GEMM (_gemm.py): weight chunks load plan.w_ahead chunks ahead; the next strip's x
loads and is quantised while the current strip computes (spread over it with two quantised-x sets, or just
behind the last block's reads of each K group with one), so the in-order TensorE runs transposes between
matmuls instead of waiting for them; stores are deferred so that the in-order DMA queues never hold a load
behind a store that waits on compute. Every streaming buffer is allocated once and used in turn (_buffers).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.kernels._buffers import Ring
from trnsim.kernels._common import pmax
from trnsim.kernels._evacuate import Evacuator
from trnsim.kernels._gemm_operands import tiles
from trnsim.kernels.mx_plan import SCALE_BLOCKS, STORE_DELAY, X_CHUNKS, MxPlan
from trnsim.kernels.mx_weights import K_GROUP

PACKED_X = nl.float8_e4m3fn_x4  # activations are quantised to MXFP8 (quantize_mx's element types are fp8)
VALUES = 4  # values per packed element
STRIP0_LEAD = 2  # the first strip's K groups are quantised this many steps ahead of their matmuls

Deferred = Callable[[], None]


@dataclass(frozen=True)
class MxBlock:
    """Output rows [r0, r0 + rsz) x features [c0, c0 + csz) of a job."""

    job: int
    r0: int
    rsz: int
    c0: int
    csz: int

    @property
    def token_tiles(self) -> list[tuple[int, int]]:
        return tiles(self.r0, self.rsz, pmax())


# finish(block, accumulators) empties the block's [tokens, csz] fp32 PSUM tiles and returns its stores;
# prefetch(block) loads what finish will need (residual rows) while the block computes
Finish = Callable[[MxBlock, list[Any], Any], list[Deferred]]
Prefetch = Callable[[MxBlock], Any]


@dataclass
class MxJob:
    x: Any  # HBM [rows, K], bf16 / fp16
    wq: Any  # HBM [K / 4, N] packed raw bits
    ws: Any  # HBM [K / 32, N] uint8 scales
    rows: int
    finish: Finish
    prefetch: Prefetch | None = None


@dataclass(frozen=True)
class _Step:
    strip: int  # index over all jobs' strips
    block: int  # index into the pipeline's blocks
    group: int  # K group


class MxPipeline:
    def __init__(self, jobs: list[MxJob], plan: MxPlan, n: int, k: int, w_dtype: Any, evac: Evacuator) -> None:
        p = pmax()
        self.jobs, self.plan, self.n, self.k, self.w_dtype, self.evac = jobs, plan, n, k, w_dtype, evac
        self.group_rows = [min(K_GROUP, k - g * K_GROUP) // VALUES for g in range(plan.k_groups)]
        self.strips: list[tuple[int, int, int]] = []  # (job, r0, rsz)
        self.blocks: list[MxBlock] = []
        self.steps: list[_Step] = []
        self.strip_start: list[int] = []
        for ji, job in enumerate(jobs):
            for r0, rsz in _strips(job.rows, plan.strip_tiles, p):
                self.strip_start.append(len(self.steps))
                self.strips.append((ji, r0, rsz))
                for c0, csz in tiles(0, n, plan.block):
                    self.blocks.append(MxBlock(ji, r0, rsz, c0, csz))
                    self.steps += [_Step(len(self.strips) - 1, len(self.blocks) - 1, g) for g in range(plan.k_groups)]
        self._chunks()
        self._allocate()
        self.pre: dict[int, list[Deferred]] = defaultdict(list)  # work issued before step u's matmuls (-1: first)
        self.post: dict[int, list[Deferred]] = defaultdict(list)  # ... and after them
        self._schedule_x()

    # -- layout of the work ------------------------------------------------------------------------------
    def _chunks(self) -> None:
        """Weight chunks: per block, runs of plan.w_groups full K groups (a short last group on its own)."""
        self.w_chunks: list[tuple[int, int, int]] = []  # (block, first group, groups)
        self.chunk_of: list[tuple[int, int]] = []  # step -> (chunk, index in it)
        full = [g for g in range(self.plan.k_groups) if self.group_rows[g] == pmax()]
        for b in range(len(self.blocks)):
            runs = [(g0, min(self.plan.w_groups, len(full) - g0)) for g0 in range(0, len(full), self.plan.w_groups)]
            runs += [(g, 1) for g in range(len(full), self.plan.k_groups)]
            for g0, count in runs:
                for i in range(count):
                    self.chunk_of.append((len(self.w_chunks), i))
                self.w_chunks.append((b, g0, count))

    def _allocate(self) -> None:
        p, plan = pmax(), self.plan
        tokens = plan.strip_tiles * p
        groups = plan.k_groups
        self.xq = [nl.ndarray((p, groups, tokens), PACKED_X, buffer=nl.sbuf) for _ in range(plan.x_sets)]
        self.xs = [nl.ndarray((p // 8, groups, tokens), nl.float8_e8m0fnu, buffer=nl.sbuf) for _ in range(plan.x_sets)]
        depth = plan.w_ahead + 2
        self.w_ring = Ring(depth, (p, plan.w_groups, plan.block), self.w_dtype)
        self.ws_ring = Ring(SCALE_BLOCKS, (p // 8, groups, plan.block), nl.float8_e8m0fnu)  # a block's scales
        self.x_stage = Ring(X_CHUNKS, (p, plan.strip_tiles, plan.x_groups * K_GROUP), self.jobs[0].x.dtype)
        self.to_quantise = Ring(2 * plan.strip_tiles, (p, VALUES * p), self.jobs[0].x.dtype)
        for t in self.to_quantise.tiles:  # an odd token count quantises one padding column: keep it finite
            nisa.memset(dst=t, value=0.0)
        self.acc = Ring(plan.strip_tiles, (p, plan.block), nl.float32, buffer=nl.psum)
        self.turn = {"stage": 0, "quantise": 0}

    def _schedule_x(self) -> None:
        """When each strip's x chunks load and each of its K groups is quantised (pre / post of a step)."""
        groups, per_chunk = self.plan.k_groups, self.plan.x_groups
        for s in range(len(self.strips)):
            if s == 0:  # nothing computes yet: a couple of groups ahead of their matmuls
                at = [(self.pre, g - STRIP0_LEAD) for g in range(groups)]
            else:
                start, steps = self.strip_start[s - 1], self.strip_start[s] - self.strip_start[s - 1]
                if self.plan.x_sets > 1:  # spread over the previous strip, after its first step (x's loads)
                    at = [(self.pre, start + (g + 1) * steps // (groups + 1)) for g in range(groups)]
                else:  # right behind the previous strip's last reads of each group
                    at = [(self.post, start + steps - groups + g) for g in range(groups)]
            chunk_slot: dict[int, int] = {}
            for g in range(groups):
                table, u = at[g]
                key = max(u, -1)
                c = g // per_chunk
                if g % per_chunk == 0:  # chunk c loads when chunk c - 2 starts being consumed (X_CHUNKS slots)
                    early = g - (X_CHUNKS - 1) * per_chunk
                    ltable, lu = at[early] if early >= 0 else (self.pre, -1 if s == 0 else self.strip_start[s - 1])
                    chunk_slot[c] = self.turn["stage"]
                    self.turn["stage"] += 1
                    ltable[max(lu, -1)].append(partial(self._load_x, s, c, chunk_slot[c]))
                table[key].append(partial(self._quantise, s, g, chunk_slot[c]))

    # -- the work of a step ------------------------------------------------------------------------------
    def _load_x(self, s: int, c: int, slot: int) -> None:
        ji, r0, rsz = self.strips[s]
        k0 = c * self.plan.x_groups * K_GROUP
        width = min(self.k, k0 + self.plan.x_groups * K_GROUP) - k0
        for dst, src in row_tiles(self.jobs[ji].x, self.x_stage.slot(slot), r0, rsz, k0, width):
            nisa.dma_copy(dst=dst, src=src)

    def _quantise(self, s: int, g: int, slot: int) -> None:
        """Strip s's K group g: transposes into [kp, 4 x tokens] (PSUM), a copy out, quantize_mx into SBUF."""
        _, r0, rsz = self.strips[s]
        kp = self.group_rows[g]
        off = (g % self.plan.x_groups) * K_GROUP
        xq, xs = self.xq[s % self.plan.x_sets], self.xs[s % self.plan.x_sets]
        p = pmax()
        for i, (_, tsz) in enumerate(tiles(r0, rsz, p)):
            staged = self.x_stage.slot(slot)[:, i, :]
            cols = tsz + tsz % 2  # the stationary side takes an even free size: one padding column
            ps = self.evac.transient((kp, VALUES * tsz), staged.dtype)
            for q in range(VALUES):
                nisa.nc_transpose(
                    dst=ps[:, q : VALUES * tsz : VALUES], data=staged[:tsz, off + q : off + VALUES * kp : VALUES]
                )
            src = self.to_quantise.slot(self.turn["quantise"])
            self.turn["quantise"] += 1
            self.evac(src[:kp, : VALUES * tsz], ps)
            dst = xq[:kp, g, i * p : i * p + cols]
            nisa.quantize_mx(dst=dst, src=src[:kp, : VALUES * cols], dst_scale=xs[: kp // 8, g, i * p : i * p + cols])

    def _load_w(self, w: int) -> None:
        """Weight chunk w; with a block's first chunk, the scales of all its K groups (one transfer for the
        full groups: a scale row per chunk would cost a whole transfer overhead on the two queues it uses)."""
        b, g0, count = self.w_chunks[w]
        blk = self.blocks[b]
        job = self.jobs[blk.job]
        rows = self.group_rows[g0]
        n, c0, csz = self.n, blk.c0, blk.csz
        p = pmax()
        src = job.wq.ap([[n, rows], [p * n, count], [1, csz]], offset=g0 * p * n + c0, dtype=self.w_dtype)
        nisa.dma_copy(dst=self.w_ring.slot(w)[:rows, :count, :csz], src=src)
        if g0 == 0:
            scales = self.ws_ring.slot(b)
            full = sum(1 for r in self.group_rows if r == p)
            spans = [(0, full, p // 8)] if full else []
            spans += [(g, 1, r // 8) for g, r in enumerate(self.group_rows) if r < p]
            for first, groups, srows in spans:
                pattern = [[n, srows], [(p // 8) * n, groups], [1, csz]]
                ssrc = job.ws.ap(pattern, offset=first * (p // 8) * n + c0, dtype=nl.float8_e8m0fnu)
                nisa.dma_copy(dst=scales[:srows, first : first + groups, :csz], src=ssrc)

    def _matmuls(self, u: int) -> None:
        st = self.steps[u]
        blk = self.blocks[st.block]
        w, i_w = self.chunk_of[u]
        kp = self.group_rows[st.group]
        wt, wst = self.w_ring.slot(w), self.ws_ring.slot(st.block)
        xq, xs = self.xq[st.strip % self.plan.x_sets], self.xs[st.strip % self.plan.x_sets]
        p = pmax()
        for i, (_, tsz) in enumerate(blk.token_tiles):
            cols = tsz + tsz % 2
            nisa.nc_matmul_mx(
                self.acc.slot(i)[:cols, : blk.csz],
                xq[:kp, st.group, i * p : i * p + cols],
                wt[:kp, i_w, : blk.csz],
                xs[: kp // 8, st.group, i * p : i * p + cols],
                wst[: kp // 8, st.group, : blk.csz],
                accumulate=st.group > 0,
            )

    def run(self) -> None:
        n_steps = len(self.steps)
        # the prologue: the first x chunk, the first weights, then the rest (the DMA queues run in order)
        prologue = self.pre.pop(-1, [])
        for work in prologue[:1]:
            work()
        for w in range(min(len(self.w_chunks), self.plan.w_ahead)):
            self._load_w(w)
        for work in prologue[1:]:
            work()
        pending: list[tuple[int, Deferred]] = []
        prefetched: dict[int, Any] = {}
        for u, st in enumerate(self.steps):
            w, i_w = self.chunk_of[u]
            if i_w == 0 and w + self.plan.w_ahead < len(self.w_chunks):
                self._load_w(w + self.plan.w_ahead)
            blk = self.blocks[st.block]
            job = self.jobs[blk.job]
            if st.group == 0 and job.prefetch is not None:
                prefetched[st.block] = job.prefetch(blk)
            for work in self.pre.pop(u, []):
                work()
            self._matmuls(u)
            for work in self.post.pop(u, []):
                work()
            if st.group + 1 == self.plan.k_groups:
                accs = [self.acc.slot(i)[:tsz, : blk.csz] for i, (_, tsz) in enumerate(blk.token_tiles)]
                pending += [(u + STORE_DELAY, d) for d in job.finish(blk, accs, prefetched.pop(st.block, None))]
            due = [d for t, d in pending if t <= u or u + 1 == n_steps]
            pending = [(t, d) for t, d in pending if t > u and u + 1 < n_steps]
            for d in due:
                d()


def row_tiles(hbm: Any, tile: Any, r0: int, rsz: int, c0: int, csz: int) -> list[tuple[Any, Any]]:
    """(SBUF [rows, tiles, csz] view, HBM rows) pairs covering rows [r0, r0 + rsz) x columns [c0, c0 + csz) of
    a 2-D HBM tensor: all full 128-row tiles in one transfer (row r0 + 128 i + p at [p, i]), a short last tile in
    another. One [128, tiles, csz] transfer per queue outlasts the per-transfer overhead where a [128, csz] one
    of a few KiB per partition would not."""
    p, n = pmax(), hbm.shape[-1]
    token_tiles = tiles(r0, rsz, p)
    full = sum(1 for _, tsz in token_tiles if tsz == p)
    pairs = []
    if full:
        pairs.append((tile[:, :full, :csz], hbm.ap([[n, p], [p * n, full], [1, csz]], offset=r0 * n + c0)))
    for i, (t0, tsz) in enumerate(token_tiles[full:], start=full):
        pairs.append((tile[:tsz, i, :csz], hbm[t0 : t0 + tsz, c0 : c0 + csz]))
    return pairs


def _strips(rows: int, most: int, p: int) -> list[tuple[int, int]]:
    """(first row, rows) of the strips of at most `most` 128-row tiles: as even as whole tiles allow, so that no
    short last strip reads the weights for a few tokens (the weights are read once per strip)."""
    count = -(-rows // p)
    n_strips = -(-count // most)
    out, r0 = [], 0
    for s in range(n_strips):
        take = count * (s + 1) // n_strips - count * s // n_strips
        size = min(rows - r0, take * p)
        out.append((r0, size))
        r0 += size
    return out


def run_mx_gemm(jobs: list[MxJob], plan: MxPlan, n: int, k: int, w_dtype: Any, evac: Evacuator) -> None:
    """Issue the whole pipelined MX GEMM (`evac` is shared with the jobs' epilogues)."""
    if jobs:
        MxPipeline(jobs, plan, n, k, w_dtype, evac).run()
