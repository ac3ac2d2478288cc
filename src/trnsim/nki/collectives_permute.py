"""`nki.collectives` permutes: explicit (source, target) pairs, and the ring forms whose partners are implicit.

collective_permute: every rank of the launch calls it (SPMD); rank t's dst receives rank s's src for each
pair (s, t); a rank that is no target keeps its dst. collective_permute_implicit(_reduce): each rank of the
replica group sends to its successor in the group's order and receives its predecessor's data (reduced
with `op` from two local sources first, for the _reduce form), one transfer per channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.isa.opcodes import Opcode
from trnsim.nki.collective_args import ReplicaGroup, pairs_link, prepare, reduce_op, tensors
from trnsim.nki.context import user_location
from trnsim.nki.operands import read_stored, write
from trnsim.nki.rank_exchange import Me, check_members, emit_sync, exchange, me, record_sync
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.memory import MemoryKind

MAX_CHANNELS = 4  # "at most 4 for replica groups containing all devices inside a node" (NKI docstring)


def _pairs(who: Me, pairs: Any, loc: str) -> list[tuple[int, int]]:
    try:
        out = [(int(s), int(t)) for s, t in pairs]
    except (TypeError, ValueError):
        raise UsageError(f"source_target_pairs must be (source, target) rank pairs, got {pairs!r}", loc) from None
    targets = [t for _, t in out]
    if len(set(targets)) != len(targets):
        raise UsageError(f"source_target_pairs {out}: a rank may receive from one source only", loc, rule="pairs")
    check_members(who, sorted({r for p in out for r in p}), "collective_permute", loc)
    return out


def collective_permute(
    srcs: Any, dsts: Any, source_target_pairs: Sequence[tuple[int, int]], priority: Any = None, name: Any = None
) -> None:
    loc = user_location()
    who = me()
    s, d = tensors(srcs, "collective_permute srcs", loc), tensors(dsts, "collective_permute dsts", loc)
    if len(s) != 1 or len(d) != 1:
        raise UsageError("collective_permute takes exactly one src and one dst tensor", loc, rule="operand")
    src, dst = s[0], d[0]
    if src.buffer is not MemoryKind.HBM or dst.buffer is not MemoryKind.HBM:
        raise UsageError("collective_permute: tensors must be in HBM", loc, rule="buffer")
    if src.shape != dst.shape or src.dtype != dst.dtype:
        raise ShapeMismatchError(f"collective_permute: src {src!r} and dst {dst!r} must match", loc, rule="shape")
    pairs = _pairs(who, source_target_pairs, loc)
    source = {t: s_ for s_, t in pairs}.get(who.rank)
    world = tuple(range(who.n_ranks))
    idx = emit_sync(who, Opcode.COLLECTIVE, [src], [dst] if source is not None else [], loc, "collective_permute")
    payload = np.array(read_stored(who.ctx, src, None, loc)) if who.ctx.machine.functional else None
    got, key = exchange(who, "collective_permute", world, payload, loc)
    if who.ctx.machine.functional and source is not None:
        write(dst, got[source], None)
    record_sync(who, idx, key, pairs_link(who, pairs, src.nbytes))


def _channels(
    who: Me, group: Any, channel_ids: Any, loc: str, what: str, *lists: Any
) -> tuple[list[list[NkiTensor]], tuple[int, ...]]:
    if not all(isinstance(x, list | tuple) for x in lists) or len({len(x) for x in lists}) != 1:
        raise UsageError(f"{what}: give one inner list per channel for every operand", loc, rule="channels")
    n = len(lists[0])
    if list(channel_ids) != list(range(n)) or not 1 <= n <= MAX_CHANNELS:
        raise UsageError(
            f"{what}: channel_ids must be 0..{n - 1} (consecutive from 0, at most {MAX_CHANNELS}), got {channel_ids}",
            loc,
            rule="channels",
        )
    per_channel = []
    grp: tuple[int, ...] = ()
    for c in range(n):
        srcs = [x[c] for x in lists[:-1]]
        d = lists[-1][c]
        for sx in srcs:
            s_, d_, grp = prepare(who, sx, d, group, loc, what, hbm_only=True, one=True)
            if s_[0].shape != d_[0].shape:
                raise ShapeMismatchError(f"{what}: src {s_[0]!r} and dst {d_[0]!r} differ in shape", loc, rule="shape")
        per_channel.append([*(tensors(sx, what, loc)[0] for sx in srcs), tensors(d, what, loc)[0]])
    return per_channel, grp


def _ring(
    who: Me, kind: str, grp: tuple[int, ...], channels: list[list[NkiTensor]], sends: list[Any], loc: str
) -> None:
    p = len(grp)
    pos = grp.index(who.rank)
    reads = [t for ch in channels for t in ch[:-1]]
    dsts = [ch[-1] for ch in channels]
    idx = emit_sync(who, Opcode.COLLECTIVE, reads, dsts, loc, f"{kind}({p} ranks, {len(channels)} ch)")
    got, key = exchange(who, kind, grp, sends, loc)
    if who.ctx.machine.functional:
        pred = grp[(pos - 1) % p]
        for c, d in enumerate(dsts):
            write(d, got[pred][c], None)
    pairs = [(grp[k], grp[(k + 1) % p]) for k in range(p)] if p > 1 else []
    record_sync(who, idx, key, pairs_link(who, pairs, sum(d.nbytes for d in dsts)))


def collective_permute_implicit(
    srcs_by_channel: Any,
    dsts_by_channel: Any,
    replica_group: Any,
    channel_ids: Sequence[int] = (0,),
    priority: Any = None,
    name: Any = None,
) -> None:
    loc = user_location()
    who = me()
    what = "collective_permute_implicit"
    channels, grp = _channels(who, replica_group, channel_ids, loc, what, srcs_by_channel, dsts_by_channel)
    functional = who.ctx.machine.functional
    sends = [np.array(read_stored(who.ctx, ch[0], None, loc)) for ch in channels] if functional else None
    _ring(who, what, grp, channels, sends or [], loc)


def collective_permute_implicit_reduce(
    srcs0_by_channel: Any,
    srcs1_by_channel: Any,
    dsts_by_channel: Any,
    replica_group: Any,
    op: Any,
    channel_ids: Sequence[int] = (0,),
    priority: Any = None,
    name: Any = None,
) -> None:
    loc = user_location()
    who = me()
    what = "collective_permute_implicit_reduce"
    ufunc = reduce_op(op, loc)
    channels, grp = _channels(
        who, replica_group, channel_ids, loc, what, srcs0_by_channel, srcs1_by_channel, dsts_by_channel
    )
    sends: list[Any] = []
    if who.ctx.machine.functional:
        for a, b, d in channels:
            va = np.asarray(read_stored(who.ctx, a, None, loc), dtype=np.float64)
            vb = np.asarray(read_stored(who.ctx, b, None, loc), dtype=np.float64)
            sends.append(ufunc(va, vb).astype(d.dtype))
    _ring(who, what, grp, channels, sends, loc)


def collective_permute_implicit_current_processing_rank_id(
    iteration_id: Any, replica_group: Any, channel_id: int = 0, name: Any = None
) -> int:
    """The rank whose data this rank holds after `iteration_id` ring steps (its own at step 0)."""
    loc = user_location()
    who = me()
    if not isinstance(replica_group, ReplicaGroup):
        raise UsageError(f"replica_group must be a ReplicaGroup, got {replica_group!r}", loc, rule="replica-group")
    grp = replica_group.group_of(who.rank, loc)
    try:
        step = int(iteration_id)
    except (TypeError, ValueError):
        raise UsageError(f"iteration_id must be an integer ring step, got {iteration_id!r}", loc) from None
    return grp[(grp.index(who.rank) - step) % len(grp)]
