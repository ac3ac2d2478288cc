"""Link time of one collective among a group of ranks of an instance, from the presets.

The bandwidth-optimal algorithms of sim/collectives.py (ring, 2D torus, torus + ring between nodes,
switched all-to-all; ranks of one chip exchange through its HBM), applied to the chips the group's ranks
sit on. Each collective maps onto one of them:

- all-reduce of B bytes per rank: the all-reduce cost.
- all-gather to B bytes in total, reduce-scatter of B bytes per rank, all-to-all of a B-byte buffer per
  rank: the all-gather cost of B (each moves (p-1)/p of B through every rank's links in p-1 steps; for
  all-to-all that is the pairwise-exchange algorithm).
- point-to-point (collective_permute and its ring form, sendrecv between chips): B over the chip's links
  plus one hop latency per hop between the two chips (Manhattan distance on the torus, ring distance
  between nodes, one hop through a switch); within a chip, B read and written through HBM.

`link_bytes_per_ns` is the preset's per-chip bandwidth (all of a chip's links together), so a single
point-to-point transfer is taken to use all of them (the preset gives no per-link figure).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from trnsim.hw.spec import Topology
from trnsim.sim.collectives import Placement, all_gather_us, all_reduce_us
from trnsim.sim.instance import InstanceLayout


class Kind(StrEnum):
    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"
    PERMUTE = "permute"


def group_placement(lay: InstanceLayout, members: Sequence[int]) -> Placement:
    """The group's ranks as a Placement: how many chips, and the most ranks any one chip holds."""
    per_chip = Counter(lay.ranks[r].chip for r in members)
    return Placement(len(members), max(per_chip.values()), len(per_chip), lay.instance)


def collective_ns(lay: InstanceLayout, kind: Kind, members: Sequence[int], nbytes: float) -> float:
    """Link time (ns) of a collective over `members` moving `nbytes` (see the module docstring for which B)."""
    if len(members) <= 1 or nbytes <= 0:
        return 0.0
    p = group_placement(lay, members)
    if kind is Kind.ALL_REDUCE:
        return all_reduce_us(lay.spec, p, nbytes) * 1000.0
    return all_gather_us(lay.spec, p, nbytes) * 1000.0


def _coords(lay: InstanceLayout, chip: int) -> tuple[int, int, int]:
    dims = (lay.instance.topology_dims if lay.instance else []) or [1]
    x = dims[0]
    y = dims[1] if len(dims) > 1 else 1
    return chip % x, (chip // x) % y, chip // (x * y)


def hops(lay: InstanceLayout, a: int, b: int) -> int:
    """Chip-to-chip hops from chip a to chip b over the instance's topology."""
    inst = lay.instance
    if a == b or inst is None:
        return 0
    if inst.topology is Topology.all_to_all:
        return 1
    if inst.topology in (Topology.ring, Topology.single):
        d = abs(a - b) % inst.chips
        return min(d, inst.chips - d)
    dims = inst.topology_dims or [inst.chips]
    ca, cb = _coords(lay, a), _coords(lay, b)
    total = 0
    for k, size in enumerate([*dims, 1, 1][:3]):
        d = abs(ca[k] - cb[k])
        total += min(d, size - d) if size > 1 else d
    return total


def point_to_point_ns(lay: InstanceLayout, src_rank: int, dst_rank: int, nbytes: float) -> float:
    """Time (ns) to move `nbytes` from one rank to another."""
    if src_rank == dst_rank or nbytes <= 0:
        return 0.0
    a, b = lay.ranks[src_rank].chip, lay.ranks[dst_rank].chip
    if a == b:
        return 2 * nbytes / lay.spec.chip.hbm_bytes_per_ns  # read and written through the chip's HBM
    inst = lay.instance
    assert inst is not None  # ranks on two chips imply an instance
    bw = inst.link_bytes_per_ns
    if _coords(lay, a)[2] != _coords(lay, b)[2] and inst.inter_node_link_bytes_per_ns:
        bw = min(bw, inst.inter_node_link_bytes_per_ns)
    return nbytes / bw + hops(lay, a, b) * inst.hop_latency_ns


def permute_ns(lay: InstanceLayout, pairs: Sequence[tuple[int, int]], nbytes: float) -> float:
    """All pairs move at once: the slowest pair decides."""
    return max((point_to_point_ns(lay, s, t, nbytes) for s, t in pairs), default=0.0)


@dataclass(frozen=True)
class LinkTime:
    """A collective's time split into what chip-to-chip link bandwidth decides (`wire_ns`, stretched when other
    exchanges use the same chips' links at the same time) and the rest (`fixed_ns`: hop latencies, HBM)."""

    fixed_ns: float = 0.0
    wire_ns: float = 0.0
    chips: frozenset[int] = frozenset()  # chips whose links it uses (none when it stays on one chip)

    @property
    def total_ns(self) -> float:
        return self.fixed_ns + self.wire_ns


def link_time(lay: InstanceLayout, members: Sequence[int], cost: Callable[[InstanceLayout], float]) -> LinkTime:
    """Split `cost(lay)` into its link-bandwidth part and the rest (the same cost with unlimited links)."""
    total = cost(lay)
    chips = frozenset(lay.ranks[r].chip for r in members)
    if lay.instance is None or len(chips) <= 1:
        return LinkTime(total, 0.0)
    unlimited = lay.instance.model_copy(
        update={"link_bytes_per_ns": math.inf, "inter_node_link_bytes_per_ns": math.inf}
    )
    free = cost(replace(lay, instance=unlimited))
    return LinkTime(free, total - free, chips)
