"""Errors of the sweep tool. Each says what was wrong, what is allowed, and what to change."""

from __future__ import annotations

from trnsim.errors import TrnsimError


class SweepError(TrnsimError):
    """A sweep space, a sweep file or a sweep run the tool cannot use (unknown field, bad value, no backend)."""
