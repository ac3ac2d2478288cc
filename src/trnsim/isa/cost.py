"""Cost queries: how long an instruction keeps its engine busy, what a DMA achieves, engine clocks.

Each instruction's formula lives in its record (isa/instructions/, building blocks in cost_rules.py);
kernel planners and the scheduler ask here instead of re-deriving a rule. Records themselves import
cost_rules, never this module (it reads the registry of records).
"""

from __future__ import annotations

from dataclasses import replace

from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import (
    CostArgs,
    dma_efficiency,
    dma_queue_occupancy_ns,
    dma_queue_pieces,
    dma_transfer_ns,
    engine_clock_ghz,
    pipeline_latency_ns,
)
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.registry import RECORDS

__all__ = [
    "CostArgs",
    "compute_cycles",
    "dma_efficiency",
    "dma_queue_occupancy_ns",
    "dma_queue_pieces",
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
