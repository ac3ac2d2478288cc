"""Cost of a data move the compiler inserts (a relayout or copy between HBM buffers).

Charged with the simulator's own DMA formulas (isa.cost): the bytes are read and written through all of a
core's DMA queues, each row of `run_bytes` contiguous bytes at the descriptor efficiency b/(b+overhead), the
core's queues together capped by the chip's HBM bandwidth, plus one fixed DMA latency.
"""

from __future__ import annotations

from trnsim.hw.spec import HardwareSpec
from trnsim.isa.cost import dma_transfer_ns


def move_cost(spec: HardwareSpec, nbytes: int, run_bytes: int) -> tuple[float, dict[str, float]]:
    """(latency µs, engine busy µs) of copying `nbytes` HBM->HBM in runs of `run_bytes`."""
    dma = spec.core.dma
    per_queue_rate = min(dma.queue_bytes_per_ns, spec.chip.hbm_bytes_per_ns / dma.queues)
    # read and write both cross the queue: 2 x bytes, spread over every queue of the core
    busy_ns = dma_transfer_ns(dma, 2 * nbytes / dma.queues, max(1, run_bytes), per_queue_rate)
    latency_us = (busy_ns + dma.fixed_latency_ns) / 1000.0
    return latency_us, {"dma": busy_ns / 1000.0}
