"""Flash attention's P^T by the DMA engines' transpose (NeuronCore-v3+), for a share of the units.

P V needs P^T (the keys are its contraction dim). On TensorE that is one transpose per 128-key block into
PSUM plus a VectorE/ScalarE copy back to SBUF: on trn2 a third of TensorE's time in attention. The DMA
engines transpose SBUF -> SBUF directly (trainium2_arch.rst "DMA Transpose", up to 50% of DMA throughput,
"particularly useful in operators that are ScalarE/VectorE bound, such as self attention"; AWS's
attention_cte transposes exp's output this way). A unit's P [rows, keys] goes in one 3-D transpose
[rows, blocks, 128] -> [128, blocks, rows] (each DMA holds every queue for at least the per-transfer
overhead, so one per unit, not one per block), a ragged last block in a second.

The DMA is slower than TensorE per byte, so the planner (attention_plan.py) gives it the share of units
that balances TensorE against the DMA queues at the ISA's costs; the units are spread evenly.
"""

from __future__ import annotations

from typing import Any

import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes
from trnsim.isa.cost import dma_queue_occupancy_ns, dma_queue_pieces, dma_transfer_ns
from trnsim.isa.instructions import dma_transpose as dma_transpose_record
from trnsim.isa.operand import HBM, SBUF
from trnsim.kernels._common import cdiv, core

# Kernel policy: pipeline steps by which P V (and what follows it) comes later in a plan with DMA transposes.
# A transpose issued after exp waits its turn on the queues (FIFO, shared with Q loads and result stores),
# holds them for max(per-transfer overhead, data) and lands a fixed DMA latency later: ~3 us on trn2 when the
# queues are free, several times that when they are busy. On trn2 causal S4096 the kernel ran 2.5% faster
# with each doubling from 2 to 16 steps (bench/kernels_attention.py); P and P^T stay in SBUF that much
# longer (2 KiB per partition per unit pair).
DMA_LAG = 16


# Kernel policy: at most this many units apart two units share a transpose (the first one's P V waits for
# the second one's exp, well inside DMA_LAG)
PAIR_DISTANCE = 4


def delayed(schedule: dict[str, tuple[int, float]], ops: tuple[str, ...]) -> dict[str, tuple[int, float]]:
    """`schedule` with `ops` DMA_LAG stages later."""
    return {op: (st + DMA_LAG if op in ops else st, prio) for op, (st, prio) in schedule.items()}


def available() -> bool:
    """The target's DMA engines can transpose (NeuronCore-v3+)."""
    return dma_transpose_record.supported(core())


def on_dma(share: float, index: int) -> bool:
    """Whether unit `index` is picked for the DMA transpose: `share` of the units, spread evenly (it takes it
    if it finds a partner: see `pair`)."""
    return int((index + 1) * share) != int(index * share)


def units_on_tensor_before(share: float, index: int) -> int:
    """About how many of units 0..index-1 transpose on TensorE (the P^T copies alternate engines over those)."""
    return index - int(index * share)


def pair(waiting: Any, unit: Any) -> Any:
    """Pair a unit picked for the DMA transpose with the picked unit `waiting` for a partner, if both are full
    units of one shape at most PAIR_DISTANCE units apart: one transpose then takes both units' P, twice the
    bytes for the same per-transfer overhead. Returns the unit left waiting. A picked unit that finds no
    partner transposes on TensorE: alone, its transpose would hold the DMA queues for the per-transfer
    overhead, about twice its data time on trn2."""
    if not unit.on_dma:
        return waiting
    full = unit.k_hi - unit.k_lo == unit.plan.g * unit.plan.kb and unit.qt.rows == unit.plan.p
    if waiting is not None and full and unit.index - waiting.index <= PAIR_DISTANCE:
        waiting.partner, unit.leader = unit, waiting
        return None
    if waiting is not None:
        waiting.on_dma = False
    if full:
        return unit
    unit.on_dma = False
    return None


def unpaired(waiting: Any) -> None:
    """The last picked unit of a stream found no partner: it transposes on TensorE."""
    if waiting is not None:
        waiting.on_dma = False


def exp_and_transpose(unit: Any) -> None:
    """ScalarE exp of a unit, then (DMA units) the DMA transpose of its P, straight after exp so the DMA's
    fixed latency overlaps the steps up to P V: a pair leader's P into the first half of a buffer for two, its
    partner's into the second half with one transpose for both."""
    plan, softmax = unit.plan, unit.softmax
    width = plan.g * plan.kb
    if unit.partner is not None:
        unit.probs = nl.ndarray((plan.p, 2 * width), plan.dtype, buffer=nl.sbuf)
        softmax.exp(unit.tiles, unit.r_new, stride=plan.kb, out=unit.probs[:, :width])
        return
    if unit.leader is not None:
        lead = unit.leader
        unit.probs = lead.probs
        softmax.exp(unit.tiles, unit.r_new, stride=plan.kb, out=lead.probs[:, width:])
        pt, widths = _transpose_two(plan, unit.qt.rows, lead.probs, unit.k_hi - unit.k_lo)
        lead.pt, unit.pt = pt[:, : len(widths) * plan.p], pt[:, len(widths) * plan.p :]
        lead.widths = unit.widths = widths
        # The pair is done with each other: drop the links, a reference cycle whose tiles only the cyclic GC
        # would free (at a time that depends on the process, so SBUF offsets and timelines would too).
        lead.partner = unit.leader = None
        return
    unit.probs, _ = softmax.exp(unit.tiles, unit.r_new, stride=plan.kb)
    if unit.on_dma:
        unit.pt, unit.widths = transpose_probs(plan, unit.qt.rows, unit.probs, unit.k_lo, unit.k_hi)


def _transpose_two(plan: Any, rows: int, probs: Any, keys: int) -> tuple[Any, list[int]]:
    """One DMA transpose of two units' P [rows, 2, blocks, 128] -> P^T [128, 2, blocks, rows] (the default axes
    of a 4-D dma_transpose). Both sides are reshaped whole tiles sliced, plain strided views: an `.ap()` pattern
    on SBUF is an index array per element, which made these transposes most of the kernel's tracing time."""
    p, nblk = plan.p, keys // plan.p
    pt = nl.ndarray((p, 2 * nblk * p), plan.dtype, buffer=nl.sbuf)
    assert probs.shape[1] == 2 * keys
    nisa.dma_transpose(dst=pt.reshape((p, 2, nblk, p))[:, :, :, :rows], src=probs.reshape((p, 2, nblk, p))[:rows])
    return pt, [p] * nblk


def unit_ns(plan: Any, keys: int) -> float:
    """How long one unit's P^T transpose of `keys` keys x 128 queries holds each DMA queue (ISA costs)."""
    c = core()
    dma = c.dma
    nbytes = plan.p * keys * dtypes.resolve(plan.dtype).itemsize
    pieces = dma_queue_pieces(c, c.sbuf.partitions)  # all queues take part in a DMA transpose
    run = dma_transpose_record.equivalent_run_bytes(dma, dma_transpose_record.throughput_fraction(dma, SBUF))
    return dma_queue_occupancy_ns(dma, dma_transfer_ns(dma, nbytes / pieces, run, dma.queue_bytes_per_ns))


def load_ns(plan: Any, nbytes: int) -> float:
    """How long an HBM -> SBUF DMA transpose of `nbytes` (Q^T or K^T, dma_load_t) holds each DMA queue."""
    c = core()
    dma = c.dma
    pieces = dma_queue_pieces(c, c.sbuf.partitions)
    run = dma_transpose_record.equivalent_run_bytes(dma, dma_transpose_record.throughput_fraction(dma, HBM))
    return dma_transfer_ns(dma, nbytes / pieces, run, dma.queue_bytes_per_ns)


def transpose_probs(plan: Any, rows: int, probs: Any, k_lo: int, k_hi: int) -> tuple[Any, list[int]]:
    """DMA: P^T [keys, queries] per 128-key block into SBUF, laid out as the TensorE path's copy (block j at
    columns j * 128); returns (tile, block widths)."""
    p = plan.p
    widths = [min(p, k_hi - k_lo - j * p) for j in range(cdiv(k_hi - k_lo, p))]
    nblk, full = len(widths), sum(1 for w in widths if w == p)
    pt = nl.ndarray((p, nblk * p), plan.dtype, buffer=nl.sbuf)
    row = probs.shape[1]  # probs [128, row]: score block c at column c * kb, so 128-key block j at j * 128
    if full:
        nisa.dma_transpose(
            dst=pt.ap([[nblk * p, p], [p, full], [1, rows]]), src=probs.ap([[row, rows], [p, full], [1, p]])
        )
    if full < nblk:
        wk, off = widths[-1], full * p
        nisa.dma_transpose(
            dst=pt.ap([[nblk * p, wk], [p, 1], [1, rows]], offset=off),
            src=probs.ap([[row, rows], [p, 1], [1, wk]], offset=off),
        )
    return pt, widths
