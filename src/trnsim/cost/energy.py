"""Server power and energy per token.

Model (stated so it can be checked, nanoGPT-style):
    chip power    P_chip(u) = P_max x (f + u x (1 - f))     f = idle fraction, u = busy fraction in [0, 1]
    server power  P_srv(u)  = P_overhead + chips x P_chip(u) (host power taken as constant with load)
    facility      P_fac     = P_srv x PUE                    (PUE of the cooling method)
    energy/token  J/token   = P_fac x instances / tokens_per_s
Every input comes from power.toml / prices.toml, each with its source or marked assumption.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trnsim.cost.errors import CostError
from trnsim.cost.power_table import PowerTable, load_power
from trnsim.cost.prices import PriceTable, load_prices


@dataclass(frozen=True)
class ServerPower:
    """Power model of one server (= one instance of the big sizes trnsim prices), watts."""

    instance: str
    chips: int
    chip_max_w: float
    idle_fraction: float
    overhead_w: float

    def watts(self, utilization: float) -> float:
        """IT power at busy fraction `utilization` (0 = powered but idle, 1 = every chip at full power)."""
        check_fraction(utilization, "utilization")
        f = self.idle_fraction
        return self.overhead_w + self.chips * self.chip_max_w * (f + utilization * (1.0 - f))

    @property
    def peak_w(self) -> float:
        return self.watts(1.0)


def check_fraction(value: float, name: str) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise CostError(f"{name} must be a fraction between 0 and 1, got {value!r}")


def check_positive(value: float, name: str) -> None:
    if isinstance(value, bool) or not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise CostError(f"{name} must be a positive number, got {value!r}")


def server_power(instance: str, prices: PriceTable | None = None, power: PowerTable | None = None) -> ServerPower:
    prices = prices or load_prices()
    power = power or load_power()
    entry = prices.instance(instance)
    return ServerPower(
        instance=instance,
        chips=entry.accelerators,
        chip_max_w=power.chip_w(entry.accelerator),
        idle_fraction=power.idle.fraction.value,
        overhead_w=power.overhead_w(instance),
    )


def joules_per_token(
    tokens_per_s: float,
    instance: str,
    utilization: float = 1.0,
    cooling: str = "air",
    *,
    instances: int = 1,
    prices: PriceTable | None = None,
    power: PowerTable | None = None,
) -> float:
    """Facility energy per generated token (J) when `instances` servers of `instance` together produce
    `tokens_per_s` with their chips busy a fraction `utilization` of the time, cooled by `cooling`."""
    check_positive(tokens_per_s, "tokens_per_s")
    if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
        raise CostError(f"instances must be a positive integer, got {instances!r}")
    power = power or load_power()
    pue = power.cooling_for(cooling).pue.value
    it_w = server_power(instance, prices, power).watts(utilization) * instances
    return it_w * pue / tokens_per_s
