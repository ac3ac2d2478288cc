"""SBUF, PSUM and HBM occupancy over simulated time, from the allocations the instructions touch.

A tile holds its bytes from the start of the first instruction that touches it to the end (result time)
of the last one: buffer liveness as a compiler sees it. SBUF/PSUM are per core, in bytes per partition,
and drain to 0 by the end. HBM tensors are the kernel's inputs (resident from time 0), outputs and
scratch; none is freed inside a kernel, so the HBM counter ends at the bytes the kernel used.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trnsim.sim.memory import MemoryKind

if TYPE_CHECKING:
    from trnsim.runtime.profile import Profile


@dataclass(frozen=True)
class OccupancySeries:
    kind: MemoryKind
    core: int | None  # None for HBM (shared by the chip's cores)
    times_ns: list[float]
    bytes_: list[int]  # occupancy from each time on

    @property
    def peak(self) -> int:
        return max(self.bytes_, default=0)


def access_spans(profile: Profile) -> dict[int, tuple[float, float]]:
    """Allocation id -> (first access start, last access end) in ns."""
    starts = profile.timeline.instr_start.tolist()
    ends = profile.timeline.instr_end.tolist()
    spans: dict[int, tuple[float, float]] = {}
    for idx, ins in enumerate(profile.instructions):
        s, e = starts[idx], ends[idx]
        for r in (*ins.reads, *ins.writes):
            old = spans.get(r[0])
            spans[r[0]] = (s, e) if old is None else (min(old[0], s), max(old[1], e))
    return spans


def occupancy(profile: Profile) -> list[OccupancySeries]:
    """One step series per (memory, core); empty when the timeline carries no allocation records."""
    allocations = profile.timeline.allocations
    deltas: dict[tuple[MemoryKind, int | None], dict[float, int]] = defaultdict(lambda: defaultdict(int))
    for aid, (first, last) in access_spans(profile).items():
        rec = allocations.get(aid)
        if rec is None:
            continue
        if rec.kind is MemoryKind.HBM:
            deltas[(rec.kind, None)][0.0 if rec.issued_before == 0 else first] += rec.nbytes
        else:
            d = deltas[(rec.kind, rec.core)]
            d[first] += rec.nbytes
            d[last] -= rec.nbytes
    out = []
    order = {MemoryKind.SBUF: 0, MemoryKind.PSUM: 1, MemoryKind.HBM: 2}
    for (kind, core), d in sorted(deltas.items(), key=lambda kv: (order[kv[0][0]], kv[0][1] or 0)):
        times = sorted(d)
        level = 0
        values = []
        for t in times:  # all changes at one instant land together, so a freed-and-reused buffer never doubles
            level += d[t]
            values.append(level)
        out.append(OccupancySeries(kind, core, times, values))
    return out
