"""The profile of the latest compiled call, for `trnsim.last_profile()`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from trnsim.runtime.graph_profile import GraphProfile

_last: GraphProfile | None = None
_sinks: list[list[GraphProfile]] = []
_annotators: list[Callable[[GraphProfile], None]] = []


def add_profile_annotator(annotate: Callable[[GraphProfile], None]) -> None:
    """Call `annotate` on every profile as it is recorded (the compiler notes work Dynamo ran eagerly)."""
    if annotate not in _annotators:
        _annotators.append(annotate)


def set_last_profile(profile: GraphProfile) -> None:
    global _last
    for annotate in _annotators:
        annotate(profile)
    _last = profile
    for sink in _sinks:
        sink.append(profile)


@contextlib.contextmanager
def recording() -> Iterator[list[GraphProfile]]:
    """Collect every compiled call's profile made inside the block (e.g. forward and backward of a step)."""
    sink: list[GraphProfile] = []
    _sinks.append(sink)
    try:
        yield sink
    finally:
        _sinks.remove(sink)


def last_profile() -> GraphProfile | None:
    """The GraphProfile of the most recent call of a trnsim-compiled model (None before the first)."""
    return _last
