"""Fleet planning: from one replica's capacity to replicas, chips, racks, megawatts and dollars.

Sizing (the formulas the tests check):
  a unit is instances_per_replica instances holding replicas_per_instance replicas (one of the two is 1)
  by power budget B (facility W, or IT W with budget_basis="it"):
      units = floor(B_it / (instances_per_replica x P_srv_peak)),  B_it = B / PUE for a facility budget
      - power is provisioned for peak, so the budget is divided by peak server power
  by demand D tokens/s:
      units = ceil(D / unit_tokens_per_s)
  replicas = units x replicas_per_instance, instances = units x instances_per_replica
  racks = ceil(servers / servers_per_rack),  servers_per_rack = min(rack_max_servers, floor(rack_kW / P_srv_peak))
  $/year (instances) = instances x $/instance-hour x 8760
  $/year (energy)    = P_fac_average x 8760 h x $/kWh   (what running the servers yourself would add in power)
  $/Mtok = $/year / (served tokens/s x 3600 x 8760) x 1e6
  average power uses the busy fraction u: by default the load, D / (units x unit_tokens_per_s), or 1 for a
  power-budget plan (assumption: a replica serving at its capacity keeps its chips at full power).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from trnsim.cost.energy import ServerPower, check_fraction, check_positive, server_power
from trnsim.cost.errors import CostError
from trnsim.cost.power_table import PowerTable, load_power
from trnsim.cost.prices import PriceTable, load_prices
from trnsim.cost.pricing import HOURS_PER_YEAR, SECONDS_PER_HOUR
from trnsim.cost.units import format_power, parse_power


@dataclass(frozen=True)
class ReplicaCapacity:
    """What one model replica sustains within its SLO (from the serving simulator, or given by the user).

    A replica spans `instances_per_replica` whole instances, or, when it is smaller than one instance,
    `replicas_per_instance` replicas share each instance (at most one of the two is above 1). Fleets grow in
    units of max(1, instances_per_replica) instances.
    """

    tokens_per_s: float
    instance: str
    instances_per_replica: int = 1
    replicas_per_instance: int = 1

    def __post_init__(self) -> None:
        check_positive(self.tokens_per_s, "replica tokens_per_s")
        for field in ("instances_per_replica", "replicas_per_instance"):
            n = getattr(self, field)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise CostError(f"{field} must be a positive integer, got {n!r}")
        if self.instances_per_replica > 1 and self.replicas_per_instance > 1:
            raise CostError("a replica either spans instances or shares one; not both")

    @property
    def unit_tokens_per_s(self) -> float:
        """Capacity of one planning unit (instances_per_replica instances)."""
        return self.tokens_per_s * self.replicas_per_instance


@dataclass(frozen=True)
class CapacityPlan:
    """A sized fleet. MW figures: *_peak is what must be provisioned, *_average what is drawn at `utilization`."""

    sized_by: Literal["power", "demand"]
    instance: str
    accelerator: str
    cooling: str
    pue: float
    replicas: int
    instances: int
    chips: int
    servers_per_rack: int
    racks: int
    tokens_per_s: float  # served: the demand, or the full capacity for a power-budget plan
    capacity_tokens_per_s: float
    utilization: float
    it_mw_peak: float
    facility_mw_peak: float
    it_mw_average: float
    facility_mw_average: float
    usd_per_instance_hour: float
    price_basis: str
    instances_usd_per_year: float
    usd_per_kwh: float
    energy_usd_per_year: float
    usd_per_mtok: float
    energy_usd_per_mtok: float
    j_per_token: float
    power_budget_w: float | None = None
    budget_basis: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _servers_per_rack(server: ServerPower, power: PowerTable, cooling: str) -> int:
    rack = power.cooling_for(cooling)
    by_power = math.floor(rack.rack_kw.value * 1e3 / server.peak_w)
    if by_power < 1:
        raise CostError(
            f"one {server.instance} server draws {format_power(server.peak_w)} at peak, more than a "
            f"{rack.rack_kw.value:g} kW {cooling}-cooled rack supplies; choose another cooling "
            f"({', '.join(sorted(power.cooling))})"
        )
    return min(rack.rack_max_servers.value, by_power)


def _units_for_budget(budget_w: float, basis: str, pue: float, unit_peak_w: float) -> int:
    if basis not in ("facility", "it"):
        raise CostError(f"budget_basis must be 'facility' or 'it', got {basis!r}")
    it_budget = budget_w / pue if basis == "facility" else budget_w
    units = math.floor(it_budget / unit_peak_w)
    if units < 1:
        need = unit_peak_w * (pue if basis == "facility" else 1.0)
        raise CostError(
            f"a power budget of {format_power(budget_w)} ({basis}) is less than one instance group needs "
            f"({format_power(need)}); raise --power or use a smaller tp"
        )
    return units


def _units_for_demand(demand: float, per_unit: float) -> int:
    units = max(1, math.ceil(demand / per_unit))
    if units > 1 and (units - 1) * per_unit >= demand:  # guard against float round-up
        units -= 1
    return units


def plan(
    capacity: ReplicaCapacity,
    *,
    power_budget: str | float | None = None,
    tokens_per_s: float | None = None,
    cooling: str = "air",
    budget_basis: str = "facility",
    utilization: float | None = None,
    usd_per_hour: float | None = None,
    usd_per_kwh: float | None = None,
    prices: PriceTable | None = None,
    power: PowerTable | None = None,
) -> CapacityPlan:
    """Size a fleet of `capacity` replicas for a power budget ("2GW", W as a number) or a demand in tokens/s
    (exactly one). `utilization` (chip busy fraction for the energy figures) defaults to the load."""
    if (power_budget is None) == (tokens_per_s is None):
        raise CostError("give exactly one of a power budget (e.g. '2GW') or a demand in tokens/s")
    prices = prices or load_prices()
    power = power or load_power()
    entry = prices.instance(capacity.instance)
    server = server_power(capacity.instance, prices, power)
    pue = power.cooling_for(cooling).pue.value
    unit_peak_w = server.peak_w * capacity.instances_per_replica

    budget_w: float | None = None
    if power_budget is not None:
        budget_w = parse_power(power_budget)
        units = _units_for_budget(budget_w, budget_basis, pue, unit_peak_w)
        capacity_tps = float(units * capacity.unit_tokens_per_s)
        served, load = capacity_tps, 1.0
    else:
        assert tokens_per_s is not None
        check_positive(tokens_per_s, "tokens_per_s (demand)")
        units = _units_for_demand(tokens_per_s, capacity.unit_tokens_per_s)
        capacity_tps = float(units * capacity.unit_tokens_per_s)
        served, load = tokens_per_s, min(1.0, tokens_per_s / capacity_tps)
    u = load if utilization is None else utilization
    check_fraction(u, "utilization")

    instances = units * capacity.instances_per_replica
    per_rack = _servers_per_rack(server, power, cooling)
    it_peak_w = instances * server.peak_w
    it_avg_w = instances * server.watts(u)
    hourly = entry.usd_per_hour if usd_per_hour is None else usd_per_hour
    check_positive(hourly, "usd_per_hour")
    kwh_price = power.electricity.usd_per_kwh.value if usd_per_kwh is None else usd_per_kwh
    check_positive(kwh_price, "usd_per_kwh")
    instances_usd = instances * hourly * HOURS_PER_YEAR
    energy_usd = it_avg_w * pue / 1e3 * HOURS_PER_YEAR * kwh_price
    mtok_per_year = served * SECONDS_PER_HOUR * HOURS_PER_YEAR / 1e6
    return CapacityPlan(
        sized_by="power" if budget_w is not None else "demand",
        instance=capacity.instance,
        accelerator=entry.accelerator,
        cooling=cooling,
        pue=pue,
        replicas=units * capacity.replicas_per_instance,
        instances=instances,
        chips=instances * entry.accelerators,
        servers_per_rack=per_rack,
        racks=math.ceil(instances / per_rack),
        tokens_per_s=served,
        capacity_tokens_per_s=capacity_tps,
        utilization=u,
        it_mw_peak=it_peak_w / 1e6,
        facility_mw_peak=it_peak_w * pue / 1e6,
        it_mw_average=it_avg_w / 1e6,
        facility_mw_average=it_avg_w * pue / 1e6,
        usd_per_instance_hour=hourly,
        price_basis=entry.basis if usd_per_hour is None else "user",
        instances_usd_per_year=instances_usd,
        usd_per_kwh=kwh_price,
        energy_usd_per_year=energy_usd,
        usd_per_mtok=instances_usd / mtok_per_year,
        energy_usd_per_mtok=energy_usd / mtok_per_year,
        j_per_token=it_avg_w * pue / served,
        power_budget_w=budget_w,
        budget_basis=budget_basis if budget_w is not None else None,
    )
