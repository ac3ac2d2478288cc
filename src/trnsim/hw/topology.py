"""Closed-form collective costs over an instance's chip-to-chip fabric (ring, 2D torus, torus + ring, switch).

The bandwidth-optimal algorithms (Patarasuk & Yuan 2009; NCCL's ring analysis) on p devices moving B bytes
over links of `bw` bytes/ns per device (all of a device's links together) with `h` ns per hop:

- ring stage, f = 2 for all-reduce (reduce-scatter then all-gather), 1 for all-gather / reduce-scatter:
      f (p-1)/p B / bw + f (p-1) h
- all-to-all on a ring (relayed in one direction: the block for the chip d hops on crosses d links, so the
  busiest link carries B/p (1 + 2 + ... + p-1) = (p-1)/2 B):
      (p-1)/2 B / bw + (p-1) h
- 2D torus x * y: the ring stage along x, then along y on 1/x of the data (all-reduce / all-gather), or
  along x and then along y on the whole buffer (all-to-all, dimension-ordered routing).
- 2D torus per node, ring between nodes (Trn2 UltraServer: four 4x4 nodes): the torus stages, then a ring
  over the nodes at the inter-node bandwidth, on 1/(x y) of the data (all-to-all: on the whole buffer).
- switch (Trn3 NeuronSwitch, NVLink switch): every device one hop from every other:
      f (p-1)/p B / bw + f h (all-reduce f = 2; all-gather, reduce-scatter, all-to-all f = 1)
plus `fixed_ns` once per collective (a GPU's NCCL launch; 0 on Trainium, whose presets give hop latency).

B is the per-device buffer for all-reduce, reduce-scatter and all-to-all, and the gathered total for
all-gather (the conventions of sim/collective_costs.py). For all-reduce and all-gather these are the same
formulas sim/collectives.py uses for tensor-parallel estimates (tests/hw/test_topology_costs.py holds the
two together). Every number comes from the instance preset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from trnsim.errors import SpecError
from trnsim.hw.spec import InstanceSpec, Topology


class CollectiveKind(StrEnum):
    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"


@dataclass(frozen=True)
class Fabric:
    """The links joining an instance's devices, as the closed forms need them."""

    name: str
    topology: Topology
    devices: int
    dims: tuple[int, ...]  # (x, y) torus, (x, y, nodes) torus + ring; () otherwise
    link_bytes_per_ns: float  # per device, all of its links together
    hop_latency_ns: float
    inter_node_link_bytes_per_ns: float = 0.0  # torus_2d_ring: per device between nodes
    fixed_ns: float = 0.0  # once per collective


def fabric_of(inst: InstanceSpec) -> Fabric:
    """A Trainium-class instance preset's fabric."""
    return Fabric(
        name=inst.name,
        topology=inst.topology,
        devices=inst.chips,
        dims=tuple(inst.topology_dims),
        link_bytes_per_ns=inst.link_bytes_per_ns,
        hop_latency_ns=inst.hop_latency_ns,
        inter_node_link_bytes_per_ns=inst.inter_node_link_bytes_per_ns or inst.link_bytes_per_ns,
    )


def ring_ns(p: int, nbytes: float, bw: float, hop_ns: float, f: float) -> float:
    """All-reduce (f = 2) or all-gather / reduce-scatter (f = 1) on a ring of p devices."""
    if p <= 1:
        return 0.0
    return f * (p - 1) / p * nbytes / bw + f * (p - 1) * hop_ns


def ring_all_to_all_ns(p: int, nbytes: float, bw: float, hop_ns: float) -> float:
    """All-to-all of an nbytes buffer per device on a ring of p devices (one-direction relay)."""
    if p <= 1:
        return 0.0
    return (p - 1) / 2 * nbytes / bw + (p - 1) * hop_ns


def switch_ns(p: int, nbytes: float, bw: float, hop_ns: float, f: float) -> float:
    """A collective through a switch: each device moves f (p-1)/p of the buffer through its port, f hops."""
    if p <= 1:
        return 0.0
    return f * (p - 1) / p * nbytes / bw + f * hop_ns


def _torus_extent(fabric: Fabric, devices: int) -> tuple[int, int, int]:
    """(x, y, nodes) the first `devices` devices of a torus fabric span (filled x first, then y, then nodes)."""
    dims = [*fabric.dims, 1, 1, 1][:3] if fabric.dims else [devices, 1, 1]
    x = min(devices, dims[0])
    y = min(math.ceil(devices / x), dims[1])
    nodes = math.ceil(devices / (dims[0] * dims[1])) if fabric.topology is Topology.torus_2d_ring else 1
    return x, y, min(nodes, dims[2])


def collective_ns(fabric: Fabric, kind: CollectiveKind | str, nbytes: float, devices: int | None = None) -> float:
    """Time (ns) of one collective among the first `devices` devices of the fabric (default: all of them)."""
    kind = _kind(kind)
    p = fabric.devices if devices is None else devices
    if isinstance(p, bool) or not isinstance(p, int) or p < 1 or p > fabric.devices:
        raise SpecError(f"a collective on {fabric.name} spans 1..{fabric.devices} devices, got {devices!r}")
    if nbytes < 0:
        raise SpecError(f"collective bytes must be >= 0, got {nbytes}")
    if p == 1 or nbytes == 0:
        return 0.0
    bw, hop = fabric.link_bytes_per_ns, fabric.hop_latency_ns
    f = 2.0 if kind is CollectiveKind.ALL_REDUCE else 1.0
    if fabric.topology is Topology.all_to_all:
        return fabric.fixed_ns + switch_ns(p, nbytes, bw, hop, f)
    if fabric.topology in (Topology.ring, Topology.single):
        if kind is CollectiveKind.ALL_TO_ALL:
            return fabric.fixed_ns + ring_all_to_all_ns(p, nbytes, bw, hop)
        return fabric.fixed_ns + ring_ns(p, nbytes, bw, hop, f)
    x, y, nodes = _torus_extent(fabric, p)
    inter = fabric.inter_node_link_bytes_per_ns or bw
    if kind is CollectiveKind.ALL_TO_ALL:
        t = ring_all_to_all_ns(x, nbytes, bw, hop) + ring_all_to_all_ns(y, nbytes, bw, hop)
        return fabric.fixed_ns + t + ring_all_to_all_ns(nodes, nbytes, inter, hop)
    t = ring_ns(x, nbytes, bw, hop, f) + ring_ns(y, nbytes / x, bw, hop, f)
    if nodes > 1:
        t += ring_ns(nodes, nbytes / (fabric.dims[0] * fabric.dims[1]), inter, hop, f)
    return fabric.fixed_ns + t


def _kind(kind: CollectiveKind | str) -> CollectiveKind:
    try:
        return CollectiveKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in CollectiveKind)
        raise SpecError(f"unknown collective {kind!r}; one of {allowed}") from None
