"""Cost queries: how long an instruction keeps its engine busy, what a DMA achieves, engine clocks.

Each instruction's formula lives in its record (isa/instructions/, building blocks in cost_rules.py);
kernel planners and the scheduler ask here instead of re-deriving a rule.
"""

from __future__ import annotations

from dataclasses import replace

from trnsim.hw.spec import CoreSpec, DmaSpec
from trnsim.isa.cost_rules import CostArgs
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.registry import RECORDS

__all__ = [
    "CostArgs",
    "compute_cycles",
    "dma_efficiency",
    "dma_transfer_ns",
    "engine_clock_ghz",
    "pipeline_latency_ns",
    "steady_rate",
]


def compute_cycles(op: Opcode, engine: Engine, core: CoreSpec, a: CostArgs) -> float:
    """Engine cycles the instruction occupies its engine (its initiation interval), from its record."""
    return RECORDS[op].cycles(core, engine, a)


def steady_rate(core: CoreSpec, op: Opcode, engine: Engine, a: CostArgs) -> float:
    """Elements per ns per partition a long `op` sustains on `engine` (MIN_II and start-up amortised away):
    what a planner needs to estimate a stream of such instructions."""
    n = 1 << 20
    return n / compute_cycles(op, engine, core, replace(a, n=n)) * engine_clock_ghz(core, engine)


def dma_efficiency(dma: DmaSpec, row_bytes: int) -> float:
    """Fraction of queue bandwidth a transfer of `row_bytes`-long contiguous runs achieves.

    Models the DMA guide's rule (>= 2 KiB per partition approaches peak, < 256 B is overhead-bound)
    as b / (b + descriptor_overhead_bytes).
    """
    b = float(max(1, row_bytes))
    return b / (b + dma.descriptor_overhead_bytes)


def dma_transfer_ns(dma: DmaSpec, nbytes: float, row_bytes: int, rate_bytes_per_ns: float) -> float:
    """Time one DMA queue spends moving `nbytes` at a granted rate (capped by the queue's own rate)."""
    rate = min(rate_bytes_per_ns, dma.queue_bytes_per_ns) * dma_efficiency(dma, row_bytes)
    return nbytes / rate


def engine_clock_ghz(core: CoreSpec, engine: Engine) -> float:
    return {
        Engine.TENSOR: core.tensor.clock_ghz,
        Engine.VECTOR: core.vector.clock_ghz,
        Engine.SCALAR: core.scalar.clock_ghz,
        Engine.GPSIMD: core.gpsimd.clock_ghz,
        Engine.SYNC: core.sync.clock_ghz,
    }[engine]


def pipeline_latency_ns(core: CoreSpec, engine: Engine) -> float:
    """Delay after an instruction's issue slot before its result may be used by a dependent."""
    if engine is Engine.DMA:
        return core.dma.fixed_latency_ns
    spec = {
        Engine.TENSOR: core.tensor,
        Engine.VECTOR: core.vector,
        Engine.SCALAR: core.scalar,
        Engine.GPSIMD: core.gpsimd,
        Engine.SYNC: core.sync,
    }[engine]
    return spec.pipeline_latency_cycles / spec.clock_ghz
