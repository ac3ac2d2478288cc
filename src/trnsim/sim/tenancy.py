"""Tenants on one instance: whole NeuronCores each, memory each their own, enforced by the machine.

What AWS documents (shared/reference/trainium.md, "Tenancy and isolation"): a process owns whole
NeuronCores (NEURON_RT_VISIBLE_CORES, contiguous ranges), there is no slicing of a core, and LNC must match
between compiler and runtime. Here each tenant's ranks run on `TenantMachine`s that record which tenant
allocated every tensor and refuse, before any value moves, an instruction (compute or DMA) that reads or
writes another tenant's tensor; in functional and timing-only runs alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trnsim.errors import IsolationError, UsageError
from trnsim.hw.spec import HardwareSpec
from trnsim.isa.instruction import Instruction
from trnsim.sim.machine import Machine, Mode
from trnsim.sim.memory import Allocation, MemoryKind, MemorySpace


class TenantMachine(Machine):
    """The cores of one rank of one tenant, on a chip whose HBM space it shares with the chip's other ranks."""

    def __init__(
        self,
        spec: HardwareSpec,
        mode: Mode,
        n_cores: int,
        tenant: str,
        owners: dict[int, str],
        hbm: MemorySpace | None = None,
    ) -> None:
        super().__init__(spec, mode, n_cores)
        if hbm is not None:
            self.hbm = hbm
        self.tenant = tenant
        self.owners = owners  # allocation id -> tenant, shared by every machine of the instance

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
        alloc = super().allocate(kind, shape, dtype, name, core, location, par_axis)
        self.owners[alloc.id] = self.tenant
        return alloc

    def emit(self, ins: Instruction) -> None:
        for region in (*ins.reads, *ins.writes):
            owner = self.owners.get(region[0], self.tenant)
            if owner != self.tenant:
                raise IsolationError(
                    f"tenant {self.tenant!r} ({ins.label or ins.opcode.key}) addressed memory of tenant {owner!r}: "
                    "a tenant may only touch the memory of its own NeuronCores",
                    ins.location or None,
                    rule="isolation",
                )
        super().emit(ins)


@dataclass(frozen=True)
class CoreRange:
    """A tenant's NeuronCores at the instance's LNC: first..last inclusive (NEURON_RT_VISIBLE_CORES form)."""

    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def parse_cores(text: str | int) -> CoreRange:
    """'N' or 'A-B' (as NEURON_RT_VISIBLE_CORES takes them)."""
    s = str(text).strip()
    try:
        if "-" in s:
            a, b = (int(x) for x in s.split("-", 1))
        else:
            a = b = int(s)
    except ValueError:
        raise UsageError(f"cores must be 'N' or 'A-B' (a contiguous range of NeuronCores), got {text!r}") from None
    if a < 0 or b < a:
        raise UsageError(f"cores range {text!r} is empty or negative; write 'A-B' with 0 <= A <= B")
    return CoreRange(a, b)


def check_partition(spec: HardwareSpec, chips: int, lnc: int, tenants: dict[str, CoreRange]) -> None:
    """Tenants' ranges must fit the instance and not overlap."""
    total = chips * spec.chip.physical_cores // lnc
    taken: dict[int, str] = {}
    for name, rng in tenants.items():
        if rng.last >= total:
            raise UsageError(
                f"tenant {name!r} asks for NeuronCores {rng} but the instance has {total} at LNC={lnc} (0-{total - 1})"
            )
        for c in range(rng.first, rng.last + 1):
            if c in taken:
                raise UsageError(f"tenants {taken[c]!r} and {name!r} both ask for NeuronCore {c}; cores are exclusive")
            taken[c] = name


def check_lnc_match(compiled_lnc: int, runtime_lnc: int, what: str) -> None:
    """The compiler's LNC and the runtime's must agree (a NEFF built for LNC=2 does not load at LNC=1)."""
    if compiled_lnc != runtime_lnc:
        raise UsageError(
            f"{what} was built for LNC={compiled_lnc} but the instance runs at LNC={runtime_lnc}; they must match",
            rule="lnc",
        )
