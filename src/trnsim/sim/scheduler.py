"""Event-driven timing: when each instruction starts and finishes.

Each engine and each DMA queue is an in-order queue. An instruction starts when its queue is free
and every earlier instruction it conflicts with (RAW, WAR, WAW on overlapping memory regions) has
produced its result; that is how the Neuron compiler's semaphores order engines. Costs come from
isa/cost.py; nothing here decides a cycle count.

DMA transfers are split by partition (descriptor) groups over the core's queues. Each piece moves at
the queue's rate times the descriptor efficiency, capped by its share of the chip's HBM bandwidth
among the transfers in flight when it starts (fair share, fixed at start). The fixed DMA latency
delays the result, not the queue, so it overlaps across queues and back-to-back transfers.
"""

from __future__ import annotations

from bisect import bisect_right, insort

import numpy as np

from trnsim.hw.spec import HardwareSpec
from trnsim.isa.cost import dma_transfer_ns, engine_clock_ghz, pipeline_latency_ns
from trnsim.isa.instruction import Instruction, Region
from trnsim.isa.opcodes import COMPUTE_ENGINES, Engine
from trnsim.sim.timeline import N_ENGINES, Timeline

# HBM transfers that ended this long before the newest start no longer share bandwidth with anything.
_HBM_HORIZON_NS = 100_000.0

Box = tuple[int, int, int, int]


def _latest_overlap(entries: dict[Box, float], r: Region) -> float:
    _, r0, r1, c0, c1 = r
    latest = 0.0
    for (a0, a1, b0, b1), t in entries.items():
        if t > latest and a0 < r1 and r0 < a1 and b0 < c1 and c0 < b1:
            latest = t
    return latest


def _drop_covered(entries: dict[Box, float], r: Region) -> None:
    _, r0, r1, c0, c1 = r
    covered = [k for k in entries if r0 <= k[0] and k[1] <= r1 and c0 <= k[2] and k[3] <= c1]
    for k in covered:
        del entries[k]


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


def schedule(instrs: list[Instruction], spec: HardwareSpec, n_cores: int) -> Timeline:
    core = spec.core
    dma = core.dma
    nq = dma.queues
    ns_per_cycle = [1.0 / engine_clock_ghz(core, e) for e in COMPUTE_ENGINES]
    latency = [pipeline_latency_ns(core, Engine(e)) for e in range(N_ENGINES + 1)]
    hbm_rate = spec.chip.hbm_bytes_per_ns

    engine_free = [[0.0] * N_ENGINES for _ in range(n_cores)]
    queue_free = [[0.0] * nq for _ in range(n_cores)]
    writes: dict[int, dict[Box, float]] = {}
    reads: dict[int, dict[Box, float]] = {}
    hbm_ends: list[float] = []  # sorted ends of HBM transfers that may still be in flight
    newest_start = 0.0

    n = len(instrs)
    instr_start = np.zeros(n)
    instr_end = np.zeros(n)
    s_instr: list[int] = []
    s_core: list[int] = []
    s_unit: list[int] = []
    s_start: list[float] = []
    s_end: list[float] = []

    for i in interleave_cores(instrs, n_cores):
        ins = instrs[i]
        ready = 0.0
        for r in ins.reads:
            w = writes.get(r[0])
            if w:
                t = _latest_overlap(w, r)
                if t > ready:
                    ready = t
        for r in ins.writes:
            w = writes.get(r[0])
            if w:
                t = _latest_overlap(w, r)
                if t > ready:
                    ready = t
            rd = reads.get(r[0])
            if rd:
                t = _latest_overlap(rd, r)
                if t > ready:
                    ready = t

        c = ins.core
        e = ins.engine
        if e is not Engine.DMA:
            t0 = max(engine_free[c][e], ready)
            t1 = t0 + ins.cycles * ns_per_cycle[e]
            engine_free[c][e] = t1
            done = t1 + latency[e]
            s_instr.append(i)
            s_core.append(c)
            s_unit.append(int(e))
            s_start.append(t0)
            s_end.append(t1)
            instr_start[i] = t0
        else:
            qf = queue_free[c]
            pieces = min(nq, max(1, ins.dma_rows))
            queues = range(nq) if pieces == nq else sorted(range(nq), key=qf.__getitem__)[:pieces]
            piece_bytes = ins.dma_bytes / pieces
            first = min(max(qf[q], ready) for q in queues)
            rate = dma.queue_bytes_per_ns
            if ins.hbm_bytes:
                in_flight = len(hbm_ends) - bisect_right(hbm_ends, first)
                rate = min(rate, hbm_rate / (in_flight + pieces))
            busy_end = first
            for q in queues:
                t0 = max(qf[q], ready)
                t1 = t0 + dma_transfer_ns(dma, int(piece_bytes), ins.dma_row_bytes, rate)
                qf[q] = t1
                busy_end = max(busy_end, t1)
                if ins.hbm_bytes:
                    insort(hbm_ends, t1)
                s_instr.append(i)
                s_core.append(c)
                s_unit.append(N_ENGINES + q)
                s_start.append(t0)
                s_end.append(t1)
            done = busy_end + latency[Engine.DMA]
            instr_start[i] = first
            if first > newest_start:
                newest_start = first
                if len(hbm_ends) > 8 * nq * n_cores:
                    del hbm_ends[: bisect_right(hbm_ends, newest_start - _HBM_HORIZON_NS)]
        instr_end[i] = done

        for r in ins.reads:
            d = reads.setdefault(r[0], {})
            key = (r[1], r[2], r[3], r[4])
            if d.get(key, -1.0) < done:
                d[key] = done
        for r in ins.writes:
            d = writes.setdefault(r[0], {})
            _drop_covered(d, r)
            rd = reads.get(r[0])
            if rd:
                _drop_covered(rd, r)
            d[(r[1], r[2], r[3], r[4])] = done

    return Timeline(
        n_cores=n_cores,
        dma_queues=nq,
        instr_start=instr_start,
        instr_end=instr_end,
        slice_instr=np.asarray(s_instr, dtype=np.int64),
        slice_core=np.asarray(s_core, dtype=np.int64),
        slice_unit=np.asarray(s_unit, dtype=np.int64),
        slice_start=np.asarray(s_start, dtype=np.float64),
        slice_end=np.asarray(s_end, dtype=np.float64),
    )
