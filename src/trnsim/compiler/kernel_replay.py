"""Functional kernel invocations replayed from a recorded run (nki/functional_replay.py), kept in a bounded LRU.

The kernel runner (compiler/kernel_runner.py) gets an invocation's cost from the kernel cache, but in functional
mode it must still compute values, which used to mean tracing the kernel again: its Python, tile allocation,
rule checks and instruction records, for every instruction. Once the cost is cached, the invocation's next
functional run (kernel, argument signature, hardware) is recorded; later runs with new values replay only the
recorded numpy work. A kernel whose values or instruction stream could depend on data is refused at recording
(see functional_replay's docstring) and traced in full every time.

Switch: TRNSIM_REPLAY=0 turns it off (every functional invocation traced in full, as before).
Memory: a replay holds the storage of every tile its kernel touched; the store keeps at most
TRNSIM_REPLAY_MB megabytes (default 2048) and evicts the least recently used replay beyond that.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

from trnsim.errors import TrnsimError
from trnsim.nki import functional_replay, replay_recorder
from trnsim.nki.kernel import Kernel, trace

ENV = "TRNSIM_REPLAY"
ENV_MB = "TRNSIM_REPLAY_MB"
DEFAULT_MB = 2048


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def budget_bytes() -> int:
    try:
        return int(float(os.environ.get(ENV_MB, DEFAULT_MB)) * 2**20)
    except ValueError:
        return DEFAULT_MB * 2**20


class ReplayStore:
    """Replays by invocation key, least recently used first; refusals remembered (their reason) so a refused
    kernel is not recorded again."""

    def __init__(self) -> None:
        self.replays: OrderedDict[str, functional_replay.Replay] = OrderedDict()
        self.refused: dict[str, str] = {}
        self.nbytes = 0
        self.hits = 0
        self.recorded = 0
        self.evicted = 0

    def get(self, key: str) -> functional_replay.Replay | None:
        replay = self.replays.get(key)
        if replay is not None:
            self.replays.move_to_end(key)
        return replay

    def put(self, key: str, replay: functional_replay.Replay) -> None:
        budget = budget_bytes()
        if replay.nbytes > budget:
            self.refused[key] = f"its tiles need {replay.nbytes / 2**20:.0f} MB, over {ENV_MB}={budget / 2**20:.0f}"
            return
        self.drop(key)
        self.replays[key] = replay
        self.nbytes += replay.nbytes
        self.recorded += 1
        while self.nbytes > budget:
            old = next(iter(self.replays))
            self.drop(old)
            self.evicted += 1

    def drop(self, key: str) -> None:
        old = self.replays.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes

    def clear(self) -> None:
        self.replays.clear()
        self.refused.clear()
        self.nbytes = self.hits = self.recorded = self.evicted = 0


_STORE = ReplayStore()


def store() -> ReplayStore:
    return _STORE


def _key(key: str, kernel: Kernel) -> str:
    """The invocation key plus the kernel function's identity: two kernels made by one factory share a name (and
    a cost) but may compute different values. A replay holds its function, so the identity is not reused."""
    return f"{key}:{id(kernel.fn)}"


def replayed(key: str, kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any], spec: Any) -> tuple[bool, Any]:
    """(True, outputs) when a replay of the invocation, or a recording run of it, gave its values; (False, None):
    trace it in full. Called once the invocation's cost is in the kernel cache: a recording run keeps every tile's
    values until it ends, which changes when the simulated memory is freed, so its profile is never used; and
    when it fails (e.g. SBUF full of tiles it kept) or is refused, the full trace gives the outputs."""
    if not enabled():
        return False, None
    key = _key(key, kernel)
    replay = _STORE.get(key)
    if replay is not None:
        outputs = replay.run(args, kwargs)
        if not replay.warnings:
            _STORE.hits += 1
            return True, outputs
        _STORE.drop(key)  # a replay must not warn (its recording did not): trace in full from now on
        _STORE.refused[key] = f"its replay warned ({replay.warnings[0]})"
        return False, None
    if key in _STORE.refused:
        return False, None
    captured: list[Any] = []
    wrapped = Kernel(functional_replay.capturing(kernel.fn, captured), kernel.grid, kernel.platform_target)
    try:
        with replay_recorder.recording() as rec:
            traced = trace(wrapped, args, kwargs, target=spec, mode="functional", cores=1)
        outputs = traced.outputs()
    except TrnsimError as err:
        _STORE.refused[key] = f"its recording run failed ({type(err).__name__}: {err})"
        return False, None
    replay = functional_replay.finish(rec, traced, captured, args, kwargs)
    if replay is None:
        _STORE.refused[key] = rec.why or "not replayable"
        return False, None
    replay.pinned = kernel.fn
    _STORE.put(key, replay)
    return True, outputs
