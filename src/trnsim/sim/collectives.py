"""Collective operations (all-reduce, all-gather) over an instance's chip topology.

Tensor-parallel ranks are logical NeuronCores: `physical_cores / default_lnc` of them per chip. Ranks on one
chip exchange data through the chip's shared HBM; chips exchange it over their links. Times are the
standard bandwidth-optimal algorithms (Patarasuk & Yuan; NCCL's ring/tree analysis) with every number
from the preset:

- ring of p chips: all-reduce = 2 (p-1)/p * B / bw + 2 (p-1) hops; all-gather half of that.
- 2D torus a x b: ring all-reduce along x, then along y on 1/a of the data (the two-dimensional algorithm).
- 2D torus per node, ring between nodes (Trn2 UltraServer): the torus algorithm inside each node, then a
  ring over the nodes' inter-node links on 1/(chips per node) of the data.
- switched all-to-all (Trn3): every chip reaches every other in one hop: 2 (p-1)/p * B / bw + 2 hops.

`bw` is the per-chip link bandwidth of the preset (all of a chip's links together).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trnsim.errors import SpecError
from trnsim.hw.spec import HardwareSpec, InstanceSpec, Topology


@dataclass(frozen=True)
class Placement:
    """How `tp` ranks sit on chips of an instance."""

    tp: int
    ranks_per_chip: int
    chips: int
    instance: InstanceSpec | None


def ranks_per_chip(spec: HardwareSpec) -> int:
    return max(1, spec.chip.physical_cores // spec.chip.default_lnc)


def place(spec: HardwareSpec, tp: int, instance: str | None = None) -> Placement:
    """Pack `tp` ranks onto as few chips as possible, on `instance` or the smallest preset instance that fits."""
    per_chip = ranks_per_chip(spec)
    chips = math.ceil(tp / per_chip)
    if instance is not None:
        inst = spec.instance(instance)
        if chips > inst.chips:
            raise SpecError(
                f"tp={tp} needs {chips} {spec.name} chips ({per_chip} logical cores each) but {inst.name} has "
                f"{inst.chips}: lower tp or choose a bigger instance ({', '.join(i.name for i in spec.instances)})"
            )
        return Placement(tp, per_chip, chips, inst)
    if chips == 1:
        return Placement(tp, per_chip, 1, None)
    fitting = sorted((i for i in spec.instances if i.chips >= chips), key=lambda i: i.chips)
    if not fitting:
        biggest = max((i.chips for i in spec.instances), default=1)
        raise SpecError(
            f"tp={tp} needs {chips} {spec.name} chips ({per_chip} logical cores each); the largest {spec.name} "
            f"instance has {biggest} chips (at most tp={biggest * per_chip})"
        )
    return Placement(tp, per_chip, chips, fitting[0])


def _ring_us(nbytes: float, p: int, bw_bytes_per_ns: float, hop_ns: float, factor: float) -> float:
    if p <= 1:
        return 0.0
    return (factor * (p - 1) / p * nbytes / bw_bytes_per_ns + factor * (p - 1) * hop_ns) / 1000.0


def _intra_chip_us(spec: HardwareSpec, nbytes: float, ranks: int, factor: float) -> float:
    """Ranks of one chip reduce through its HBM: each byte read and written (factor (r-1)/r) at HBM bandwidth."""
    if ranks <= 1:
        return 0.0
    return factor * (ranks - 1) / ranks * 2 * nbytes / spec.chip.hbm_bytes_per_ns / 1000.0


def _inter_chip_us(p: Placement, nbytes: float, factor: float) -> float:
    inst = p.instance
    if inst is None or p.chips <= 1:
        return 0.0
    bw, hop = inst.link_bytes_per_ns, inst.hop_latency_ns
    if inst.topology in (Topology.ring, Topology.single):
        return _ring_us(nbytes, p.chips, bw, hop, factor)
    if inst.topology is Topology.all_to_all:
        if p.chips <= 1:
            return 0.0
        return (factor * (p.chips - 1) / p.chips * nbytes / bw + factor * hop) / 1000.0
    dims = inst.topology_dims or [p.chips]
    x = min(p.chips, dims[0])
    y = min(math.ceil(p.chips / x), dims[1] if len(dims) > 1 else 1)
    t = _ring_us(nbytes, x, bw, hop, factor) + _ring_us(nbytes / x, y, bw, hop, factor)
    if inst.topology is Topology.torus_2d_ring and len(dims) > 2:
        per_node = dims[0] * dims[1]
        nodes = math.ceil(p.chips / per_node)
        t += _ring_us(nbytes / per_node, nodes, inst.inter_node_link_bytes_per_ns or bw, hop, factor)
    return t


def all_reduce_us(spec: HardwareSpec, placement: Placement, nbytes: float) -> float:
    """Time to all-reduce `nbytes` (per rank) over the placement's ranks."""
    return _intra_chip_us(spec, nbytes, min(placement.tp, placement.ranks_per_chip), 2.0) + _inter_chip_us(
        placement, nbytes, 2.0
    )


def all_gather_us(spec: HardwareSpec, placement: Placement, nbytes: float) -> float:
    """Time to all-gather a result of `nbytes` in total (each rank holds 1/tp of it)."""
    return _intra_chip_us(spec, nbytes, min(placement.tp, placement.ranks_per_chip), 1.0) + _inter_chip_us(
        placement, nbytes, 1.0
    )
