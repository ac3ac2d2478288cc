"""The profile of the latest compiled call, for `trnsim.last_profile()`."""

from __future__ import annotations

from trnsim.runtime.graph_profile import GraphProfile

_last: GraphProfile | None = None


def set_last_profile(profile: GraphProfile) -> None:
    global _last
    _last = profile


def last_profile() -> GraphProfile | None:
    """The GraphProfile of the most recent call of a trnsim-compiled model (None before the first)."""
    return _last
