"""Errors of the cost and fleet-planning package."""

from __future__ import annotations

from trnsim.errors import TrnsimError


class CostError(TrnsimError):
    """Bad cost/power input: an unknown instance, a malformed prices file, an impossible plan, a bad unit."""
