"""`nki.collectives`: collective communication between ranks (NKI 0.6 signatures).

Each call is one Sync-engine instruction on the calling rank that reads its sources and writes its
destinations; in functional runs the values are the other ranks' (exchanged when every rank of the replica
group has made the same call), and the instance timing starts the ranks' instructions together and adds
the link time over the instance topology (sim/collective_costs.py). Run kernels that use them on several
ranks with `trnsim.nki.run_ranks`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import BoundsError, ShapeMismatchError, UsageError
from trnsim.isa.opcodes import Opcode
from trnsim.nki.collective_args import ReplicaGroup, chunks, group_link, prepare, reduce_op, values
from trnsim.nki.collectives_permute import (
    collective_permute,
    collective_permute_implicit,
    collective_permute_implicit_current_processing_rank_id,
    collective_permute_implicit_reduce,
)
from trnsim.nki.context import user_location
from trnsim.nki.operands import read_stored, write
from trnsim.nki.rank_exchange import Me, emit_sync, exchange, me, record_sync
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.collective_costs import Kind
from trnsim.sim.memory import MemoryKind

__all__ = [
    "ReplicaGroup",
    "all_gather",
    "all_gather_v",
    "all_reduce",
    "all_to_all",
    "all_to_all_v",
    "collective_permute",
    "collective_permute_implicit",
    "collective_permute_implicit_current_processing_rank_id",
    "collective_permute_implicit_reduce",
    "rank_id",
    "reduce_scatter",
]


def rank_id(name: Any = None) -> int:
    """The calling rank's id (0 .. ranks-1 of this launch)."""
    return me().rank


def all_reduce(srcs: Any, dsts: Any, replica_group: Any, op: Any, priority: Any = None, name: Any = None) -> None:
    loc = user_location()
    who = me()
    s, d, grp = prepare(who, srcs, dsts, replica_group, loc, "all_reduce")
    ufunc = reduce_op(op, loc)
    for a, b in zip(s, d):
        if a.shape != b.shape:
            raise ShapeMismatchError(
                f"all_reduce: src {list(a.shape)} and dst {list(b.shape)} differ", loc, rule="shape"
            )
    idx = emit_sync(who, Opcode.COLLECTIVE, s, d, loc, f"all_reduce({len(grp)} ranks)")
    got, key = exchange(who, "all_reduce", grp, values(who, s, loc), loc)
    if who.ctx.machine.functional:
        for k, b in enumerate(d):
            parts = [np.asarray(got[r][k], dtype=np.float64 if dtypes.is_float(b.dtype) else np.int64) for r in grp]
            write(b, ufunc.reduce(np.stack(parts), axis=0), None)
    record_sync(who, idx, key, group_link(who, Kind.ALL_REDUCE, grp, sum(t.nbytes for t in s)))


def all_gather(
    srcs: Any, dsts: Any, replica_group: Any, collective_dim: int, priority: Any = None, name: Any = None
) -> None:
    loc = user_location()
    who = me()
    s, d, grp = prepare(who, srcs, dsts, replica_group, loc, "all_gather")
    p = len(grp)
    for a, b in zip(s, d):
        chunks(b, p, collective_dim, "all_gather dst", loc)
        want = list(a.shape)
        want[collective_dim] *= p
        if list(b.shape) != want:
            raise ShapeMismatchError(
                f"all_gather: dst must be {want} for src {list(a.shape)}, got {list(b.shape)}", loc
            )
    idx = emit_sync(who, Opcode.COLLECTIVE, s, d, loc, f"all_gather({p} ranks)")
    got, key = exchange(who, "all_gather", grp, values(who, s, loc), loc)
    if who.ctx.machine.functional:
        for k, b in enumerate(d):
            write(b, np.concatenate([got[r][k] for r in grp], axis=collective_dim), None)
    record_sync(who, idx, key, group_link(who, Kind.ALL_GATHER, grp, sum(t.nbytes for t in d)))


def reduce_scatter(
    srcs: Any, dsts: Any, replica_group: Any, collective_dim: int, op: Any, priority: Any = None, name: Any = None
) -> None:
    loc = user_location()
    who = me()
    s, d, grp = prepare(who, srcs, dsts, replica_group, loc, "reduce_scatter")
    ufunc, p = reduce_op(op, loc), len(grp)
    for a, b in zip(s, d):
        chunks(a, p, collective_dim, "reduce_scatter src", loc)
        want = list(a.shape)
        want[collective_dim] //= p
        if list(b.shape) != want:
            raise ShapeMismatchError(f"reduce_scatter: dst must be {want} for src {list(a.shape)}", loc, rule="shape")
    idx = emit_sync(who, Opcode.COLLECTIVE, s, d, loc, f"reduce_scatter({p} ranks)")
    got, key = exchange(who, "reduce_scatter", grp, values(who, s, loc), loc)
    if who.ctx.machine.functional:
        mine = grp.index(who.rank)
        for k, b in enumerate(d):
            parts = [np.split(np.asarray(got[r][k], dtype=np.float64), p, axis=collective_dim)[mine] for r in grp]
            write(b, ufunc.reduce(np.stack(parts), axis=0), None)
    record_sync(who, idx, key, group_link(who, Kind.REDUCE_SCATTER, grp, sum(t.nbytes for t in s)))


def all_to_all(
    srcs: Any, dsts: Any, replica_group: Any, collective_dim: int, priority: Any = None, name: Any = None
) -> None:
    loc = user_location()
    who = me()
    s, d, grp = prepare(who, srcs, dsts, replica_group, loc, "all_to_all", hbm_only=True)
    p = len(grp)
    for a, b in zip(s, d):
        chunks(a, p, collective_dim, "all_to_all src", loc)
        if a.shape != b.shape:
            raise ShapeMismatchError(
                f"all_to_all: src {list(a.shape)} and dst {list(b.shape)} differ", loc, rule="shape"
            )
    idx = emit_sync(who, Opcode.COLLECTIVE, s, d, loc, f"all_to_all({p} ranks)")
    got, key = exchange(who, "all_to_all", grp, values(who, s, loc), loc)
    if who.ctx.machine.functional:
        mine = grp.index(who.rank)
        for k, b in enumerate(d):
            pieces = [np.split(got[r][k], p, axis=collective_dim)[mine] for r in grp]
            write(b, np.concatenate(pieces, axis=collective_dim), None)
    record_sync(who, idx, key, group_link(who, Kind.ALL_TO_ALL, grp, sum(t.nbytes for t in s)))


def _metadata(who: Me, meta: Any, p: int, has_rdispls: bool, what: str, loc: str) -> np.ndarray | None:
    """The (rows, p) uint32 metadata tensor's values (functional runs), its shape checked."""
    if not isinstance(meta, NkiTensor):
        raise UsageError(f"{what}: metadata_tensor must be a kernel tensor, got {meta!r}", loc, rule="operand")
    rows = 4 if has_rdispls else 3
    want = (rows, p) if meta.buffer is MemoryKind.HBM else (1, rows, p)
    if tuple(meta.shape) != want or meta.dtype != np.dtype(np.uint32):
        raise ShapeMismatchError(
            f"{what}: metadata_tensor must be uint32 {list(want)} for {p} ranks, got {list(meta.shape)} "
            f"{dtypes.name(meta.dtype)}",
            loc,
            rule="metadata",
        )
    if not who.ctx.machine.functional:
        return None
    return np.array(read_stored(who.ctx, meta, None, loc)).reshape(rows, p).astype(np.int64)


def _place(dst: np.ndarray, at: int, chunk: np.ndarray, what: str, loc: str) -> None:
    if at < 0 or at + chunk.size > dst.size:
        raise BoundsError(f"{what}: a chunk of {chunk.size} elements at {at} overruns dst of {dst.size}", loc)
    dst[at : at + chunk.size] = chunk


def _variable(
    kind: str,
    srcs: Any,
    dsts: Any,
    replica_group: Any,
    metadata_tensor: Any,
    recv_counts_known: bool,
    has_rdispls: bool,
) -> None:
    """all_gather_v (one chunk to every rank) and all_to_all_v (a chunk per destination), on flat buffers."""
    loc = user_location()
    who = me()
    s, d, grp = prepare(who, srcs, dsts, replica_group, loc, kind, hbm_only=True, one=True)
    p, src, dst = len(grp), s[0], d[0]
    meta = _metadata(who, metadata_tensor, p, has_rdispls, kind, loc)
    writes = [dst] if recv_counts_known else [dst, metadata_tensor]
    idx = emit_sync(who, Opcode.COLLECTIVE, [src, metadata_tensor], writes, loc, f"{kind}({p} ranks)")
    payload = None
    if meta is not None:
        flat = np.asarray(read_stored(who.ctx, src, None, loc)).reshape(-1)
        if kind == "all_gather_v":
            sends = [flat[meta[1, 0] : meta[1, 0] + meta[0, 0]]] * p
        else:
            sends = [flat[meta[1, j] : meta[1, j] + meta[0, j]] for j in range(p)]
        payload = sends
    got, key = exchange(who, kind, grp, payload, loc)
    if meta is not None:
        mine = grp.index(who.rank)
        out = (
            np.array(read_stored(who.ctx, dst, None, loc)).reshape(-1)
            if not _unwritten(dst)
            else np.zeros(dst.size, dst.dtype)
        )
        slot = dst.size // p
        counts = []
        for j, r in enumerate(grp):
            chunk = got[r][mine]
            counts.append(chunk.size)
            _place(out, int(meta[3, j]) if has_rdispls else slot * j, chunk, kind, loc)
        write(dst, out.reshape(dst.shape), None)
        if not recv_counts_known:
            meta[2, :] = counts
            write(metadata_tensor, meta.astype(np.uint32).reshape(metadata_tensor.shape), None)
    record_sync(
        who,
        idx,
        key,
        group_link(who, Kind.ALL_TO_ALL if kind == "all_to_all_v" else Kind.ALL_GATHER, grp, dst.nbytes),
    )


def _unwritten(t: NkiTensor) -> bool:
    return not t.alloc.root.fully_written and t.alloc.written_mask() is None


def all_gather_v(
    srcs: Any,
    dsts: Any,
    replica_group: Any,
    metadata_tensor: Any,
    recv_counts_known: bool = False,
    has_rdispls: bool = False,
    priority: Any = None,
    name: Any = None,
) -> None:
    _variable("all_gather_v", srcs, dsts, replica_group, metadata_tensor, recv_counts_known, has_rdispls)


def all_to_all_v(
    srcs: Any,
    dsts: Any,
    replica_group: Any,
    metadata_tensor: Any,
    recv_counts_known: bool = False,
    has_rdispls: bool = False,
    priority: Any = None,
    name: Any = None,
) -> None:
    _variable("all_to_all_v", srcs, dsts, replica_group, metadata_tensor, recv_counts_known, has_rdispls)
