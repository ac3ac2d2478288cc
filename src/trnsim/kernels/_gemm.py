"""The blocked, software-pipelined GEMM that matmul, batched_matmul and linear run on.

It computes out[R, C] = S[R, K] @ V[K, C] for one or more jobs. The contraction dim K must sit on the
partitions of both matmul operands, so each side arrives in k-tiles [k, columns] (_gemm_operands):
by DMA where it is stored K-major, by TensorE transposes of long row chunks where it is stored
row-major. A TensorE transpose costs as much as a 128-column matmul (1/4 of a full one), and its copy
out of PSUM overlaps other work; a DMA with a transposed access pattern instead moves one 2-byte
element per descriptor, at under 1% of the queue's rate.

Blocking (see _gemm_plan): S rows are taken in strips of a few 128-row tiles whose transposed
k-tiles stay in SBUF while every V block (a few 512-column sub-tiles) streams past; each (strip,
V block) accumulates over all of K in one PSUM bank per [128, 512] tile, then `finish` empties it.

Pipelining: the work is a flat list of k-steps over (job, strip, V block, k). At step t the kernel
issues the DMA loads of step t + dma_ahead, the transposes of step t + transpose_ahead and the
matmuls of step t, so the in-order TensorE never waits on a load or a transpose copy. Stores, and
epilogue work TensorE would otherwise wait for, are issued a few steps after their block ends (a DMA
queue is in order too: a store waiting on compute would hold up the loads queued behind it).

Buffers: every streaming buffer (row chunks, transposed k-tiles, V tiles, PSUM accumulators and
transposes) is allocated once and used in turn (_buffers), so a load into a buffer waits for the
reads of its previous contents, as on the hardware, and the prefetch depth is the real one.

Tracing: a step's matmuls, the V loads, a PSUM bank's transposes, row-chunk loads and stores issue the same
instructions every time but for the tiles and offsets, so in timing runs each is a loop body traced once and
stamped out (nki/loop_template.py): each passes the tiles it touches as bindings, and what decides its shapes as
its key, and keeps no state of its own (rings, chunk maps, the evacuation's engine choice stay out here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.kernels._buffers import ChunkRing, Ring
from trnsim.kernels._common import cdiv, pmax, psum_fmax
from trnsim.kernels._evacuate import Evacuator
from trnsim.kernels._gemm_operands import KMajor, RowMajor, dma, k_steps, tiles
from trnsim.kernels._gemm_plan import GemmPlan, defer_steps, staging_cols, strip_sets
from trnsim.kernels._gemm_steps import _chunk_map, _ramp, _strips
from trnsim.nki.loop_template import Templates


@dataclass
class Block:
    """One (strip, V block) of a job: output rows [r0, r0 + rsz) x columns [c0, c0 + csz)."""

    job: int
    r0: int
    rsz: int
    c0: int
    csz: int

    @property
    def row_tiles(self) -> list[tuple[int, int]]:
        return tiles(self.r0, self.rsz, pmax())

    @property
    def col_tiles(self) -> list[tuple[int, int]]:
        return tiles(self.c0, self.csz, psum_fmax())


# Work issued some steps after it is ready, in program order: a store (a DMA queue is in order, so a
# store waiting on compute would hold up the loads behind it) or TensorE work that waits on another
# engine (TensorE is in order too). It may return more work to defer in turn.
Deferred = Callable[[], "list[Deferred] | None"]
# finish(block, acc, prefetched) empties the block's accumulators acc[i][j] ([rows, cols] fp32 PSUM)
# and returns the work to issue later; prefetch(block) loads what finish will need (or None).
Finish = Callable[[Block, list[list[Any]], Any], list[Deferred]]
Prefetch = Callable[[Block], Any]


@dataclass
class GemmJob:
    s: RowMajor  # S [rows, K]
    v: RowMajor | KMajor  # V stored [cols, K] or [K, cols]
    rows: int
    cols: int
    k: int
    finish: Finish
    prefetch: Prefetch | None = None
    scratch: Any = None  # HBM [K, cols]: where strip 0 writes a row-major V for later strips to read


@dataclass(frozen=True)
class _Step:
    job: int
    strip: int
    vblk: int
    kk: int
    block: int  # index into the pipeline's blocks
    strip_index: int  # the strip's index over all jobs


@dataclass
class _Pipeline:
    jobs: list[GemmJob]
    plan: GemmPlan
    double_row: bool
    evac: Evacuator

    def __post_init__(self) -> None:
        p = pmax()
        plan = self.plan
        self.ksteps = [k_steps(j.k, self.double_row) for j in self.jobs]
        self.strips = [_strips(cdiv(j.rows, p), plan.strip_tiles, j.rows) for j in self.jobs]
        self.vblocks = [tiles(0, j.cols, plan.v_block) for j in self.jobs]
        self.blocks: list[Block] = []
        self.steps: list[_Step] = []
        strip_index = 0  # strips counted over all jobs
        for ji in range(len(self.jobs)):
            for si, (r0, rsz) in enumerate(self.strips[ji]):
                for vi, (c0, csz) in enumerate(self.vblocks[ji]):
                    self.blocks.append(Block(ji, r0, rsz, c0, csz))
                    for kk in range(len(self.ksteps[ji])):
                        self.steps.append(_Step(ji, si, vi, kk, len(self.blocks) - 1, strip_index))
                strip_index += 1
        self.chunk_of = self._chunk_maps()
        self.ahead_t = plan.transpose_ahead
        self.ahead_d = max(plan.dma_ahead, self.ahead_t)  # a chunk is loaded before its first transpose
        for ji, job in enumerate(self.jobs):
            if isinstance(job.v, RowMajor) and len(self.strips[ji]) > 1 and not plan.v_resident:
                # Strip 0 transposes V and writes it here, K-major, for the later strips to stream. A
                # load from it must come after the transpose that makes its data, in program order.
                job.scratch = nl.ndarray((job.k, job.cols), job.v.dtype, buffer=nl.hbm)
                strip0_steps = len(self.vblocks[ji]) * len(self.ksteps[ji])
                self.ahead_d = max(self.ahead_t, min(self.ahead_d, self.ahead_t + strip0_steps - 1))
        self.v_group_of = self._v_groups()
        self._allocate()
        self.s_chunks: dict[tuple[int, int, int], int] = {}  # chunk -> its first column in s_ring
        self.v_chunks: dict[tuple[int, int, int], int] = {}
        self.v_cache: dict[tuple[int, int, int], Any] = {}  # (job, vblk, kk) -> resident V tile
        self.v_views: dict[tuple[int, ...], Any] = {}  # views of the V stream's slots, by slot and extents
        self.prefetched: dict[int, Any] = {}  # block -> what its finish() will need
        self.pending: list[tuple[int, Deferred]] = []  # (due step, work issued late)
        self.templates = Templates()  # loop bodies (matmul steps, V loads, transposes) stamped in timing runs

    def _allocate(self) -> None:
        """The streaming buffers, allocated once and used in turn (see _buffers)."""
        p = pmax()
        plan = self.plan
        g = 2 if self.double_row else 1
        job = self.jobs[0]
        strip_rows = max(rsz for _, rsz in self.strips[0])
        nk = len(self.ksteps[0])
        kstep = self.ksteps[0][0].size
        stage_cols = staging_cols(plan.dma_ahead, plan.transpose_ahead, kstep, plan.k_chunk)
        self.s_ring = ChunkRing(cdiv(strip_rows, p), stage_cols, job.s.dtype)
        self.v_ring = ChunkRing(cdiv(plan.v_block, p), stage_cols, job.v.dtype) if isinstance(job.v, RowMajor) else None
        # A strip's transposed k-tiles: all of K when several V blocks reuse them (in one set, or a few
        # in turn when K is short), else a few k-tiles in turn.
        self.s_cached = len(self.vblocks[0]) > 1
        s_shape = (p, g, strip_rows)
        if self.s_cached:
            sets = strip_sets(nk, len(self.vblocks[0]), self.ahead_t)
            self.s_sets = [[nl.ndarray(s_shape, job.s.dtype, buffer=nl.sbuf) for _ in range(nk)] for _ in range(sets)]
        else:
            self.s_stream = Ring(self.ahead_t + 2, s_shape, job.s.dtype)
        # V's tiles: one of its own per k-tile when V stays resident, else a few in turn.
        self.v_resident = plan.v_resident and len(self.strips[0]) > 1
        if self.v_resident:
            self.v_stream = None
        elif self.v_group_of:  # grouped loads: each slot holds v_group k-steps, loaded by one DMA
            # a group is overwritten while the steps up to ahead_d later load: every group those touch
            gids = [self.v_group_of[u][0] for u in range(len(self.steps))]
            depth = max(gids[min(len(gids) - 1, u + self.ahead_d + 1)] - gids[u] for u in range(len(gids))) + 2
            self.v_stream = Ring(depth, (p, plan.v_group, plan.v_block), job.v.dtype)
        else:
            self.v_stream = Ring(self.ahead_d + 2, (p, g, plan.v_block), job.v.dtype)
        # PSUM accumulators: two sets in turn when the banks allow (plan.acc_sets), so a block need not
        # wait for the previous block's evacuation to finish reading its banks.
        n_acc = plan.strip_tiles * cdiv(plan.v_block, psum_fmax())
        self.acc_sets = [Ring(n_acc, (p, psum_fmax()), nl.float32, buffer=nl.psum) for _ in range(plan.acc_sets)]

    def _v_groups(self) -> dict[int, tuple[int, int, int]]:
        """Step -> (group, index in it, group size) for V k-tiles loaded v_group at a time by one DMA.

        Only K-major V in plain 128-row k-steps (no double-row) is grouped; a group never spans two
        blocks, and a block's ragged last k-step stays on its own. Empty: every k-tile is its own DMA."""
        v_group = self.plan.v_group
        if v_group <= 1 or self.double_row or not all(isinstance(j.v, KMajor) for j in self.jobs):
            return {}
        out: dict[int, tuple[int, int, int]] = {}
        gid = 0
        u = 0
        while u < len(self.steps):
            st = self.steps[u]
            ksteps = self.ksteps[st.job]
            n = 1
            while n < v_group and st.kk + n < len(ksteps) and ksteps[st.kk + n].size == ksteps[st.kk].size == pmax():
                n += 1
            for i in range(n):
                out[u + i] = (gid, i, n)
            gid += 1
            u += n
        return out

    def _chunk_maps(self) -> dict[tuple[int, int], list[tuple[int, int, int]]]:
        """(job, strip) -> for each k-step, the (index, first K column, width) of its row-major chunk.

        Row-major operands arrive in chunks of k_chunk columns, short ones at the kernel's start and end,
        so that neither TensorE's first wait nor its last stretch is a whole chunk. At the end they shrink
        over the last strips down to one k-step. A chunk's compute starts only once all of it has landed,
        so with compute nearly as slow as the DMA (decode linear) they may shrink only by the DMA /
        compute time ratio per chunk (plan.tail_growth), or compute would fall a whole chunk behind.
        """
        per_chunk = max(1, self.plan.k_chunk // pmax() // (2 if self.double_row else 1))
        shrink = _ramp(per_chunk, self.plan.tail_growth)  # smallest first
        pairs = [(ji, si) for ji in range(len(self.jobs)) for si in range(len(self.strips[ji]))]
        out = {}
        for ji, si in reversed(pairs):
            n = len(self.ksteps[ji])
            take = 0
            while take < len(shrink) and sum(shrink[: take + 1]) <= n:
                take += 1
            tail, shrink = shrink[:take][::-1], shrink[take:]
            out[(ji, si)] = _chunk_map(self.ksteps[ji], self.plan.k_chunk, (ji, si) == (0, 0), tail)
        return out

    # -- what each side needs at a step ---------------------------------------------------------------
    def _v_mode(self, st: _Step) -> str:
        """How step st gets its V tile: 'load' (DMA), 'transpose' (on chip), or 'cached'."""
        if st.strip > 0 and self.v_resident:
            return "cached"
        if isinstance(self.jobs[st.job].v, RowMajor) and st.strip == 0:
            return "transpose"
        return "load"

    def _chunk(self, st: _Step) -> tuple[int, int, int]:
        """(index, first K column, width) of the row-major chunk k-step st reads."""
        return self.chunk_of[(st.job, st.strip)][st.kk]

    def _chunk_start(self, st: _Step) -> bool:
        return st.kk == 0 or self._chunk(st)[0] != self.chunk_of[(st.job, st.strip)][st.kk - 1][0]

    def _chunk_end(self, st: _Step) -> bool:
        chunks = self.chunk_of[(st.job, st.strip)]
        return st.kk + 1 == len(chunks) or chunks[st.kk + 1][0] != chunks[st.kk][0]

    def _s_tile(self, u: int) -> Any:
        st = self.steps[u]
        if self.s_cached:
            return self.s_sets[st.strip_index % len(self.s_sets)][st.kk]
        return self.s_stream.slot(u)

    def _v_tile(self, u: int) -> Any:
        """Where step u's V tile goes: a resident tile of its own, or the next stream buffer."""
        st = self.steps[u]
        if u in self.v_group_of:
            gid, i, _ = self.v_group_of[u]
            if self.v_stream is not None:  # views kept: the same few every group (and their regions known)
                key = (gid % len(self.v_stream.tiles), i)
                view = self.v_views.get(key)
                if view is None:
                    view = self.v_views[key] = self.v_stream.slot(gid)[:, i : i + 1, :]
                return view
            return self.v_cache[(st.job, st.vblk, st.kk)]
        if self.v_stream is None:
            g = 2 if self.double_row else 1
            tile = nl.ndarray((pmax(), g, self.plan.v_block), self.jobs[st.job].v.dtype, buffer=nl.sbuf)
            self.v_cache[(st.job, st.vblk, st.kk)] = tile
            return tile
        return self.v_stream.slot(u)

    # -- the three stages of a step ---------------------------------------------------------------------
    def dma(self, u: int) -> None:
        st = self.steps[u]
        job = self.jobs[st.job]
        blk = self.blocks[st.block]
        step = self.ksteps[st.job][st.kk]
        if st.kk == 0 and job.prefetch is not None:
            self.prefetched[st.block] = job.prefetch(blk)
        c, k0, ksz = self._chunk(st)
        if st.vblk == 0 and self._chunk_start(st):
            key = (st.job, st.strip, c)
            self.s_chunks[key] = job.s.load_chunk(self.s_ring, key, blk.r0, blk.rsz, k0, ksz, self.templates)
        mode = self._v_mode(st)
        if mode == "load":
            if isinstance(job.v, KMajor):
                src = job.v
            else:  # V from the scratch copy strip 0 wrote: its stores must come first in program order
                self.flush(None)
                src = KMajor(job.scratch)
            if u not in self.v_group_of:
                dst = self._v_tile(u)[: step.rows, : step.g, : blk.csz]
                k_tile = src.k_tile(blk.c0, blk.csz, step)
                self.templates.run(("v", st.job, step.rows, step.g), (dst, k_tile), dma, dst, k_tile)
            elif self.v_group_of[u][1] == 0:
                self._load_v_group(u, src, blk)
        elif mode == "transpose" and self._chunk_start(st):
            assert isinstance(job.v, RowMajor) and self.v_ring is not None
            key = (st.job, st.vblk, c)
            self.v_chunks[key] = job.v.load_chunk(self.v_ring, key, blk.c0, blk.csz, k0, ksz, self.templates)

    def _load_v_group(self, u: int, src: KMajor, blk: Block) -> None:
        """One DMA for the V k-tiles of the group starting at step u (into a stream slot or resident tiles)."""
        gid, _, n = self.v_group_of[u]
        st = self.steps[u]
        step = self.ksteps[st.job][st.kk]
        if self.v_stream is not None:
            key = (gid % len(self.v_stream.tiles), step.rows, n, blk.csz)
            dst = self.v_views.get(key)
            if dst is None:
                dst = self.v_views[key] = self.v_stream.slot(gid)[: step.rows, :n, : blk.csz]
        else:
            tile = nl.ndarray((pmax(), n, self.plan.v_block), self.jobs[st.job].v.dtype, buffer=nl.sbuf)
            for i in range(n):
                self.v_cache[(st.job, st.vblk, st.kk + i)] = tile[:, i : i + 1, :]
            dst = tile[: step.rows, :n, : blk.csz]
        group = src.k_group(blk.c0, blk.csz, step.k0, step.rows, n)
        self.templates.run(("v group", st.job, step.rows, n), (dst, group), dma, dst, group)

    def transpose(self, u: int) -> None:
        st = self.steps[u]
        job = self.jobs[st.job]
        blk = self.blocks[st.block]
        step = self.ksteps[st.job][st.kk]
        c, ck0, _ = self._chunk(st)
        koff = step.k0 - ck0
        if st.vblk == 0:
            key = (st.job, st.strip, c)
            dst = self._s_tile(u)[: step.rows, : step.g, : blk.rsz]
            job.s.transpose(self.s_ring, self.s_chunks[key] + koff, blk.rsz, step, dst, self.evac, self.templates)
            if self._chunk_end(st):
                self.s_ring.release(key)
        if self._v_mode(st) == "transpose":
            assert isinstance(job.v, RowMajor) and self.v_ring is not None
            key = (st.job, st.vblk, c)
            tile = self._v_tile(u)[: step.rows, : step.g, : blk.csz]
            job.v.transpose(self.v_ring, self.v_chunks[key] + koff, blk.csz, step, tile, self.evac, self.templates)
            if self._chunk_end(st):
                self.v_ring.release(key)
            if job.scratch is not None and st.strip == 0:
                # issued at step u, before the stream buffer is reused two steps later
                dst = job.scratch[step.k0 : step.k0 + step.size, blk.c0 : blk.c0 + blk.csz]
                self.pending.append((u, partial(nisa.dma_copy, dst=dst, src=tile)))

    def matmul(self, t: int, acc: list[list[Any]], acc_views: tuple[Any, ...]) -> None:
        st = self.steps[t]
        blk = self.blocks[st.block]
        step = self.ksteps[st.job][st.kk]
        s_tile = self._s_tile(t)
        if self.v_stream is None:
            v_tile = self.v_cache[(st.job, st.vblk, st.kk)]
            if st.strip + 1 == len(self.strips[st.job]):
                del self.v_cache[(st.job, st.vblk, st.kk)]
        else:
            v_tile = self._v_tile(t)
        # One step's matmuls: the same instructions every step but for the tiles (a loop body traced once,
        # nki/loop_template.py); the key is what decides their shapes and their offsets within those tiles.
        first = st.kk == 0
        key = (blk.rsz, blk.csz, step.size, step.rows, step.g, first)
        self.templates.run(key, (s_tile, v_tile, *acc_views), self._matmuls, blk, step, s_tile, v_tile, acc, first)

    @staticmethod
    def _matmuls(blk: Block, step: Any, s_tile: Any, v_tile: Any, acc: list[list[Any]], first: bool) -> None:
        """acc[i][j] (+)= the step's S k-tile columns of row tile i times its V k-tile columns of column tile j."""
        for i, (m0, msz) in enumerate(blk.row_tiles):
            ms = slice(m0 - blk.r0, m0 - blk.r0 + msz)
            for j, (n0, nsz) in enumerate(blk.col_tiles):
                ns = slice(n0 - blk.c0, n0 - blk.c0 + nsz)
                # Accumulator buffers are reused: the block's first k-step overwrites, the rest add.
                if step.g == 2:
                    nisa.nc_matmul(
                        acc[i][j],
                        s_tile[:, :, ms],
                        v_tile[:, :, ns],
                        accumulate=not first,
                        perf_mode=nisa.matmul_perf_mode.double_row,
                    )
                else:
                    s_view, v_view = s_tile[: step.rows, 0, ms], v_tile[: step.rows, 0, ns]
                    nisa.nc_matmul(acc[i][j], s_view, v_view, accumulate=not first)

    def _defer(self, u: int, work: Deferred) -> None:
        self.pending.append((u + defer_steps(self.ahead_t), work))

    def flush(self, t: int | None) -> None:
        """Issue the deferred work due by step t (all of it, and what it defers in turn, when t is None)."""
        while True:
            due = [w for d, w in self.pending if t is None or d <= t]
            if not due:
                return
            self.pending = [(d, w) for d, w in self.pending if t is not None and d > t]
            for work in due:
                for later in work() or ():
                    self._defer(t if t is not None else 0, later)
            if t is not None:
                return

    def run(self) -> None:
        n = len(self.steps)
        ahead_d, ahead_t = self.ahead_d, self.ahead_t
        acc: list[list[Any]] = []
        acc_views: tuple[Any, ...] = ()
        for t in range(-ahead_d, n):  # t < 0: the prologue, loads and transposes only
            if t + ahead_d < n:
                self.dma(t + ahead_d)
            if 0 <= t + ahead_t < n:
                self.transpose(t + ahead_t)
            if t < 0:
                continue
            st = self.steps[t]
            blk = self.blocks[st.block]
            if st.kk == 0:
                bank = self.acc_sets[st.block % len(self.acc_sets)]
                width = len(blk.col_tiles)
                acc = [
                    [bank.slot(i * width + j)[:msz, :nsz] for j, (_, nsz) in enumerate(blk.col_tiles)]
                    for i, (_, msz) in enumerate(blk.row_tiles)
                ]
                acc_views = tuple(a for row in acc for a in row)
            self.matmul(t, acc, acc_views)
            if st.kk + 1 == len(self.ksteps[st.job]):
                for work in self.jobs[st.job].finish(blk, acc, self.prefetched.pop(st.block, None)):
                    self._defer(t, work)
            self.flush(t)
        self.flush(None)


def run_gemm(jobs: list[GemmJob], plan: GemmPlan, double_row: bool, evac: Evacuator) -> None:
    """Issue the whole pipelined GEMM (`evac` is shared with the jobs' epilogues)."""
    _Pipeline(jobs, plan, double_row, evac).run()
