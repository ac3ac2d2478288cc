"""Data dependencies between instructions (read after write), recomputed from the regions they touch.

The scheduler orders instructions by these conflicts but keeps only times; a trace wants the edges,
to draw them as flow arrows. Program order is the scheduler's (cores interleaved).
"""

from __future__ import annotations

from trnsim.isa.instruction import Instruction
from trnsim.sim.scheduler import interleave_cores

Box = tuple[int, int, int, int, int, int]


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3] and a[4] < b[5] and b[4] < a[5]


def _covers(outer: Box, inner: Box) -> bool:
    return all(outer[k] <= inner[k] and inner[k + 1] <= outer[k + 1] for k in (0, 2, 4))


def read_after_write(instructions: list[Instruction], n_cores: int) -> list[tuple[int, int]]:
    """(producer, consumer) pairs: the consumer reads bytes the producer was the last to write."""
    live_writes: dict[int, list[tuple[Box, int]]] = {}  # allocation -> writes not yet overwritten
    edges: list[tuple[int, int]] = []
    for i in interleave_cores(instructions, n_cores):
        ins = instructions[i]
        producers: set[int] = set()
        for r in ins.reads:
            box: Box = r[1:]
            for wbox, w in live_writes.get(r[0], ()):
                if w != i and _overlap(box, wbox):
                    producers.add(w)
        edges.extend((p, i) for p in sorted(producers))
        for r in ins.writes:
            box = r[1:]
            kept = [(b, w) for b, w in live_writes.get(r[0], ()) if not _covers(box, b)]
            kept.append((box, i))
            live_writes[r[0]] = kept
    return edges
