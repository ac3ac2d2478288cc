"""The allocator's placement (sim/memory.py `_place`: gaps tried in address order as they are found) gives
the addresses of the plain algorithm it replaced: every gap listed, then the first that avoids the recent
frees, else the first that fits. Compared on whole kernels' streams, allocation offsets and timelines."""

from __future__ import annotations

from typing import Any

import pytest

from trnsim.sim.memory import MemorySpace

from .test_trace_equivalence import _timing_trace, stream_digest


def _reference_place(self: Any, size: int) -> int | None:
    gaps: list[tuple[int, int]] = []
    cursor = 0
    for off in sorted(self._live):
        if off > cursor:
            gaps.append((cursor, off))
        cursor = max(cursor, off + self._live[off][0])
    if cursor < self.capacity:
        gaps.append((cursor, self.capacity))
    fitting = [(lo, hi) for lo, hi in gaps if hi - lo >= size]
    if not fitting:
        return None
    recent = list(self._recent)
    for lo, hi in fitting:
        for start in sorted({lo, *(e for _, e in recent if lo < e < hi)}):
            end = start + size
            if end <= hi and all(end <= r0 or r1 <= start for r0, r1 in recent):
                return start
    return fitting[0][0]


@pytest.mark.parametrize("name", ["flash_causal", "matmul_grouped_v", "conv2d"])
def test_placement_matches_reference(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = stream_digest(_timing_trace(name, "trn2"))
    monkeypatch.setattr(MemorySpace, "_place", _reference_place)
    assert stream_digest(_timing_trace(name, "trn2")) == fast
