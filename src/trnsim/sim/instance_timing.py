"""Timing of many ranks: each HBM stack's cores scheduled together, sync points agreed across stacks.

The cores that share an HBM stack (sim/instance.py) compete for its bandwidth, so their instruction streams
go through one scheduler run (sim/scheduler.py) with the stack's share of the chip's HBM bandwidth; stacks
share nothing else, so they are scheduled apart. What ties them together are the sync points (collectives,
sendrecv, core_barrier): all participants start the exchange when the last one arrives, and it takes the
exchange's link time. Exchanges that use the same chip's links at the same time share their bandwidth (the
link-bandwidth part of each one's time is multiplied by how many there are: tenants or replica groups
spanning the same chips slow each other down). A sync instruction occupies its engine from its arrival to
the common end (the engine waits on a semaphore meanwhile), so its cycles are set to the wait plus the link
time plus its own issue cost, and the streams are rescheduled until every sync point's arrivals stop moving
(each round settles at least the earliest unsettled one; rounds are capped at twice the sync points).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from trnsim.isa.cost import engine_clock_ghz
from trnsim.isa.instruction import Instruction
from trnsim.sim.collective_costs import LinkTime
from trnsim.sim.memory import AllocationRecord
from trnsim.sim.rank_session import Launch
from trnsim.sim.scheduler import schedule
from trnsim.sim.timeline import Timeline

_SETTLED_NS = 1e-3  # arrivals that move less than this between rounds have settled


@dataclass
class _Domain:
    members: list[tuple[int, int, int]]  # (launch, rank, core offset in the domain)
    instrs: list[Instruction]
    origin: list[tuple[int, int, int]]  # per domain instruction: (launch, rank, index in the rank's stream)
    reuse: dict[int, tuple[int, ...]]
    allocations: dict[int, AllocationRecord]


def _domains(launches: list[Launch]) -> list[_Domain]:
    grouped: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    for li, ln in enumerate(launches):
        lay = ln.layout
        for place in ln.layout.ranks:
            grouped[place.domain(lay.cores_per_stack)].append((li, place.rank, place.cores[0] % lay.cores_per_stack))
    out = []
    for key in sorted(grouped):
        members = sorted(grouped[key], key=lambda m: m[2])
        instrs: list[Instruction] = []
        origin: list[tuple[int, int, int]] = []
        reuse: dict[int, tuple[int, ...]] = {}
        allocations: dict[int, AllocationRecord] = {}
        for li, rank, offset in members:
            machine = launches[li].machines[rank]
            for k, ins in enumerate(machine.instructions):
                instrs.append(replace(ins, core=ins.core + offset) if offset else replace(ins))
                origin.append((li, rank, k))
            reuse.update(machine.reuse)
            allocations.update(machine.allocations)
        out.append(_Domain(members, instrs, origin, reuse, allocations))
    return out


def time_instance(launches: list[Launch]) -> dict[tuple[int, int], Timeline]:
    """Timeline of every (launch, rank), in that rank's own core numbering."""
    lay = launches[0].layout
    spec = lay.spec
    stack_spec = spec.model_copy(
        update={"chip": spec.chip.model_copy(update={"hbm_bytes_per_ns": lay.stack_bytes_per_ns})}
    )
    domains = _domains(launches)
    n_cores = lay.cores_per_stack
    # where each sync instruction sits: (domain, index) per key, and what its exchange costs
    sites: dict[tuple[Any, ...], list[tuple[int, int]]] = defaultdict(list)
    links: dict[tuple[Any, ...], LinkTime] = {}
    for d, dom in enumerate(domains):
        for j, (li, rank, k) in enumerate(dom.origin):
            point = launches[li].syncs[rank].get(k)
            if point is not None:
                sites[point.key].append((d, j))
                links[point.key] = point.link
    base = {(d, j): domains[d].instrs[j].cycles for group in sites.values() for d, j in group}
    spans: dict[tuple[Any, ...], tuple[float, float]] = {}  # each exchange's time on the links, last round
    timelines: list[Timeline] = []
    for _ in range(2 * len(sites) + 2):
        timelines = [schedule(dom.instrs, stack_spec, n_cores, dom.reuse, dom.allocations) for dom in domains]
        moved = False
        new_spans: dict[tuple[Any, ...], tuple[float, float]] = {}
        for key, group in sites.items():
            arrivals = [float(timelines[d].instr_start[j]) for d, j in group]
            release = max(arrivals)
            link = links[key]
            took = link.fixed_ns + link.wire_ns * _sharers(key, link, release, spans, links)
            new_spans[key] = (release, release + took)
            for (d, j), arrival in zip(group, arrivals):
                ins = domains[d].instrs[j]
                clock = engine_clock_ghz(spec.core, ins.engine)
                cycles = base[(d, j)] + (release - arrival + took) * clock
                if abs(cycles - ins.cycles) > _SETTLED_NS * clock:
                    ins.cycles = cycles
                    moved = True
        spans = new_spans
        if not moved:
            break
    return _split(launches, domains, timelines)


def _sharers(
    key: tuple[Any, ...],
    link: LinkTime,
    release: float,
    spans: dict[tuple[Any, ...], tuple[float, float]],
    links: dict[tuple[Any, ...], LinkTime],
) -> int:
    """How many exchanges (this one included) use a chip's links that this one uses while it runs: each gets
    that share of the links' bandwidth (from the previous round's spans)."""
    if not link.chips or key not in spans:
        return 1
    start, end = release, max(spans[key][1], release)
    per_chip: dict[int, int] = {c: 1 for c in link.chips}
    for other, (s, e) in spans.items():
        if other == key or e <= start or s >= end:
            continue
        for c in links[other].chips & link.chips:
            per_chip[c] += 1
    return max(per_chip.values())


def _split(
    launches: list[Launch], domains: list[_Domain], timelines: list[Timeline]
) -> dict[tuple[int, int], Timeline]:
    out: dict[tuple[int, int], Timeline] = {}
    for dom, tl in zip(domains, timelines):
        origin = np.asarray([o[2] for o in dom.origin], dtype=np.int64)
        owner = [(o[0], o[1]) for o in dom.origin]
        for li, rank, offset in dom.members:
            mine = np.asarray([own == (li, rank) for own in owner], dtype=bool)
            idx = np.flatnonzero(mine)
            order = np.argsort(origin[idx])
            idx = idx[order]
            local = np.full(len(dom.instrs), -1, dtype=np.int64)
            local[idx] = origin[idx]
            sl = mine[tl.slice_instr]
            machine = launches[li].machines[rank]
            out[(li, rank)] = Timeline(
                n_cores=machine.n_cores,
                dma_queues=tl.dma_queues,
                instr_start=tl.instr_start[idx],
                instr_end=tl.instr_end[idx],
                slice_instr=local[tl.slice_instr[sl]],
                slice_core=tl.slice_core[sl] - offset,
                slice_unit=tl.slice_unit[sl],
                slice_start=tl.slice_start[sl],
                slice_end=tl.slice_end[sl],
                allocations=machine.allocations,
            )
    return out
