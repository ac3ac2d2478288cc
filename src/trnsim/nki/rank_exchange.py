"""The kernel language's side of a multi-rank run: which rank this program is, exchanging values with the
other ranks' programs, and recording a sync instruction for the instance timing.

Outside a multi-rank run (a plain `kernel[grid](...)` launch) a kernel is rank 0 of a world of one: a
collective over rank 0 alone works; one that names other ranks says how to launch on several.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trnsim.errors import UsageError
from trnsim.isa.cost_rules import CostArgs
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.registry import RECORDS
from trnsim.nki.context import TraceContext, current
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.collective_costs import LinkTime
from trnsim.sim.instance import InstanceLayout
from trnsim.sim.memory import MemoryKind
from trnsim.sim.rank_session import RankSession, SyncPoint, current_session

RUN_RANKS_HINT = (
    "launch it on several ranks with trnsim.nki.run_ranks(kernel, [args of rank 0, args of rank 1, ...], target=...)"
)


@dataclass(frozen=True)
class Me:
    """The calling program: its rank, SPMD program, and (in a multi-rank run) its session and layout."""

    ctx: TraceContext
    rank: int
    program: int
    n_ranks: int
    session: RankSession | None
    layout: InstanceLayout | None
    launch: int


def me() -> Me:
    ctx = current()
    session = current_session()
    if session is None:
        return Me(ctx, 0, 0, 1, None, None, 0)
    w = session.me
    launch = session.launch_of(w)
    return Me(ctx, w.rank, w.program, len(launch.layout.ranks), session, launch.layout, w.launch)


def check_members(who: Me, members: Sequence[int], what: str, location: str) -> None:
    """Every member must be a rank of this run (another tenant's NeuronCore is an IsolationError)."""
    for r in members:
        if not isinstance(r, int) or r < 0:
            raise UsageError(f"{what}: ranks are non-negative integers, got {r!r}", location, rule="rank")
        if r < who.n_ranks:
            continue
        if who.session is None or who.layout is None:
            raise UsageError(f"{what} names rank {r} but this kernel runs as a single rank; {RUN_RANKS_HINT}", location)
        lay = who.layout
        first = lay.ranks[0].chip * lay.ranks_per_chip + lay.ranks[0].cores[0] // lay.lnc
        chip, slot = divmod(first + r, lay.ranks_per_chip)
        who.session.check_core(chip, slot * lay.lnc, location)  # another tenant's core: IsolationError
        raise UsageError(f"{what} names rank {r} but this run has ranks 0..{who.n_ranks - 1}", location, rule="rank")


def exchange(
    who: Me, kind: str, group: tuple[int, ...], payload: Any, location: str
) -> tuple[dict[int, Any], tuple[Any, ...]]:
    """Deposit `payload`, wait for the same (k-th) call of every rank in `group`: their payloads by rank, and
    the key that names this exchange (its sync point in the timing)."""
    if who.session is None:
        return {0: payload}, ("single", kind)
    seq = who.session.next_call((kind, group))
    key = ("rank-exchange", who.launch, kind, group, who.program, seq)
    members = [(r, who.program) for r in group]
    what = f"{kind} #{seq + 1} over ranks {list(group)} ({location})"
    box = who.session.exchange(key, (who.rank, who.program), members, payload, what)
    return {r: box[(r, who.program)] for r in group}, key


def emit_sync(
    who: Me,
    op: Opcode,
    reads: Sequence[NkiTensor],
    writes: Sequence[NkiTensor],
    location: str,
    label: str,
    engine: Engine = Engine.SYNC,
) -> int:
    """Issue the rank's sync instruction (isolation is checked here, before any value moves); its index."""
    machine = who.ctx.machine
    tiles = [*reads, *writes]
    ins = Instruction(
        opcode=op,
        engine=engine,
        core=who.ctx.core,
        reads=tuple(t.region() for t in reads),
        writes=tuple(t.region() for t in writes),
        cycles=RECORDS[op].cycles(machine.spec.core, engine, CostArgs()),
        touches_psum=any(t.buffer is MemoryKind.PSUM for t in tiles),
        touches_sbuf=any(t.buffer is MemoryKind.SBUF for t in tiles),
        location=location,
        label=label,
    )
    machine.emit(ins)
    return len(machine.instructions) - 1


def record_sync(who: Me, index: int, key: tuple[Any, ...], link: LinkTime | None = None) -> None:
    if who.session is not None:
        who.session.record_sync(index, SyncPoint(tuple(key), link or LinkTime()))
