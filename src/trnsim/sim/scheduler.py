"""Event-driven timing: when each instruction starts and finishes.

Each engine and each DMA queue is an in-order queue. An instruction starts when its queue is free
and every earlier instruction it conflicts with (RAW, WAR, WAW on overlapping memory regions) has
produced its result; that is how the Neuron compiler's semaphores order engines. Costs come from
isa/cost.py; nothing here decides a cycle count.

DMA transfers are split by partition groups (8 partitions per queue) over the core's queues. Each
piece moves at the queue's rate times the descriptor efficiency, capped by its share of the chip's HBM bandwidth
among the transfers in flight when it starts (fair share, fixed at start). A piece holds its queue for
at least the per-transfer overhead (isa/cost.py dma_queue_occupancy_ns): many small transfers are
bound by the transfer rate. The fixed DMA latency delays the result (data time + latency after the
start), not the queue, so it overlaps across queues and back-to-back transfers.

Implementation: this module turns the stream into arrays (one per instruction field; each distinct
(allocation, box) region interned to an id) and asks the cost rules once per distinct value; the event loop
itself is compiled (sim/schedule_core.py, sim/schedule_regions.py: numba, compiled once per machine, cached on
disk).
tests/sim/test_scheduler_exact.py holds it to the interpreted loop it replaced, bit for bit.
"""

from __future__ import annotations

import struct
from itertools import chain, starmap
from operator import attrgetter
from typing import Any

import numpy as np

from trnsim.hw.spec import HardwareSpec
from trnsim.isa.cost import dma_efficiency, dma_queue_pieces, engine_clock_ghz, pipeline_latency_ns
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import COMPUTE_ENGINES, Engine
from trnsim.sim.memory import AllocationRecord
from trnsim.sim.timeline import N_ENGINES, Timeline

# HBM transfers that ended this long before the newest transfer start are forgotten: a transfer that
# starts earlier than that (out of program order) would not see them. A few DMA latencies is plenty.
_HBM_HORIZON_NS = 20_000.0
DMA = int(Engine.DMA)
TENSOR = int(Engine.TENSOR)
ROW_BLOCK = 128  # grid cells of the region lists (schedule_regions.py): rows ...
COL_BLOCK = 2048  # ... elements of dim 1 ...
REST_BLOCK = 16384  # ... elements of the flattened inner dims


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


def _order(core: np.ndarray, n_cores: int) -> np.ndarray:
    """interleave_cores on arrays: by rank within the core, then by core."""
    n = len(core)
    if n and (core.min() < 0 or core.max() >= n_cores):  # the compiled loop does not check its indices
        bad = int(core[(core < 0) | (core >= n_cores)][0])
        raise IndexError(f"instruction on core {bad} in a stream scheduled over {n_cores} cores")
    if n_cores == 1:
        return np.arange(n, dtype=np.int64)
    rank = np.empty(n, dtype=np.int64)
    for c in range(n_cores):
        m = core == c
        rank[m] = np.arange(int(m.sum()))
    return np.lexsort((core, rank)).astype(np.int64)


_PACK_REGION = struct.Struct("<7q").pack


def _regions(lists: list[tuple[tuple[int, ...], ...]], count: int) -> np.ndarray:
    """The regions of all instructions, in order, as rows of 7 integers (packed in C, no per-int objects)."""
    if count == 0:
        return np.zeros((0, 7), dtype=np.int64)
    packed = b"".join(starmap(_PACK_REGION, chain.from_iterable(lists)))
    return np.frombuffer(packed, dtype="<i8").reshape(count, 7)


def _per_value(values: np.ndarray, fn: Any, dtype: Any) -> np.ndarray:
    """fn applied to each distinct value (cost rules are asked once per distinct argument)."""
    if len(values) == 0:
        return np.zeros(0, dtype=dtype)
    uniq, inv = np.unique(values, return_inverse=True)
    return np.asarray([fn(int(v)) for v in uniq], dtype=dtype)[inv]


def schedule(
    instrs: list[Instruction],
    spec: HardwareSpec,
    n_cores: int,
    reuse: dict[int, tuple[int, ...]] | None = None,
    allocations: dict[int, AllocationRecord] | None = None,
) -> Timeline:
    """Time the instruction stream. `reuse` maps an allocation to the freed ones whose bytes it took over;
    `allocations` (Machine.allocations) is only carried into the Timeline, for occupancy counters."""
    from trnsim.sim import schedule_core, schedule_regions  # compiled on first use (numba, cached on disk)

    core_spec = spec.core
    dma = core_spec.dma
    nq = dma.queues
    n = len(instrs)
    reuse = reuse or {}

    # NC-v2 port limits: engines in one group cannot use the same memory at once (a shared port).
    groups = [(g, True) for g in core_spec.sbuf_exclusive_engines] + [
        (g, False) for g in core_spec.psum_exclusive_engines
    ]
    ports = np.zeros((N_ENGINES, len(groups)), dtype=np.int64)
    for port, (group, is_sbuf) in enumerate(groups):
        for name in group:
            kind = schedule_core.PORT_SBUF if is_sbuf else schedule_core.PORT_PSUM
            ports[Engine[name.upper()], port] = kind

    # Struct of arrays: one C-level pass over the instructions per field, only where a field can matter.
    def field(name: str, dtype: Any, of: Any = instrs, count: int = n) -> np.ndarray:
        return np.fromiter(map(attrgetter(name), of), dtype=dtype, count=count)

    core = field("core", np.int64)
    engine = field("engine", np.int64)
    cycles = field("cycles", np.float64)
    accumulate = field("accumulate", np.bool_)
    sbuf = field("touches_sbuf", np.bool_) if len(groups) else np.zeros(n, dtype=np.bool_)
    psum = field("touches_psum", np.bool_) if len(groups) else np.zeros(n, dtype=np.bool_)
    is_dma = engine == DMA
    dma_at = np.flatnonzero(is_dma)
    n_dma = len(dma_at)
    dmas = list(map(instrs.__getitem__, dma_at.tolist()))
    dma_bytes = np.zeros(n, dtype=np.int64)
    dma_bytes[dma_at] = field("dma_bytes", np.int64, dmas, n_dma)
    dma_rows = field("dma_rows", np.int64, dmas, n_dma)
    row_bytes = field("dma_row_bytes", np.int64, dmas, n_dma)
    uses_hbm = np.zeros(n, dtype=np.bool_)
    uses_hbm[dma_at] = field("hbm_bytes", np.int64, dmas, n_dma) != 0
    reads = list(map(attrgetter("reads"), instrs))
    writes = list(map(attrgetter("writes"), instrs))
    n_reads = np.fromiter(map(len, reads), dtype=np.int64, count=n)
    n_writes = np.fromiter(map(len, writes), dtype=np.int64, count=n)
    reg_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_reads + n_writes, out=reg_ptr[1:])
    n_flat = int(reg_ptr[-1])

    # Regions: each distinct (allocation, box) gets an id; reads then writes per instruction.
    flat = np.empty((n_flat, 7), dtype=np.int64)
    reg_write = np.zeros(n_flat, dtype=np.bool_)
    for lists, counts, skip, is_write in ((reads, n_reads, 0, False), (writes, n_writes, n_reads, True)):
        rows = _regions(lists, int(counts.sum()))
        owner = np.repeat(np.arange(n, dtype=np.int64), counts)
        at = np.arange(len(rows), dtype=np.int64) - (np.cumsum(counts) - counts)[owner]
        at += (reg_ptr[:-1] + skip)[owner]
        flat[at] = rows
        reg_write[at] = is_write
    reg_box, first = schedule_regions.intern_rows(flat)
    table = flat[first]
    box = np.ascontiguousarray(table[:, 1:])
    cell = np.empty_like(box)
    for d, block in enumerate((ROW_BLOCK, COL_BLOCK, REST_BLOCK)):
        cell[:, 2 * d] = box[:, 2 * d] // block
        cell[:, 2 * d + 1] = (box[:, 2 * d + 1] - 1) // block

    # Allocations, numbered densely; memory reuse as CSR lists (dense allocation -> its predecessors).
    n_keys = len(reuse)
    keys = np.fromiter(reuse, dtype=np.int64, count=n_keys)
    lens = np.fromiter(map(len, reuse.values()), dtype=np.int64, count=n_keys)
    vals = np.fromiter(chain.from_iterable(reuse.values()), dtype=np.int64, count=int(lens.sum()))
    n_box = len(table)
    dense, first_aid = schedule_regions.intern_rows(np.concatenate([table[:, 0], keys, vals]).reshape(-1, 1))
    box_aid = dense[:n_box]
    n_aid = len(first_aid)
    has_reuse = np.zeros(n_aid, dtype=np.bool_)
    is_pred = np.zeros(n_aid, dtype=np.bool_)
    reuse_ptr = np.zeros(n_aid + 1, dtype=np.int64)
    key_d = dense[n_box : n_box + n_keys]
    has_reuse[key_d] = True
    counts = np.zeros(n_aid, dtype=np.int64)
    counts[key_d] = lens
    np.cumsum(counts, out=reuse_ptr[1:])
    perm = np.argsort(key_d)  # the CSR lists in dense order: each key's values, in their own order
    seg_start = np.cumsum(lens) - lens
    out_start = np.cumsum(lens[perm]) - lens[perm]
    src = np.repeat(seg_start[perm] - out_start, lens[perm]) + np.arange(len(vals), dtype=np.int64)
    reuse_pred = dense[n_box + n_keys :][src]
    is_pred[reuse_pred] = True

    # Per-instruction DMA constants from the cost rules (asked once per distinct value).
    pieces = np.ones(n, dtype=np.int64)
    pieces[dma_at] = _per_value(dma_rows, lambda r: dma_queue_pieces(core_spec, r), np.int64)
    efficiency = np.ones(n, dtype=np.float64)
    efficiency[dma_at] = _per_value(row_bytes, lambda b: dma_efficiency(dma, b), np.float64)
    piece_bytes = dma_bytes / pieces

    ns_per_cycle = np.array([1.0 / engine_clock_ghz(core_spec, e) for e in COMPUTE_ENGINES], dtype=np.float64)
    latency = np.array([pipeline_latency_ns(core_spec, Engine(e)) for e in range(N_ENGINES + 1)], dtype=np.float64)

    n_slices = n - n_dma + n_dma * nq
    instr_start = np.zeros(n, dtype=np.float64)
    instr_end = np.zeros(n, dtype=np.float64)
    s_instr = np.empty(n_slices, dtype=np.int64)
    s_core = np.empty(n_slices, dtype=np.int64)
    s_unit = np.empty(n_slices, dtype=np.int64)
    s_start = np.empty(n_slices, dtype=np.float64)
    s_end = np.empty(n_slices, dtype=np.float64)
    g_instr = np.empty(n_dma, dtype=np.int64)
    g_core = np.empty(n_dma, dtype=np.int64)
    g_start = np.empty(n_dma, dtype=np.float64)
    g_end = np.empty(n_dma, dtype=np.float64)
    ns, ng = schedule_core.run(
        _order(core, n_cores),
        core,
        engine,
        cycles,
        accumulate & (engine == TENSOR),
        sbuf,
        psum,
        pieces,
        piece_bytes,
        efficiency,
        uses_hbm,
        reg_ptr,
        reg_box,
        reg_write,
        box,
        cell,
        box_aid,
        n_aid,
        reuse_ptr,
        reuse_pred,
        has_reuse,
        is_pred,
        n_cores,
        nq,
        ns_per_cycle,
        latency,
        ports,
        float(spec.chip.hbm_bytes_per_ns),
        float(dma.queue_bytes_per_ns),
        float(dma.transfer_overhead_ns),
        _HBM_HORIZON_NS,
        N_ENGINES,
        DMA,
        TENSOR,
        instr_start,
        instr_end,
        s_instr,
        s_core,
        s_unit,
        s_start,
        s_end,
        g_instr,
        g_core,
        g_start,
        g_end,
    )

    # Expand each all-queue group into one slice per queue.
    dma_units = np.arange(N_ENGINES, N_ENGINES + nq, dtype=np.int64)
    return Timeline(
        n_cores=n_cores,
        dma_queues=nq,
        instr_start=instr_start,
        instr_end=instr_end,
        slice_instr=np.concatenate([s_instr[:ns], np.repeat(g_instr[:ng], nq)]),
        slice_core=np.concatenate([s_core[:ns], np.repeat(g_core[:ng], nq)]),
        slice_unit=np.concatenate([s_unit[:ns], np.tile(dma_units, ng)]),
        slice_start=np.concatenate([s_start[:ns], np.repeat(g_start[:ng], nq)]),
        slice_end=np.concatenate([s_end[:ns], np.repeat(g_end[:ng], nq)]),
        allocations=allocations if allocations is not None else {},
    )
