"""Cost of a data move the compiler inserts (a relayout or copy between HBM buffers).

Charged with the simulator's own DMA rules (isa.cost), never re-derived: the copy is one DMA whose runs of
`run_bytes` contiguous bytes are split over the queues as the ISA splits a transfer's partitions
(dma_queue_pieces: 8 per queue, so a copy of few runs uses few queues); each queue's piece reads and writes
its bytes at the descriptor efficiency of its runs, the queues together capped by the chip's HBM bandwidth,
and holds its queue at least the per-transfer overhead (dma_queue_occupancy_ns); plus one fixed DMA latency.
"""

from __future__ import annotations

from trnsim.hw.spec import HardwareSpec
from trnsim.isa.cost import dma_queue_occupancy_ns, dma_queue_pieces, dma_transfer_ns


def move_cost(spec: HardwareSpec, nbytes: int, run_bytes: int) -> tuple[float, dict[str, float]]:
    """(latency µs, engine busy µs) of copying `nbytes` HBM->HBM in runs of `run_bytes`."""
    dma = spec.core.dma
    run = max(1, run_bytes)
    pieces = dma_queue_pieces(spec.core, max(1, -(-nbytes // run)))
    per_queue_rate = min(dma.queue_bytes_per_ns, spec.chip.hbm_bytes_per_ns / pieces)
    # read and write both cross the queue: 2 x bytes, spread over the pieces' queues
    data_ns = dma_transfer_ns(dma, 2 * nbytes / pieces, run, per_queue_rate)
    queue_ns = dma_queue_occupancy_ns(dma, data_ns)
    latency_us = (queue_ns + dma.fixed_latency_ns) / 1000.0
    # 'dma' busy is the time any queue of the core is busy, as a kernel's profile reports it
    return latency_us, {"dma": queue_ns / 1000.0}
