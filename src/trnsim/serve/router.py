"""Which replica a new request goes to: round-robin, or the one with the fewest outstanding requests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from trnsim.serve.errors import ServeError


class HasOutstanding(Protocol):
    outstanding: int


class RoundRobin:
    def __init__(self) -> None:
        self._next = 0

    def pick(self, replicas: Sequence[HasOutstanding]) -> int:
        i = self._next % len(replicas)
        self._next = i + 1
        return i


class LeastOutstanding:
    """The replica with the fewest routed-but-unfinished requests; ties go round-robin so idle replicas share."""

    def __init__(self) -> None:
        self._start = 0

    def pick(self, replicas: Sequence[HasOutstanding]) -> int:
        n = len(replicas)
        best, best_load = -1, 0
        for step in range(n):
            i = (self._start + step) % n
            load = replicas[i].outstanding
            if best < 0 or load < best_load:
                best, best_load = i, load
        self._start = best + 1
        return best


Router = RoundRobin | LeastOutstanding
ROUTERS: dict[str, type[RoundRobin] | type[LeastOutstanding]] = {
    "round-robin": RoundRobin,
    "least-outstanding": LeastOutstanding,
}


def make_router(name: str) -> Router:
    if name not in ROUTERS:
        raise ServeError(f"unknown router {name!r}; choose one of: {', '.join(ROUTERS)}")
    return ROUTERS[name]()
