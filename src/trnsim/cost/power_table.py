"""Chip and server power, cooling (PUE, rack limits) and electricity price (power.toml), validated.

Every number is a {value, source} pair so a plan can show where each input came from.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from trnsim.cost.errors import CostError
from trnsim.cost.toml_files import merge, read_toml, validate

POWER_FILE = Path(__file__).parent / "power.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sourced(_Strict):
    value: PositiveFloat
    source: str = Field(min_length=1)


class SourcedCount(_Strict):
    value: PositiveInt
    source: str = Field(min_length=1)


class SourcedFraction(_Strict):
    value: float = Field(ge=0.0, lt=1.0)
    source: str = Field(min_length=1)


class SourcedPue(_Strict):
    value: float = Field(ge=1.0, description="facility power / IT power")
    source: str = Field(min_length=1)


class Cooling(_Strict):
    pue: SourcedPue
    rack_kw: Sourced
    rack_max_servers: SourcedCount


class Idle(_Strict):
    fraction: SourcedFraction


class Electricity(_Strict):
    usd_per_kwh: Sourced


class PowerTable(_Strict):
    chips: dict[str, Sourced] = Field(description="accelerator power at full load, W per chip")
    idle: Idle
    server_overhead_w: dict[str, Sourced] = Field(description="host power per server (instance), W")
    cooling: dict[str, Cooling]
    electricity: Electricity

    def chip_w(self, accelerator: str) -> float:
        entry = self.chips.get(accelerator)
        if entry is None:
            raise CostError(
                f"no power figure for accelerator {accelerator!r}; known: {', '.join(sorted(self.chips))}. "
                f'Add [chips] {accelerator} = {{ value = WATTS, source = "..." }} in a power file (--power-table)'
            )
        return entry.value

    def overhead_w(self, instance: str) -> float:
        entry = self.server_overhead_w.get(instance)
        if entry is None:
            raise CostError(
                f"no server overhead power for instance {instance!r}; known: "
                f'{", ".join(sorted(self.server_overhead_w))}. Add [server_overhead_w] "{instance}" = '
                '{ value = WATTS, source = "..." } in a power file (--power-table)'
            )
        return entry.value

    def cooling_for(self, name: str) -> Cooling:
        entry = self.cooling.get(name)
        if entry is None:
            raise CostError(f"unknown cooling {name!r}; allowed: {', '.join(sorted(self.cooling))}")
        return entry


@cache
def _builtin() -> tuple[dict[str, Any], str]:
    return read_toml(POWER_FILE, "power")


def load_power(path: str | Path | None = None) -> PowerTable:
    """The built-in power table, with a user's TOML (same layout as power.toml) laid over it. A number the user
    gives must come with its own source: {value, source} pairs are replaced whole, never merged."""
    data, text = _builtin()
    texts = {str(POWER_FILE): text}
    origin = f"power table ({POWER_FILE})"
    if path is not None:
        user_path = Path(path)
        user, user_text = read_toml(user_path, "power")
        data = merge(data, user, leaf="value")
        texts[str(user_path)] = user_text
        origin = f"power table ({POWER_FILE} overridden by {user_path})"
    table: PowerTable = validate(PowerTable, data, origin, texts)
    return table
