"""Many cores traced together: one thread per core, run one at a time in a fixed order.

A kernel on several ranks needs values from the other ranks at its collectives (and from the other core of
an LNC=2 pair at `sendrecv` / `core_barrier`). Each core's program runs in its own thread, but only one
thread runs at any time: a thread gives the turn back only when it must wait for others (`wait_until`), and
the runner then resumes the next core, in core order, whose wait is over. So tracing is deterministic and
the simulator's memory spaces are never touched by two threads at once. When every unfinished core waits
for something no core will do, that is a mismatch in the kernel (a rank that skips a collective): an error
naming who waits for what.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from trnsim.errors import TrnsimError, UsageError

# How long the runner waits for a core's thread to give the turn back before calling it stuck. Tracing a
# kernel program between two collectives takes milliseconds; this only guards against a hung thread.
_TURN_TIMEOUT_S = 600.0


class _Aborted(BaseException):
    """Raised inside a waiting core's thread when another core failed: it unwinds and stops."""


class Cooperative:
    """Runs one task per core; `names[i]` says which core task i is (for messages)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        n = len(self.names)
        self._go = [threading.Event() for _ in range(n)]
        self._back = threading.Event()
        self._waits: dict[int, tuple[Callable[[], bool], str]] = {}
        self._done = [False] * n
        self._results: list[Any] = [None] * n
        self._error: BaseException | None = None
        self._abort = False
        self._local = threading.local()

    # -- inside a task --------------------------------------------------------------------------------
    def wait_until(self, ready: Callable[[], bool], what: str) -> None:
        """Give the turn back until `ready()` holds; `what` describes the wait (for a mismatch error)."""
        me: int = self._local.index
        while not ready():
            self._waits[me] = (ready, what)
            self._back.set()
            self._go[me].wait()
            self._go[me].clear()
            if self._abort:
                raise _Aborted
        self._waits.pop(me, None)

    # -- the runner -------------------------------------------------------------------------------------
    def run(self, tasks: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run every task to its end; the first error any of them raised is raised here."""
        threads = [
            threading.Thread(target=self._worker, args=(i, t), name=f"trnsim {self.names[i]}", daemon=True)
            for i, t in enumerate(tasks)
        ]
        for th in threads:
            th.start()
        last = -1
        n = len(tasks)
        while not all(self._done):
            nxt = self._next_runnable(last, n)
            if nxt is None:
                self._error = self._error or self._mismatch()
                break
            last = nxt
            self._resume(nxt)
            if self._error is not None:
                break
        if self._error is not None:
            self._stop_all()
            for th in threads:
                th.join(timeout=5)
            raise self._error
        for th in threads:
            th.join()
        return self._results

    def _next_runnable(self, last: int, n: int) -> int | None:
        for k in range(1, n + 1):
            i = (last + k) % n
            if self._done[i]:
                continue
            wait = self._waits.get(i)
            if wait is None or wait[0]():
                return i
        return None

    def _resume(self, i: int) -> None:
        self._back.clear()
        self._go[i].set()
        if not self._back.wait(_TURN_TIMEOUT_S):
            self._error = UsageError(f"{self.names[i]} did not give the turn back in {_TURN_TIMEOUT_S:.0f} s")

    def _worker(self, i: int, task: Callable[[], Any]) -> None:
        self._local.index = i
        self._go[i].wait()
        self._go[i].clear()
        try:
            if not self._abort:
                self._results[i] = task()
        except _Aborted:
            pass
        except BaseException as err:  # handed to the runner, which raises it in the caller's thread
            if self._error is None:
                self._error = err
        finally:
            self._done[i] = True
            self._back.set()

    def _stop_all(self) -> None:
        self._abort = True
        for i, done in enumerate(self._done):
            if not done:
                self._back.clear()
                self._go[i].set()
                self._back.wait(5)

    def _mismatch(self) -> TrnsimError:
        waiting = "; ".join(f"{self.names[i]} waits at {what}" for i, (_, what) in sorted(self._waits.items()))
        finished = [self.names[i] for i, d in enumerate(self._done) if d]
        tail = f"; finished: {', '.join(finished)}" if finished else ""
        return UsageError(
            f"the ranks' collectives do not match: {waiting}{tail}. Every rank of a replica group must call "
            "the same collectives in the same order (and both cores of a sendrecv/core_barrier pair)",
            rule="collective-mismatch",
        )
