"""Tenants of a deployment that compete for NeuronLink: their tensor-parallel collectives cross the same chips.

A tenant whose cores span several chips runs its all-reduces and all-gathers over those chips' links
(sim/collectives.py prices them with the preset's per-chip link bandwidth, all of a chip's links together).
Two tenants that both span a chip share that chip's links, the same unit the kernel-level simulation shares
(sim/collective_costs.py `link_time`). While a neighbour's collectives are on the wire for a share u of the
time, a tenant's own wire time is stretched by 1 + u on average, so its links run at

    bw / (1 + sum over neighbours on the chip of u_n)

and the worst of its chips bounds its ring (every step of a ring waits for the slowest link). u_n comes from
the neighbour's run alone: its utilisation times the share of its busy time that is link-bound wire time,
measured over the steps it actually ran as step(links as in the preset) - step(unlimited links). Only the
wire part stretches: hop latencies and the HBM part of a collective are the tenant's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trnsim.hw.spec import HardwareSpec
from trnsim.serve.step_cost import StepCost

if TYPE_CHECKING:
    from trnsim.serve.deployment import Deployment, TenantConfig


def chips_of(dep: Deployment, t: TenantConfig) -> frozenset[int]:
    """The chips the tenant's physical cores sit on (its collectives use their links when there are two or more)."""
    per_chip = dep.spec.chip.physical_cores
    return frozenset(
        (c * dep.lnc + k) // per_chip for c in range(t.cores.first, t.cores.last + 1) for k in range(dep.lnc)
    )


def uses_links(dep: Deployment, t: TenantConfig) -> bool:
    """Whether the tenant's step cost has link time: its cores span chips and its tp needs more than one chip.
    (The estimate packs tp ranks onto as few chips as possible, so a tenant whose tp fits one chip but whose
    range straddles two, e.g. LNC=2 cores 2-5, is priced on one chip: it neither loads links nor feels them.)"""
    per_chip = dep.spec.chip.physical_cores // dep.lnc
    return len(chips_of(dep, t)) > 1 and t.cores.count > per_chip


def link_neighbours(dep: Deployment, t: TenantConfig) -> dict[str, frozenset[int]]:
    """Other tenants whose collectives also cross one of t's chips, with the chips they share."""
    if not uses_links(dep, t):
        return {}
    mine = chips_of(dep, t)
    out: dict[str, frozenset[int]] = {}
    for o in dep.tenants:
        if o.name != t.name and uses_links(dep, o) and mine & chips_of(dep, o):
            out[o.name] = mine & chips_of(dep, o)
    return out


def link_factor(dep: Deployment, t: TenantConfig, wire_busy: dict[str, float]) -> tuple[float, list[str]]:
    """The tenant's link bandwidth under its neighbours' load over its bandwidth alone (its worst chip), and the
    neighbours it shares links with. `wire_busy`: each tenant's link-busy share of time, from its run alone."""
    shared = link_neighbours(dep, t)
    factor = 1.0
    for chip in chips_of(dep, t):
        load = 1.0 + sum(wire_busy.get(name, 1.0) for name, chips in shared.items() if chip in chips)
        factor = min(factor, 1.0 / load)
    return factor, sorted(shared)


def with_link_bandwidth(spec: HardwareSpec, instance: str, factor: float) -> HardwareSpec:
    """`spec` with the named instance's chip-to-chip bandwidth (intra- and inter-node) scaled by `factor`
    (math.inf: links that cost no time, leaving hop latencies and HBM)."""
    instances = []
    for inst in spec.instances:
        if inst.name == instance:
            inst = inst.model_copy(
                update={
                    "link_bytes_per_ns": _scaled(inst.link_bytes_per_ns, factor),
                    "inter_node_link_bytes_per_ns": _scaled(inst.inter_node_link_bytes_per_ns, factor),
                }
            )
        instances.append(inst)
    return spec.model_copy(update={"instances": instances})


def _scaled(bytes_per_ns: float, factor: float) -> float:
    return bytes_per_ns * factor if bytes_per_ns > 0 else bytes_per_ns  # 0 means "not set" (no inter-node links)


@dataclass
class WireMeter:
    """A StepCost that answers with `step` and adds up, over the steps the simulation asks for, how much of each
    step is link wire time (`step` minus `free`, the same step with unlimited links)."""

    step: StepCost
    free: StepCost
    step_s: float = field(default=0.0, init=False)
    wire_s: float = field(default=0.0, init=False)

    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        seconds = self.step.step_time_s(batch, new_tokens, context)
        self.step_s += seconds
        self.wire_s += max(0.0, seconds - self.free.step_time_s(batch, new_tokens, context))
        return seconds

    @property
    def wire_share(self) -> float:
        """Share of the busy time that is link wire time."""
        return self.wire_s / self.step_s if self.step_s > 0 else 0.0
