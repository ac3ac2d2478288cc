"""One simulation of kernels on many ranks: who is where, the values ranks exchange, and the sync points.

A session holds one or more launches (one per tenant: a kernel on a range of NeuronCores), one worker per
(launch, rank, SPMD program), and the mailboxes through which workers exchange values at collectives,
`sendrecv` and `core_barrier`. Every such call is a sync point: the k-th call of each participant matches
the k-th call of the others, the instructions start together on the simulated clock (the latest arrival
decides) and take the link time of the exchange (sim/instance_timing.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trnsim.errors import IsolationError
from trnsim.sim.collective_costs import LinkTime
from trnsim.sim.cooperative import Cooperative
from trnsim.sim.instance import InstanceLayout
from trnsim.sim.machine import Machine


@dataclass(frozen=True)
class SyncPoint:
    """An instruction that waits for its partners (the same `key` on each), then takes `link` once all have
    arrived."""

    key: tuple[Any, ...]
    link: LinkTime


@dataclass(frozen=True)
class Worker:
    launch: int
    rank: int
    program: int  # SPMD program index within the rank
    core: int  # the rank's core (0..LNC-1) the program runs on


@dataclass
class Launch:
    """One kernel on one range of ranks (a tenant's NeuronCores)."""

    layout: InstanceLayout
    tenant: str
    machines: Sequence[Machine]
    # per rank: instruction index -> its sync point
    syncs: list[dict[int, SyncPoint]] = field(default_factory=list)


class RankSession:
    def __init__(self, launches: Sequence[Launch], workers: Sequence[Worker]) -> None:
        self.launches = list(launches)
        self.workers = list(workers)
        self.coop = Cooperative([self.describe(w) for w in workers])
        self._local = threading.local()
        self._boxes: dict[tuple[Any, ...], dict[Any, Any]] = {}
        self._counts: dict[tuple[Any, ...], int] = {}
        # alloc id -> tenant, for the isolation check
        self.owner: dict[int, str] = {}
        # (chip, physical core) -> launch index, for sendrecv/core_barrier partners and the isolation check
        self.core_owner: dict[tuple[int, int], int] = {}
        for i, ln in enumerate(self.launches):
            for place in ln.layout.ranks:
                for c in place.cores:
                    self.core_owner[(place.chip, c)] = i

    def describe(self, w: Worker) -> str:
        tenant = self.launches[w.launch].tenant
        who = f"tenant {tenant!r} rank {w.rank}" if tenant else f"rank {w.rank}"
        return who + (f" program {w.program}" if w.program else "")

    # -- the worker running in this thread ---------------------------------------------------------------
    def run(self, tasks: Sequence[Callable[[], Any]]) -> list[Any]:
        def bound(w: Worker, task: Callable[[], Any]) -> Callable[[], Any]:
            def go() -> Any:
                self._local.worker = w
                _current.session = self
                return task()

            return go

        return self.coop.run([bound(w, t) for w, t in zip(self.workers, tasks)])

    @property
    def me(self) -> Worker:
        w: Worker = self._local.worker
        return w

    def launch_of(self, w: Worker) -> Launch:
        return self.launches[w.launch]

    # -- exchanging values -------------------------------------------------------------------------------
    def next_call(self, what: tuple[Any, ...]) -> int:
        """How many calls of `what` this worker made before this one (its sequence number for matching)."""
        key = (self.me, *what)
        n = self._counts.get(key, 0)
        self._counts[key] = n + 1
        return n

    def exchange(
        self, key: tuple[Any, ...], me: Any, members: Sequence[Any], payload: Any, what: str
    ) -> dict[Any, Any]:
        """Put `payload` in the mailbox `key` and wait until every member has put theirs; all payloads."""
        box = self._boxes.setdefault(key, {})
        box[me] = payload
        self.coop.wait_until(lambda: all(m in box for m in members), what)
        return box

    def post(self, key: tuple[Any, ...], payload: Any) -> None:
        """Leave `payload` in mailbox `key` for whoever collects it (a send that does not wait)."""
        self._boxes.setdefault(key, {})[None] = payload

    def collect(self, key: tuple[Any, ...], what: str) -> Any:
        """Wait until mailbox `key` holds a payload, and take it."""
        box = self._boxes.setdefault(key, {})
        self.coop.wait_until(lambda: None in box, what)
        return box[None]

    def record_sync(self, instruction_index: int, point: SyncPoint) -> None:
        w = self.me
        self.launches[w.launch].syncs[w.rank][instruction_index] = point

    # -- isolation -----------------------------------------------------------------------------------------
    def check_owner(self, alloc_id: int, location: str | None) -> None:
        """Raise IsolationError when this worker's tenant touches memory another tenant allocated."""
        mine = self.launch_of(self.me).tenant
        theirs = self.owner.get(alloc_id, mine)
        if theirs != mine:
            raise IsolationError(
                f"tenant {mine!r} addressed memory of tenant {theirs!r}: a tenant may only touch the memory of "
                "its own NeuronCores",
                location,
                rule="isolation",
            )

    def check_core(self, chip: int, core: int, location: str | None) -> int | None:
        """The launch that owns a physical core (None: no launch of this run); another tenant's core is an
        IsolationError."""
        me = self.me
        owner = self.core_owner.get((chip, core))
        if owner is not None and owner != me.launch:
            raise IsolationError(
                f"tenant {self.launches[me.launch].tenant!r} addressed NeuronCore {core} of chip {chip}, which "
                f"belongs to tenant {self.launches[owner].tenant!r}",
                location,
                rule="isolation",
            )
        return owner


class _Current(threading.local):
    session: RankSession | None = None


_current = _Current()


def current_session() -> RankSession | None:
    """The session the calling worker thread belongs to (None outside a multi-rank run)."""
    return _current.session
