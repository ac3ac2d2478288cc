"""Software pipelining for kernels written as a stream of work units.

Engines run in parallel but each executes its instructions in program order, so a loop body written
straight through (scores, then softmax, then the next matmul) leaves TensorE idle while ScalarE works on
the same tile. Here a kernel describes each unit of work as ops placed at pipeline stages; one new unit
starts per step, and in every step each unit in flight issues the ops of its current stage. Stage k of
unit t is then issued next to stage k-1 of unit t+1, so each engine's queue holds independent work from
neighbouring units: the modulo schedule hand-written NKI kernels use to overlap engines.

Within a step, ops are issued by (priority, age): a kernel puts an op that feeds another engine early in
its engine's step and the op consuming it late, so results are ready when needed. Two ops of different
units that touch the same state must sit in different steps, or be ordered by priority then age.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

Op = tuple[float, Callable[[], None]]  # (priority, issue)


class Unit(Protocol):
    def ops(self, stage: int) -> Sequence[Op]:
        """The ops to issue at `stage` (0 is the step the unit starts)."""

    @property
    def stages(self) -> int:
        """Number of stages; the unit retires after the last."""


def run_pipelined(units: Iterable[Unit]) -> None:
    """Run every unit to completion, starting one new unit per step and advancing all in flight."""
    inflight: list[tuple[Unit, int]] = []  # (unit, its next stage), oldest first
    source = iter(units)
    exhausted = False
    while True:
        if not exhausted:
            nxt = next(source, None)
            if nxt is None:
                exhausted = True
            else:
                inflight.append((nxt, 0))
        if not inflight:
            return
        issue: list[tuple[float, int, Callable[[], None]]] = []
        for age, (unit, stage) in enumerate(inflight):
            issue.extend((prio, age, fn) for prio, fn in unit.ops(stage))
        issue.sort(key=lambda x: (x[0], x[1]))
        for _, _, fn in issue:
            fn()
        inflight = [(u, s + 1) for u, s in inflight if s + 1 < u.stages]
