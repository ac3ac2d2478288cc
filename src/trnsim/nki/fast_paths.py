"""The switch for tracing's shortcuts: results the trace would compute the same way again, computed once.

Tracing runs the kernel's Python once per instruction it issues; the shortcuts behind this switch skip work
whose result is already known (an access pattern's bounds from its steps and counts instead of a walk of
its index arrays). Each must give the byte-identical instruction stream: `TRNSIM_TRACE_SHORTCUTS=0` (or
`disabled()`, for tests comparing both paths in one process) turns them all off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_state = {"on": os.environ.get("TRNSIM_TRACE_SHORTCUTS", "1") != "0"}


def enabled() -> bool:
    return _state["on"]


@contextmanager
def disabled() -> Iterator[None]:
    """Trace without the shortcuts inside the block (the full computation every time)."""
    before = _state["on"]
    _state["on"] = False
    try:
        yield
    finally:
        _state["on"] = before
