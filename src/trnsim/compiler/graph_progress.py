"""Progress of a graph run: which of its operations have been lowered and simulated so far.

A cold estimate at model scale simulates each kernel invocation it has not seen before, which can take
minutes; a caller (the `trnsim estimate` command) passes a callback to show how far the run is. The executor
reports after each operation of each graph it runs (a training step or a folded model may run several).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

ProgressFn = Callable[[int, int], None]  # (operations done, operations in this graph)

_CALLBACK: ContextVar[ProgressFn | None] = ContextVar("trnsim_graph_progress", default=None)


@contextlib.contextmanager
def graph_progress(callback: ProgressFn | None) -> Iterator[None]:
    """Within the block, every graph run calls `callback(done, total)` after each of its operations."""
    token = _CALLBACK.set(callback)
    try:
        yield
    finally:
        _CALLBACK.reset(token)


def progress_callback() -> ProgressFn | None:
    return _CALLBACK.get()
