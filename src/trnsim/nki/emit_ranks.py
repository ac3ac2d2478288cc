"""Builders for the instructions between the physical cores of one HBM stack: sendrecv and core_barrier.

Both name cores by their index on the stack (0 or 1 on trn2/trn3): at LNC=2 the two cores of the calling
logical core, at LNC=1 the neighbouring NeuronCore (another rank, maybe another tenant's: refused). Both
are sync points: the partners' instructions start together in the instance timing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import TrnsimWarning, UsageError, WarningText
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki.issue import issue
from trnsim.nki.operands import read_stored, require_tensor
from trnsim.nki.rank_exchange import RUN_RANKS_HINT, Me, me, record_sync
from trnsim.sim.memory import MemoryKind


def _stack(who: Me) -> tuple[int, int, int, int]:
    """(chip, first physical core of the stack, cores per stack, this core's index on the stack)."""
    if who.layout is None:
        return 0, 0, who.ctx.machine.n_cores, who.ctx.core
    lay = who.layout
    place = lay.ranks[who.rank]
    phys = place.cores[who.ctx.core]
    per = lay.cores_per_stack
    return place.chip, phys - phys % per, per, phys % per


def _peer(who: Me, index: Any, what: str, loc: str) -> int:
    chip, base, per, _ = _stack(who)
    if not isinstance(index, int | np.integer) or not 0 <= int(index) < per:
        raise UsageError(
            f"{what} must be a core index on this HBM stack (0..{per - 1}), got {index!r}", loc, rule="rank"
        )
    # a neighbour of another tenant: IsolationError; a core nobody runs on: a usage error
    if who.session is not None and who.session.check_core(chip, base + int(index), loc) is None:
        raise UsageError(f"{what} {index} is physical core {base + int(index)}, which runs no program here", loc)
    return base + int(index)


def sendrecv(
    src: Any,
    dst: Any,
    send_to_rank: Any,
    recv_from_rank: Any,
    pipe_id: int,
    dma_engine: str,
    engine: Engine | None,
    loc: str,
) -> None:
    src = require_tensor(src, "sendrecv src", loc)
    dst = require_tensor(dst, "sendrecv dst", loc)
    who = me()
    chip, _, _, mine = _stack(who)
    to = _peer(who, send_to_rank, "send_to_rank", loc)
    frm = _peer(who, recv_from_rank, "recv_from_rank", loc)
    me_phys = _stack(who)[1] + mine
    functional = who.ctx.machine.functional
    value: np.ndarray | None = np.array(read_stored(who.ctx, src, None, loc)) if functional else None
    key: tuple[Any, ...]
    if who.session is None:
        if to != me_phys or frm != me_phys:
            raise UsageError(f"sendrecv between cores needs their programs to run together; {RUN_RANKS_HINT}", loc)
        got = value
        key = ("single",)
    else:
        s = who.session
        n_send = s.next_call(("send", to, pipe_id))
        n_recv = s.next_call(("recv", frm, pipe_id))
        s.post(("sendrecv", chip, me_phys, to, pipe_id, n_send), value)
        got = s.collect(
            ("sendrecv", chip, frm, me_phys, pipe_id, n_recv),
            f"sendrecv from core {recv_from_rank} pipe {pipe_id} ({loc})",
        )
        key = ("sendrecv", chip, _stack(who)[1], pipe_id, s.next_call(("pipe", pipe_id)))
    params = {"dma_engine": dma_engine}
    issue(
        Opcode.SENDRECV,
        dst,
        {"src": src},
        None,
        loc,
        params=params,
        engine=engine,
        compute=(lambda: np.asarray(got)) if functional else None,
        label=f"sendrecv(->{send_to_rank}, <-{recv_from_rank})",
    )
    record_sync(who, len(who.ctx.machine.instructions) - 1, key)


def core_barrier(data: Any, cores: Any, engine: Engine | None, loc: str) -> None:
    data = require_tensor(data, "core_barrier data", loc)
    who = me()
    members = tuple(int(c) for c in cores) if isinstance(cores, tuple | list) else (int(cores),)
    chip, base, _, mine = _stack(who)
    phys = [_peer(who, c, "core_barrier cores", loc) for c in members]
    if base + mine not in phys:
        raise UsageError(f"core_barrier cores {members} do not include this core ({mine})", loc, rule="rank")
    key: tuple[Any, ...] = ("single",)
    if who.session is None:
        if len(set(phys)) > 1:
            raise UsageError(f"core_barrier between cores needs their programs to run together; {RUN_RANKS_HINT}", loc)
    else:
        s = who.session
        seq = s.next_call(("core_barrier", members))
        key = ("core_barrier", chip, base, members, seq)
        s.exchange(key, (chip, base + mine), [(chip, p) for p in phys], None, f"core_barrier {members} ({loc})")
    ins = issue(Opcode.CORE_BARRIER, data, {}, None, loc, engine=engine, label="core_barrier")
    if data.buffer is not MemoryKind.HBM:
        who.ctx.machine.warn(
            WarningText(
                f"{loc}: core_barrier on {data.alloc.describe()} in {data.buffer.upper()}: the NKI docs ask for the "
                "shared HBM tensor the cores synchronise on; trnsim orders the barrier after this core's writes to it",
                TrnsimWarning,
            )
        )
    # It reads `data` (it waits for this core's writes into it, and later writes wait for it) and writes
    # none of it: a write here would chain the partners' barriers one after the other.
    ins.reads, ins.writes = ins.writes, ()
    record_sync(who, len(who.ctx.machine.instructions) - 1, key)
