"""Parsing power quantities written the way people write them: "2GW", "500 MW", "1.5 kW", "750W", "2e9"."""

from __future__ import annotations

import math
import re

from trnsim.cost.errors import CostError

# SI prefixes for power. Case-insensitive, so "m" means mega: nobody plans a data center in milliwatts.
PREFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}

_QUANTITY = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*(?:([kmgt]?)w)?\s*$", re.IGNORECASE)


def parse_power(text: str | float | int) -> float:
    """Watts from "2GW", "500MW", "1.5 kW", "750 W", "750" (a bare number is watts), or a number."""
    if isinstance(text, bool):
        raise CostError(f"power must be a quantity like '2GW', got {text!r}")
    if isinstance(text, int | float):
        watts = float(text)
    else:
        match = _QUANTITY.match(text)
        if match is None:
            raise CostError(
                f"cannot read power {text!r}; write a number with an optional unit W, kW, MW, GW or TW, e.g. '2GW', "
                "'500 MW', '1.5kW'"
            )
        watts = float(match.group(1)) * PREFIXES[(match.group(2) or "").lower()]
    if not math.isfinite(watts) or watts <= 0:
        raise CostError(f"power must be a positive, finite quantity, got {text!r}")
    return watts


def format_power(watts: float) -> str:
    """'2 GW', '512 kW', '1.5 MW': the largest prefix that keeps the number at or above 1."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(watts) >= scale:
            return f"{watts / scale:.4g} {prefix}W"
    return f"{watts:.4g} W"
