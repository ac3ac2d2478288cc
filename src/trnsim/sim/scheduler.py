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
import sys
from collections.abc import Hashable, Iterable
from itertools import chain, starmap
from operator import attrgetter
from typing import Any, Literal

import numpy as np

from trnsim.hw.spec import HardwareSpec
from trnsim.isa.cost import dma_efficiency, dma_queue_pieces, engine_clock_ghz, pipeline_latency_ns
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import COMPUTE_ENGINES, Engine
from trnsim.sim import schedule_core
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


# Which core runs the event loop (the same timeline either way). Measured 2026-12-07 on the 2-core dev VM
# (/work/briefs/bench_D.md): importing numba and loading the cached compiled core costs a process ~1.0-1.2 CPU s
# once (numba 0.35-0.45 s with numpy loaded, more in a bare process; the cached machine code 0.65-0.8 s); per
# instruction, schedule() takes 13-21 us interpreted and 3-6 us compiled (library matmul, flash attention and
# rmsnorm streams of 155-7,500 instructions), ~12 us more interpreted: the load pays for itself at ~90k
# instructions. A stream of COMPILE_AT instructions or more goes compiled; shorter ones run interpreted until
# those this process ran interpreted would pass INTERPRETED_BUDGET (about the load's cost: rent or buy, never
# worse than twice the better choice), and compiled from then on, as everything once numba is loaded.
COMPILE_AT = 80_000
INTERPRETED_BUDGET = 80_000
_interpreted_so_far = 0


def _use_compiled(n: int) -> bool:
    global _interpreted_so_far
    if "trnsim.sim.schedule_jit" in sys.modules or n >= COMPILE_AT or _interpreted_so_far + n > INTERPRETED_BUDGET:
        _interpreted_so_far = INTERPRETED_BUDGET  # numba is loaded now: compiled from here on
        return True
    _interpreted_so_far += n
    return False


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


def _regions(regions: list[tuple[int, ...]]) -> np.ndarray:
    """Regions as rows of 7 integers (packed in C, no per-int objects)."""
    packed = b"".join(starmap(_PACK_REGION, regions))
    return np.frombuffer(packed, dtype="<i8").reshape(len(regions), 7)


def _intern(items: Iterable[Hashable], count: int) -> tuple[np.ndarray, list[Any]]:
    """An id per item, distinct items numbered in order of first appearance, and the distinct items."""
    items = list(items)
    ids = dict.fromkeys(items)  # C-level passes: distinct items in order, then their numbers, then the lookups
    distinct = list(ids)
    ids.update(zip(distinct, range(len(distinct))))
    return np.fromiter(map(ids.__getitem__, items), dtype=np.int64, count=count), distinct


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
    core_run: Literal["auto", "compiled", "interpreted"] = "auto",
) -> Timeline:
    """Time the instruction stream. `reuse` maps an allocation to the freed ones whose bytes it took over;
    `allocations` (Machine.allocations) is only carried into the Timeline, for occupancy counters.
    `core_run` picks how the event loop runs (the same timeline either way); "auto": `_use_compiled`."""
    compiled = _use_compiled(len(instrs)) if core_run == "auto" else core_run == "compiled"
    if compiled:
        from trnsim.sim.schedule_jit import intern_rows, run  # numba: imported, compiled or loaded, on first use
    else:
        run = schedule_core.interpreted()

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

    # Regions: each distinct (allocation, box) gets an id, in order of first appearance; reads then writes per
    # instruction. Interpreted: interned by dicts (hashing the tracer's region tuples in C), only distinct ones
    # become rows (numpy has no fast row interning).
    flat = chain.from_iterable(chain.from_iterable(zip(reads, writes)))
    if compiled:  # every region packed, then a compiled hash table: cheaper where most regions are distinct
        rows = _regions(list(flat))
        reg_box, first = intern_rows(rows)
        table = rows[first]
    else:
        reg_box, distinct = _intern(flat, n_flat)
        table = _regions(distinct)
    per_kind = np.stack([n_reads, n_writes], axis=1).ravel()
    reg_write = np.repeat(np.tile(np.array([False, True]), n), per_kind)
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
    dense, aids = _intern(np.concatenate([table[:, 0], keys, vals]).tolist(), n_box + n_keys + len(vals))
    box_aid = dense[:n_box]
    n_aid = len(aids)
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
    inputs: list[Any] = [
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
        box.ravel(),
        cell.ravel(),
        box_aid[reg_box],
        n_aid,
        reuse_ptr,
        reuse_pred,
        has_reuse,
        is_pred,
        n_cores,
        nq,
        ns_per_cycle,
        latency,
        ports.ravel(),
        ports.shape[1],
        float(spec.chip.hbm_bytes_per_ns),
        float(dma.queue_bytes_per_ns),
        float(dma.transfer_overhead_ns),
        _HBM_HORIZON_NS,
        N_ENGINES,
        DMA,
        TENSOR,
    ]
    # outputs: instr_start, instr_end; slices (instr, core, unit, start, end); all-queue groups (same)
    out_types = (np.float64,) * 2 + (np.int64,) * 3 + (np.float64,) * 2 + (np.int64,) * 2 + (np.float64,) * 2
    out_sizes = (n, n) + (n_slices,) * 5 + (n_dma,) * 4
    if compiled:
        outputs = [np.zeros(k, dtype=t) for k, t in zip(out_sizes, out_types, strict=True)]
        ns, ng = run(*inputs, *outputs)
    else:  # Python lists: the interpreted loop reads and writes them faster than numpy scalars
        lists = [x.tolist() if isinstance(x, np.ndarray) else x for x in inputs]
        out_lists = [[t(0).item()] * k for k, t in zip(out_sizes, out_types, strict=True)]
        ns, ng = run(*lists, *out_lists)
        outputs = [np.array(x, dtype=t) for x, t in zip(out_lists, out_types, strict=True)]
    instr_start, instr_end, s_instr, s_core, s_unit, s_start, s_end, g_instr, g_core, g_start, g_end = outputs

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
