"""A chip being programmed: its address spaces and the instruction stream issued to its cores."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from trnsim.hw.spec import HardwareSpec
from trnsim.isa.instruction import Instruction
from trnsim.sim.memory import Allocation, AllocationRecord, MemoryKind, MemorySpace

Mode = Literal["functional", "timing"]


class Machine:
    """One chip: HBM shared by `n_cores` physical cores, each with its own SBUF and PSUM."""

    def __init__(self, spec: HardwareSpec, mode: Mode = "functional", n_cores: int | None = None) -> None:
        self.spec = spec
        self.mode = mode
        self.functional = mode == "functional"
        self.n_cores = n_cores or spec.chip.default_lnc
        core = spec.core
        self.hbm = MemorySpace(MemoryKind.HBM, spec.chip.hbm_bytes)
        self.sbuf = [MemorySpace(MemoryKind.SBUF, core.sbuf.partition_bytes, c) for c in range(self.n_cores)]
        self.psum = [
            MemorySpace(MemoryKind.PSUM, core.psum.partition_bytes, c, granule=core.psum.bank_bytes)
            for c in range(self.n_cores)
        ]
        self.instructions: list[Instruction] = []
        # allocation id -> ids of freed allocations whose bytes it reuses (for the scheduler)
        self.reuse: dict[int, tuple[int, ...]] = {}
        # allocation id -> where and how big it is, and how many instructions were issued before it:
        # what a trace needs to draw SBUF/PSUM/HBM occupancy over simulated time
        self.allocations: dict[int, AllocationRecord] = {}
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        # an instruction call's cost facts by its signature, for this chip's core (nki/call_facts.py)
        self.call_facts: dict[Any, Any] = {}

    def space(self, kind: MemoryKind, core: int) -> MemorySpace:
        if kind is MemoryKind.HBM:
            return self.hbm
        return (self.sbuf if kind is MemoryKind.SBUF else self.psum)[core]

    def allocate(
        self,
        kind: MemoryKind,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        name: str = "",
        core: int = 0,
        location: str | None = None,
        par_axis: int = 0,
    ) -> Allocation:
        alloc = self.space(kind, core).allocate(shape, dtype, name, self.functional, location, par_axis)
        if alloc.reuses:
            self.reuse[alloc.id] = alloc.reuses
        self.allocations[alloc.id] = AllocationRecord(kind, core, alloc.offset, alloc.nbytes, len(self.instructions))
        return alloc

    def emit(self, ins: Instruction) -> None:
        self.instructions.append(ins)

    def warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.warnings.append(message)

    def peak_bytes(self, kind: MemoryKind) -> int:
        """Peak use: bytes for HBM, bytes per partition (max over cores) for SBUF/PSUM."""
        if kind is MemoryKind.HBM:
            return self.hbm.peak
        return max(s.peak for s in (self.sbuf if kind is MemoryKind.SBUF else self.psum))
