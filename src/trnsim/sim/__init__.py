"""The machine: memories, engine and DMA queues, dependency tracking, event-driven time."""

from trnsim.sim.machine import Machine, Mode
from trnsim.sim.memory import Allocation, MemoryKind, MemorySpace
from trnsim.sim.scheduler import schedule
from trnsim.sim.timeline import Timeline

__all__ = ["Allocation", "Machine", "MemoryKind", "MemorySpace", "Mode", "Timeline", "schedule"]
