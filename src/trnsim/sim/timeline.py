"""The result of scheduling: when each instruction ran, on which engine or DMA queue."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trnsim.isa.opcodes import Engine
from trnsim.sim.memory import AllocationRecord

N_ENGINES = 5  # Tensor, Vector, Scalar, GpSimd, Sync; DMA queue q is unit N_ENGINES + q


@dataclass
class Timeline:
    """Times in ns. A slice is one unit (engine or DMA queue) busy on one instruction."""

    n_cores: int
    dma_queues: int
    instr_start: np.ndarray  # first slice start per instruction
    instr_end: np.ndarray  # when its result is usable (busy end + pipeline latency)
    slice_instr: np.ndarray
    slice_core: np.ndarray
    slice_unit: np.ndarray
    slice_start: np.ndarray
    slice_end: np.ndarray
    # the allocations the instructions touch, by id (for memory-occupancy counters in traces); may be empty
    allocations: dict[int, AllocationRecord] = field(default_factory=dict)
    _busy: dict[tuple[int, int], float] = field(default_factory=dict, repr=False)

    @property
    def makespan_ns(self) -> float:
        return float(self.instr_end.max()) if len(self.instr_end) else 0.0

    def unit_busy_ns(self, core: int, unit: int) -> float:
        key = (core, unit)
        if key not in self._busy:
            m = (self.slice_core == core) & (self.slice_unit == unit)
            self._busy[key] = float((self.slice_end[m] - self.slice_start[m]).sum())
        return self._busy[key]

    def engine_busy_ns(self, core: int, engine: Engine) -> float:
        """Busy time of an engine; for DMA, time during which any of the core's queues is moving data."""
        if engine is not Engine.DMA:
            return self.unit_busy_ns(core, int(engine))
        m = (self.slice_core == core) & (self.slice_unit >= N_ENGINES)
        return _union_length(self.slice_start[m], self.slice_end[m])


def _union_length(starts: np.ndarray, ends: np.ndarray) -> float:
    if len(starts) == 0:
        return 0.0
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    # Running max of ends tells where each merged interval stops.
    run_end = np.maximum.accumulate(e)
    new_block = np.empty(len(s), dtype=bool)
    new_block[0] = True
    new_block[1:] = s[1:] > run_end[:-1]
    block_id = np.cumsum(new_block) - 1
    block_start = s[new_block]
    block_end = np.zeros(len(block_start))
    np.maximum.at(block_end, block_id, run_end)
    return float((block_end - block_start).sum())
