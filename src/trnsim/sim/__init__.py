"""The machine: memories, engine and DMA queues, dependency tracking, event-driven time."""

from trnsim.sim.machine import Machine, Mode
from trnsim.sim.memory import Allocation, AllocationRecord, MemoryKind, MemorySpace
from trnsim.sim.scheduler import schedule
from trnsim.sim.timeline import Timeline

__all__ = ["Allocation", "AllocationRecord", "Machine", "MemoryKind", "MemorySpace", "Mode", "Timeline", "schedule"]
