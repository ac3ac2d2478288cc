"""A frozen copy of the interpreted scheduler (sim/scheduler.py and sim/regions.py as at 6f571fa), kept only
as the reference that tests/sim/test_scheduler_exact.py compares the compiled scheduler with, bit for bit.
Not used by trnsim itself; do not change it to follow the model: a model change goes into both, on purpose.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

from trnsim.hw.spec import HardwareSpec
from trnsim.isa.cost import (
    dma_queue_occupancy_ns,
    dma_queue_pieces,
    dma_transfer_ns,
    engine_clock_ghz,
    pipeline_latency_ns,
)
from trnsim.isa.instruction import Instruction, Region
from trnsim.isa.opcodes import COMPUTE_ENGINES, Engine
from trnsim.sim.memory import AllocationRecord
from trnsim.sim.timeline import N_ENGINES, Timeline

Box = tuple[int, int, int, int, int, int]

ROW_BLOCK = 128  # one partition-tile of rows
COL_BLOCK = 2048  # elements of dim 1; a few free-dim tiles wide
REST_BLOCK = 16384  # elements of the flattened inner dims
_SMALL = 8  # below this many boxes a plain scan beats the grid


class RegionIndex:
    __slots__ = ("boxes", "grid")

    def __init__(self) -> None:
        self.boxes: dict[Box, float] = {}
        self.grid: dict[tuple[int, int, int], set[Box]] = {}

    @staticmethod
    def _cells(b: Box) -> list[tuple[int, int, int]]:
        rows = range(b[0] // ROW_BLOCK, (b[1] - 1) // ROW_BLOCK + 1)
        cols = range(b[2] // COL_BLOCK, (b[3] - 1) // COL_BLOCK + 1)
        rest = range(b[4] // REST_BLOCK, (b[5] - 1) // REST_BLOCK + 1)
        return [(r, c, e) for r in rows for c in cols for e in rest]

    def _candidates(self, b: Box) -> list[Box] | dict[Box, float]:
        if len(self.boxes) <= _SMALL:
            return self.boxes
        if not self.grid:  # grow the grid only once there are enough boxes to need it
            for k in self.boxes:
                for cell in self._cells(k):
                    self.grid.setdefault(cell, set()).add(k)
        seen: set[Box] = set()
        grid = self.grid
        for cell in self._cells(b):
            found = grid.get(cell)
            if found:
                seen |= found
        return list(seen)

    def latest_overlap(self, b: Box) -> float:
        """Completion time of the latest recorded access overlapping box b (0 if none)."""
        boxes = self.boxes
        exact = boxes.get(b)
        if exact is not None and len(boxes) == 1:
            return exact
        r0, r1, c0, c1, e0, e1 = b
        latest = 0.0
        for k in self._candidates(b):
            t = boxes[k]
            if t > latest and k[0] < r1 and r0 < k[1] and k[2] < c1 and c0 < k[3] and k[4] < e1 and e0 < k[5]:
                latest = t
        return latest

    def record(self, b: Box, t: float) -> None:
        old = self.boxes.get(b)
        if old is None:
            self.boxes[b] = t
            if self.grid:
                for cell in self._cells(b):
                    self.grid.setdefault(cell, set()).add(b)
        elif old < t:
            self.boxes[b] = t

    def drop_covered(self, b: Box) -> None:
        """Forget accesses inside box b: a new write to b already waited for them."""
        boxes = self.boxes
        if not boxes:
            return
        r0, r1, c0, c1, e0, e1 = b
        covered = [
            k
            for k in self._candidates(b)
            if r0 <= k[0] and k[1] <= r1 and c0 <= k[2] and k[3] <= c1 and e0 <= k[4] and k[5] <= e1
        ]
        for k in covered:
            del boxes[k]
            if self.grid:
                for cell in self._cells(k):
                    cell_set = self.grid.get(cell)
                    if cell_set is not None:
                        cell_set.discard(k)
        if len(boxes) <= _SMALL:
            self.grid.clear()


# HBM transfers that ended this long before the newest transfer start are forgotten: a transfer that
# starts earlier than that (out of program order) would not see them. A few DMA latencies is plenty.
_HBM_HORIZON_NS = 20_000.0
DMA = int(Engine.DMA)
TENSOR = int(Engine.TENSOR)


def _accumulation_chain(chain: dict[int, tuple[Region, float, float]], r: Region, t: float) -> float:
    """Matmuls accumulating into the same PSUM region run back to back: the PSUM adds in arrival order,
    so the next one waits only for TensorE (in order), not for the previous result's pipeline latency."""
    last = chain.get(r[0])
    if last is not None and last[0] == r and t == last[1]:
        return last[2]
    return t


def interleave_cores(instrs: list[Instruction], n_cores: int) -> list[int]:
    """Program order per core, interleaved across cores so shared-HBM contention is seen in time order."""
    if n_cores == 1:
        return list(range(len(instrs)))
    per_core: list[list[int]] = [[] for _ in range(n_cores)]
    for i, ins in enumerate(instrs):
        per_core[ins.core].append(i)
    order: list[int] = []
    for k in range(max(len(p) for p in per_core)):
        for p in per_core:
            if k < len(p):
                order.append(p[k])
    return order


def schedule(
    instrs: list[Instruction],
    spec: HardwareSpec,
    n_cores: int,
    reuse: dict[int, tuple[int, ...]] | None = None,
    allocations: dict[int, AllocationRecord] | None = None,
) -> Timeline:
    """Time the instruction stream. `reuse` maps an allocation to the freed ones whose bytes it took over;
    `allocations` (Machine.allocations) is only carried into the Timeline, for occupancy counters."""
    core = spec.core
    dma = core.dma
    nq = dma.queues
    ns_per_cycle = [1.0 / engine_clock_ghz(core, e) for e in COMPUTE_ENGINES]
    latency = [pipeline_latency_ns(core, Engine(e)) for e in range(N_ENGINES + 1)]
    hbm_rate = spec.chip.hbm_bytes_per_ns
    queue_rate = dma.queue_bytes_per_ns
    dma_units = [N_ENGINES + q for q in range(nq)]

    # NC-v2 port limits: engines in one group cannot use the same memory at once (a shared port).
    groups = [(g, True) for g in core.sbuf_exclusive_engines] + [(g, False) for g in core.psum_exclusive_engines]
    engine_ports: list[list[tuple[int, bool]]] = [[] for _ in range(N_ENGINES)]
    for port, (group, is_sbuf) in enumerate(groups):
        for name in group:
            engine_ports[Engine[name.upper()]].append((port, is_sbuf))
    port_free = [[0.0] * len(groups) for _ in range(n_cores)]
    engine_free = [[0.0] * N_ENGINES for _ in range(n_cores)]
    queue_free = [[0.0] * nq for _ in range(n_cores)]
    writes: dict[int, RegionIndex] = {}
    reads: dict[int, RegionIndex] = {}
    # level[c]: the time all of core c's DMA queues are free when they are all equal, else None
    level: list[float | None] = [0.0] * n_cores
    hbm_ends: list[float] = []  # sorted ends of HBM transfers that may still be in flight ...
    hbm_pieces: list[int] = []  # ... and how many queue pieces each had
    newest_start = 0.0

    n = len(instrs)
    instr_start = [0.0] * n
    instr_end = [0.0] * n
    s_instr: list[int] = []
    s_core: list[int] = []
    s_unit: list[int] = []
    s_start: list[float] = []
    s_end: list[float] = []
    # groups of identical pieces on all of a core's DMA queues (expanded into slices at the end)
    g_instr: list[int] = []
    g_core: list[int] = []
    g_start: list[float] = []
    g_end: list[float] = []

    # last TensorE write per allocation: (region, result time, issue end) - see _accumulation_chain
    accum_chain: dict[int, tuple[Region, float, float]] = {}
    dur_cache: dict[tuple[int, int, int, float], float] = {}  # tiles repeat: same transfer, same time
    occ_cache: dict[float, float] = {}  # data time -> queue occupancy
    order = interleave_cores(instrs, n_cores)
    reuse = reuse or {}
    predecessors = {p for preds in reuse.values() for p in preds}
    # Pre-pass over the stream. Where each allocation is last written / last touched: an access needs
    # remembering only if a later instruction could conflict with it (most reads are of data never written
    # again). And, for memory reuse, which positions first touch reused bytes (they wait for the old
    # tensor; every later access depends on that first one) and which touch a tensor whose bytes are
    # reused later (its last access time matters).
    last_write: dict[int, int] = {}
    last_access: dict[int, int] = {}
    ever_read: set[int] = set()
    first_reuse: dict[int, list[int]] = {}
    touches_predecessor: dict[int, list[int]] = {}
    unseen = set(reuse)
    for pos, i in enumerate(order):
        ins = instrs[i]
        for r in ins.reads:
            last_access[r[0]] = pos
            ever_read.add(r[0])
        for r in ins.writes:
            last_write[r[0]] = pos
            last_access[r[0]] = pos
        if reuse:
            for r in (*ins.reads, *ins.writes):
                if r[0] in unseen:
                    unseen.discard(r[0])
                    first_reuse.setdefault(pos, []).append(r[0])
                if r[0] in predecessors:
                    touches_predecessor.setdefault(pos, []).append(r[0])

    last_done: dict[int, float] = {}  # latest completion of any access, for allocations others reuse
    floors: dict[int, float] = {}

    def floor(aid: int) -> float:
        """Earliest time an access to `aid` may happen: after every access to the bytes' previous owners."""
        f = floors.get(aid)
        if f is None:
            f = 0.0
            for p in reuse[aid]:
                t = last_done[p] if p in last_done else (floor(p) if p in reuse else 0.0)
                if t > f:
                    f = t
            floors[aid] = f
        return f

    for pos, i in enumerate(order):
        ins = instrs[i]
        c = ins.core
        e = ins.engine
        ready = 0.0
        reused = first_reuse.get(pos)
        if reused is not None:
            for aid in reused:
                t = floor(aid)
                if t > ready:
                    ready = t
        chained = ins.accumulate and e == TENSOR
        for r in ins.reads:  # read after write
            w = writes.get(r[0])
            if w is not None:
                t = w.latest_overlap(r[1:])
                if chained:
                    t = _accumulation_chain(accum_chain, r, t)
                if t > ready:
                    ready = t
        for r in ins.writes:  # write after write, write after read
            box = r[1:]
            w = writes.get(r[0])
            if w is not None:
                t = w.latest_overlap(box)
                if chained:
                    t = _accumulation_chain(accum_chain, r, t)
                if t > ready:
                    ready = t
            rd = reads.get(r[0])
            if rd is not None:
                t = rd.latest_overlap(box)
                if t > ready:
                    ready = t

        if e != DMA:
            t0 = engine_free[c][e]
            if ready > t0:
                t0 = ready
            ports = engine_ports[e]
            if ports:
                used = [p for p, is_sbuf in ports if (ins.touches_sbuf if is_sbuf else ins.touches_psum)]
                for p in used:
                    if port_free[c][p] > t0:
                        t0 = port_free[c][p]
            t1 = t0 + ins.cycles * ns_per_cycle[e]
            engine_free[c][e] = t1
            if e == TENSOR:
                for r in ins.writes:
                    accum_chain[r[0]] = (r, t1 + latency[e], t1)
            if ports:
                for p in used:
                    port_free[c][p] = t1
            done = t1 + latency[e]
            s_instr.append(i)
            s_core.append(c)
            s_unit.append(e)
            s_start.append(t0)
            s_end.append(t1)
            instr_start[i] = t0
        else:
            # All pieces of one transfer are the same size, so they take the same time on any queue.
            rows = ins.dma_rows
            pieces = dma_queue_pieces(core, rows)  # 8 partitions per queue
            rate = queue_rate
            if ins.hbm_bytes:
                lv0 = level[c]
                first = lv0 if lv0 is not None else min(queue_free[c])
                if ready > first:
                    first = ready
                k = bisect_right(hbm_ends, first)
                share = hbm_rate / (sum(hbm_pieces[k:]) + pieces)
                if share < rate:
                    rate = share
            key = (ins.dma_bytes, pieces, ins.dma_row_bytes, rate)
            dur = dur_cache.get(key)
            if dur is None:
                dur = dur_cache[key] = dma_transfer_ns(dma, ins.dma_bytes / pieces, ins.dma_row_bytes, rate)
            occ = occ_cache.get(dur)
            if occ is None:
                occ = occ_cache[dur] = dma_queue_occupancy_ns(dma, dur)
            lv = level[c]
            if pieces == nq and lv is not None:
                # Fast path: every queue of the core frees at the same time (the common case), so the
                # transfer is one group of identical pieces on all queues.
                first = lv if lv > ready else ready
                last = first + occ
                level[c] = last
                data_end = first + dur
                g_instr.append(i)
                g_core.append(c)
                g_start.append(first)
                g_end.append(last)
            else:
                qf = queue_free[c] if lv is None else [lv] * nq
                if pieces == nq:
                    starts = [f if f > ready else ready for f in qf]
                    ends = [t + occ for t in starts]
                    units = dma_units
                    qf = ends[:]
                else:  # fewer descriptors than queues: the earliest-free queues take them
                    chosen = sorted(range(nq), key=qf.__getitem__)[:pieces]
                    starts = [qf[q] if qf[q] > ready else ready for q in chosen]
                    ends = [t + occ for t in starts]
                    for q, t in zip(chosen, ends):
                        qf[q] = t
                    units = [N_ENGINES + q for q in chosen]
                queue_free[c] = qf
                level[c] = qf[0] if min(qf) == max(qf) else None
                s_instr.extend([i] * pieces)
                s_core.extend([c] * pieces)
                s_unit.extend(units)
                s_start.extend(starts)
                s_end.extend(ends)
                first = min(starts)
                last = max(ends)
                data_end = max(starts) + dur
            if ins.hbm_bytes:  # HBM is in use while the data moves, not for the rest of the overhead
                k = bisect_right(hbm_ends, data_end)
                hbm_ends.insert(k, data_end)
                hbm_pieces.insert(k, pieces)
            done = data_end + latency[DMA]
            instr_start[i] = first
            if first > newest_start:
                newest_start = first
                if len(hbm_ends) > 64:
                    k = bisect_right(hbm_ends, newest_start - _HBM_HORIZON_NS)
                    del hbm_ends[:k]
                    del hbm_pieces[:k]
        instr_end[i] = done
        touched = touches_predecessor.get(pos)
        if touched is not None:
            for aid in touched:
                if last_done.get(aid, 0.0) < done:
                    last_done[aid] = done

        for r in ins.reads:
            if last_write.get(r[0], -1) <= pos:
                continue
            idx = reads.get(r[0])
            if idx is None:
                idx = reads[r[0]] = RegionIndex()
            idx.record(r[1:], done)
        for r in ins.writes:
            # Nothing later can conflict with this write if nothing accesses the allocation again, or if
            # the allocation is write-only (a kernel output written tile by tile: the order of its
            # writes is not timed).
            if last_access[r[0]] <= pos or r[0] not in ever_read:
                continue
            box = r[1:]
            idx = writes.get(r[0])
            if idx is None:
                idx = writes[r[0]] = RegionIndex()
            elif idx.boxes:
                idx.drop_covered(box)
            rd = reads.get(r[0])
            if rd is not None and rd.boxes:
                rd.drop_covered(box)
            idx.record(box, done)

    # Expand each all-queue group into one slice per queue.
    g = len(g_instr)
    return Timeline(
        n_cores=n_cores,
        dma_queues=nq,
        instr_start=np.asarray(instr_start),
        instr_end=np.asarray(instr_end),
        slice_instr=np.concatenate(
            [np.asarray(s_instr, dtype=np.int64), np.repeat(np.asarray(g_instr, dtype=np.int64), nq)]
        ),
        slice_core=np.concatenate(
            [np.asarray(s_core, dtype=np.int64), np.repeat(np.asarray(g_core, dtype=np.int64), nq)]
        ),
        slice_unit=np.concatenate(
            [np.asarray(s_unit, dtype=np.int64), np.tile(np.asarray(dma_units, dtype=np.int64), g)]
        ),
        slice_start=np.concatenate([np.asarray(s_start, dtype=np.float64), np.repeat(np.asarray(g_start), nq)]),
        slice_end=np.concatenate([np.asarray(s_end, dtype=np.float64), np.repeat(np.asarray(g_end), nq)]),
        allocations=allocations if allocations is not None else {},
    )
