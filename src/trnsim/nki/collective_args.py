"""What every nki.collectives call checks and shares: replica groups, src/dst lists, values, the layout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.nki.context import user_location
from trnsim.nki.nki_object import NKIObject
from trnsim.nki.operands import op_name, read_stored
from trnsim.nki.rank_exchange import Me, check_members
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.collective_costs import Kind, LinkTime, collective_ns, link_time, permute_ns
from trnsim.sim.instance import InstanceLayout, layout
from trnsim.sim.memory import MemoryKind

_REDUCE = {"add": np.add, "maximum": np.maximum, "minimum": np.minimum}


@dataclass(init=False, repr=True)
class ReplicaGroup(NKIObject):
    """Groups of ranks that run a collective together, e.g. ReplicaGroup([[0, 1], [2, 3]]); no overlaps."""

    replica_groups: list[list[int]]

    def __init__(self, replica_groups: Sequence[Sequence[int]]) -> None:
        groups = [[int(r) for r in g] for g in replica_groups]
        seen: set[int] = set()
        for g in groups:
            if not g or seen & set(g) or len(set(g)) != len(g):
                raise UsageError(f"ReplicaGroup {groups}: groups must be non-empty and not overlap", user_location())
            seen |= set(g)
        self.replica_groups = groups

    def group_of(self, rank: int, location: str) -> tuple[int, ...]:
        for g in self.replica_groups:
            if rank in g:
                return tuple(g)
        raise UsageError(f"rank {rank} is in no group of {self.replica_groups}", location, rule="replica-group")


def tensors(x: Any, what: str, loc: str) -> list[NkiTensor]:
    items = list(x) if isinstance(x, list | tuple) else [x]
    if not items or not all(isinstance(t, NkiTensor) for t in items):
        raise UsageError(f"{what} must be a list of kernel tensors, got {x!r}", loc, rule="operand")
    return items


def prepare(
    who: Me, srcs: Any, dsts: Any, group: ReplicaGroup, loc: str, what: str, hbm_only: bool = False, one: bool = False
) -> tuple[list[NkiTensor], list[NkiTensor], tuple[int, ...]]:
    if not isinstance(group, ReplicaGroup):
        raise UsageError(f"{what}: replica_group must be a ReplicaGroup, got {group!r}", loc, rule="replica-group")
    s, d = tensors(srcs, f"{what} srcs", loc), tensors(dsts, f"{what} dsts", loc)
    if len(s) != len(d) or (one and len(s) != 1):
        need = "exactly one tensor each" if one else "as many dsts as srcs"
        raise UsageError(f"{what}: {len(s)} srcs and {len(d)} dsts; it takes {need}", loc, rule="operand")
    buffers = {t.buffer for t in (*s, *d)} - {MemoryKind.PSUM}
    if any(t.buffer is MemoryKind.PSUM for t in (*s, *d)) or len(buffers) > 1:
        raise UsageError(f"{what}: tensors must be all in HBM or all in SBUF", loc, rule="buffer")
    if (hbm_only or len(s) > 1) and buffers != {MemoryKind.HBM}:
        why = "it supports only HBM tensors" if hbm_only else "coalesced tensors must be in HBM"
        raise UsageError(f"{what}: {why}", loc, rule="buffer")
    for a, b in zip(s, d):
        if a.dtype != b.dtype:
            raise UsageError(
                f"{what}: src {a!r} is {dtypes.name(a.dtype)} but dst {b!r} is {dtypes.name(b.dtype)}",
                loc,
                rule="dtype",
            )
    grp = group.group_of(who.rank, loc)
    check_members(who, grp, what, loc)
    return s, d, grp


def values(who: Me, tiles: list[NkiTensor], loc: str) -> list[np.ndarray] | None:
    if not who.ctx.machine.functional:
        return None
    return [np.array(read_stored(who.ctx, t, None, loc)) for t in tiles]


def reduce_op(op: Any, loc: str) -> Any:
    return _REDUCE[op_name(op, _REDUCE, "collective reduction", loc)]


def chunks(t: NkiTensor, parts: int, dim: int, what: str, loc: str) -> None:
    if dim not in (0, 1) or dim >= len(t.shape) or t.shape[dim] % parts:
        raise ShapeMismatchError(
            f"{what}: {t!r} cannot be split into {parts} equal chunks along dim {dim}", loc, rule="collective-dim"
        )


def layout_of(who: Me) -> InstanceLayout:
    if who.layout is not None:
        return who.layout
    spec = who.ctx.machine.spec
    return layout(spec, 1, spec.chip.default_lnc)


def group_link(who: Me, kind: Kind, group: Sequence[int], nbytes: float) -> LinkTime:
    """A collective's link time over the group's chips (sim/collective_costs.py)."""
    return link_time(layout_of(who), group, lambda lay: collective_ns(lay, kind, group, nbytes))


def pairs_link(who: Me, pairs: Sequence[tuple[int, int]], nbytes: float) -> LinkTime:
    """Point-to-point transfers between rank pairs, all at once: the slowest pair decides."""
    members = sorted({r for pair in pairs for r in pair})
    return link_time(layout_of(who), members, lambda lay: permute_ns(lay, pairs, nbytes))
