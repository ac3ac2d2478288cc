"""Where the ranks of an expert-parallel (x tensor-parallel) group sit, and what its MoE layers move between them.

Layout of `tp x ep` ranks (Megatron-Core's expert parallelism with expert tensor parallelism = tp; NxD
Inference's moe_tp_degree x moe_ep_degree): rank (g, t) = g * tp + t, g < ep, t < tp.

- Attention and every other non-expert layer run tensor-parallel inside a tp group (ranks g*tp .. g*tp+tp-1,
  contiguous, so they share chips first); the ep groups are data-parallel, each over its own sequences.
- The routed experts are split into ep contiguous blocks; tp group g holds block g, every expert of it
  column-split over the group's tp ranks as in a plain tensor-parallel MoE.
- Per MoE layer: after attention every rank of a group holds all its tokens. Rank (g, t) dispatches the t-th
  1/tp of the group's routed rows to the ranks (g', t) over an all-to-all among the ep ranks with the same t
  (stride tp); the tp ranks of g' all-gather the rows their experts received (each holds a column slice of
  every local expert); after the down projection a reduce-scatter inside the tp group leaves each rank 1/tp of
  the rows, complete; the combine all-to-all sends them back. The block ends in the tensor-parallel
  all-reduce it has without ep (the shared expert's partial sum; for the routed rows it stands for the
  all-gather that rebuilds the group's tokens on every rank - a reduce-scatter + all-gather = all-reduce).

With tp = 1 this is the data-parallel-attention layout (no all-gather / reduce-scatter, a rank dispatches all
its rows); with ep = 1 it is a tensor-parallel MoE (no all-to-all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trnsim.hw.spec import HardwareSpec
from trnsim.hw.topology import CollectiveKind, collective_ns, fabric_of
from trnsim.runtime.graph_profile import OpRecord
from trnsim.sim.collectives import Placement, all_gather_us, place, ranks_per_chip


def all_to_all_us(spec: HardwareSpec, placement: Placement, nbytes_per_rank: float) -> float:
    """Time of an all-to-all in which every rank sends 1/p of an `nbytes_per_rank` buffer to each rank.

    A chip carries the buffers of all its r ranks: inside the chip they swap (r-1)/r of them through HBM, each
    byte read and written (2 (r-1) B at HBM bandwidth); between chips the instance topology's all-to-all closed
    form (hw/topology.py: switch, ring relay, torus per dimension, UltraServer node ring) on the chip's r x B.
    """
    if placement.tp <= 1 or nbytes_per_rank <= 0:
        return 0.0
    per_chip = min(placement.tp, placement.ranks_per_chip)
    intra_ns = 2 * (per_chip - 1) * nbytes_per_rank / spec.chip.hbm_bytes_per_ns
    inter_ns = 0.0
    if placement.instance is not None and placement.chips > 1:
        fabric = fabric_of(placement.instance)
        inter_ns = collective_ns(fabric, CollectiveKind.ALL_TO_ALL, per_chip * nbytes_per_rank, placement.chips)
    return (intra_ns + inter_ns) / 1000.0


@dataclass(frozen=True)
class EPLayout:
    """tp x ep ranks on an instance: the whole group, one tp group, and one ep group (stride tp)."""

    spec: HardwareSpec
    tp: int
    ep: int
    placement: Placement  # all tp x ep ranks (a clear SpecError from `place` when the instance is too small)

    @property
    def ranks(self) -> int:
        return self.tp * self.ep

    @property
    def tp_placement(self) -> Placement:
        """One tp group: contiguous ranks, on the whole group's instance."""
        return Placement(
            self.tp,
            self.placement.ranks_per_chip,
            math.ceil(self.tp / self.placement.ranks_per_chip),
            self.placement.instance,
        )

    @property
    def ep_peers_per_chip(self) -> int:
        """Ranks of one ep group (same t, stride tp) that share a chip."""
        return max(1, min(self.ep, self.placement.ranks_per_chip // self.tp))

    @property
    def ep_chips(self) -> int:
        """Chips one ep group spans."""
        return math.ceil(self.ep / self.ep_peers_per_chip)

    def dispatch_us(self, nbytes_per_rank: float) -> float:
        """One dispatch (or combine) all-to-all: the tp ep groups run theirs at the same time.

        An ep group is an all-to-all over its ranks (all_to_all_us's closed form), but the chips are shared:
        a chip holds min(ranks, ranks per chip) ranks of all the ep groups together, so its HBM swaps and its
        links carry all of theirs - the ep group's peers on the chip times the concurrent groups on it. The
        group's chips are priced as `ep_chips` neighbouring chips of the fabric: exact on a switch; on a ring or
        torus a tp group wider than a chip strides its ep peers over more hops, which this leaves out."""
        if self.ep <= 1 or nbytes_per_rank <= 0:
            return 0.0
        on_chip = min(self.ranks, self.placement.ranks_per_chip)
        concurrent = max(1, on_chip // self.ep_peers_per_chip)  # ep groups with ranks on one chip
        intra_ns = 2 * concurrent * (self.ep_peers_per_chip - 1) * nbytes_per_rank / self.spec.chip.hbm_bytes_per_ns
        inter_ns = 0.0
        if self.placement.instance is not None and self.ep_chips > 1:
            fabric = fabric_of(self.placement.instance)
            inter_ns = collective_ns(fabric, CollectiveKind.ALL_TO_ALL, on_chip * nbytes_per_rank, self.ep_chips)
        return (intra_ns + inter_ns) / 1000.0

    def gather_us(self, nbytes_total: float) -> float:
        """An all-gather (or reduce-scatter: the same bytes on a ring) of `nbytes_total` inside one tp group."""
        return all_gather_us(self.spec, self.tp_placement, nbytes_total) if self.tp > 1 else 0.0


def ep_layout(spec: HardwareSpec, tp: int, ep: int, instance: str | None = None) -> EPLayout:
    """tp x ep ranks packed onto the instance (or the smallest preset instance that holds them)."""
    return EPLayout(spec, tp, ep, place(spec, tp * ep, instance))


@dataclass(frozen=True)
class MoETraffic:
    """Bytes one MoE layer moves per rank (bf16 hidden rows)."""

    dispatch_bytes: int  # each all-to-all, per rank: the larger of what a rank sends and the busiest receives
    gather_bytes: int  # the tp all-gather / reduce-scatter: the busiest group's expert rows, all of them


def moe_traffic(layout: EPLayout, group_tokens: int, top_k: int, busiest_rows: int, hidden: int) -> MoETraffic:
    """What a layer moves: a rank sends its 1/tp of the group's tokens x k rows and the busiest group's ranks
    receive 1/tp of the rows its experts get; the tp group then gathers all of those rows."""
    elt = 2  # the hidden states travel in bf16
    rows = math.ceil(max(group_tokens * top_k, busiest_rows) / layout.tp)
    return MoETraffic(rows * hidden * elt, busiest_rows * hidden * elt if layout.tp > 1 else 0)


def moe_records(layout: EPLayout, traffic: MoETraffic, hidden: int, layers: int) -> list[OpRecord]:
    """The collectives the layout adds to a rank's profile, each once per MoE layer."""
    elt = 2
    steps: list[tuple[str, str, float, str]] = []
    if layout.ep > 1:
        us = layout.dispatch_us(traffic.dispatch_bytes)
        shape = f"[{traffic.dispatch_bytes // (hidden * elt)}, {hidden}]:bfloat16 per rank, {layout.ep} ranks"
        steps += [("ep_dispatch", "all_to_all", us, shape), ("ep_combine", "all_to_all", us, shape)]
    if layout.tp > 1 and layout.ep > 1:
        us = layout.gather_us(traffic.gather_bytes)
        shape = f"[{traffic.gather_bytes // (hidden * elt)}, {hidden}]:bfloat16 over {layout.tp} ranks"
        steps += [("ep_rows_gather", "all_gather", us, shape), ("ep_rows_scatter", "reduce_scatter", us, shape)]
    return [
        OpRecord(node=node, op=op, kind="collective", kernel=op, device_us=us, count=layers, shapes=shape)
        for node, op, us, shape in steps
    ]


__all__ = ["EPLayout", "MoETraffic", "all_to_all_us", "ep_layout", "moe_records", "moe_traffic", "ranks_per_chip"]
