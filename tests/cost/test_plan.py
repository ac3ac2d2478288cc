"""Fleet plans against the closed forms and their defining inequalities, on fresh random inputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from trnsim.cost import (
    CapacityPlan,
    CostError,
    ReplicaCapacity,
    joules_per_token,
    load_power,
    load_prices,
    plan,
    usd_per_mtok,
)

HOURS = 8760.0


def _expected_server(name: str, u: float) -> tuple[float, float]:
    """(peak W, W at busy fraction u) of one server, written out from the tables."""
    prices, power = load_prices(), load_power()
    entry = prices.instance(name)
    chip, f = power.chips[entry.accelerator].value, power.idle.fraction.value
    overhead = power.server_overhead_w[name].value
    return overhead + entry.accelerators * chip, overhead + entry.accelerators * chip * (f + u * (1 - f))


def _random_cooling(rng: np.random.Generator, instance: str) -> str:
    """A cooling whose rack can hold one server of `instance` (an UltraServer needs liquid-cooled racks)."""
    peak, _ = _expected_server(instance, 1.0)
    fits = [c for c, spec in load_power().cooling.items() if spec.rack_kw.value * 1e3 >= peak]
    return str(rng.choice(sorted(fits)))


def _random_capacity(rng: np.random.Generator) -> ReplicaCapacity:
    racks_kw = max(spec.rack_kw.value for spec in load_power().cooling.values())
    # a Trn3 Gen2 UltraServer (144 chips, ~180 kW) spans racks, which the planner refuses (one clear error)
    fits = [n for n in sorted(load_prices().instances) if _expected_server(n, 1.0)[0] <= racks_kw * 1e3]
    name = str(rng.choice(fits))
    spread = int(rng.integers(1, 5))
    if rng.integers(2):
        return ReplicaCapacity(float(rng.uniform(50, 2e4)), name, instances_per_replica=spread)
    return ReplicaCapacity(float(rng.uniform(50, 2e4)), name, replicas_per_instance=spread)


def _unit_tps(cap: ReplicaCapacity) -> float:
    return cap.tokens_per_s * cap.replicas_per_instance


def _check_common(f: CapacityPlan, cap: ReplicaCapacity, cooling: str, u: float) -> None:
    prices, power = load_prices(), load_power()
    entry = prices.instance(cap.instance)
    pue = power.cooling[cooling].pue.value
    peak, avg = _expected_server(cap.instance, u)
    units = f.replicas // cap.replicas_per_instance
    assert f.replicas == units * cap.replicas_per_instance and f.instances == units * cap.instances_per_replica
    assert f.chips == f.instances * entry.accelerators
    rack = power.cooling[cooling]
    per_rack = min(rack.rack_max_servers.value, math.floor(rack.rack_kw.value * 1e3 / peak))
    assert f.servers_per_rack == per_rack
    assert (f.racks - 1) * per_rack < f.instances <= f.racks * per_rack
    assert f.it_mw_peak == pytest.approx(f.instances * peak / 1e6, rel=1e-12)
    assert f.facility_mw_average == pytest.approx(f.instances * avg * pue / 1e6, rel=1e-12)
    yearly = f.instances * entry.usd_per_hour * HOURS
    assert f.instances_usd_per_year == pytest.approx(yearly, rel=1e-12)
    energy = f.instances * avg * pue / 1e3 * HOURS * power.electricity.usd_per_kwh.value
    assert f.energy_usd_per_year == pytest.approx(energy, rel=1e-12)
    tokens_per_year = f.tokens_per_s * 3600 * HOURS
    assert f.usd_per_mtok == pytest.approx(yearly / tokens_per_year * 1e6, rel=1e-12)
    # The plan agrees with the single-number functions.
    assert f.usd_per_mtok == pytest.approx(usd_per_mtok(f.tokens_per_s, cap.instance, instances=f.instances), rel=1e-12)
    jpt = joules_per_token(f.tokens_per_s, cap.instance, u, cooling, instances=f.instances)
    assert f.j_per_token == pytest.approx(jpt, rel=1e-12)


def test_power_budget_plans(rng: np.random.Generator) -> None:
    for _ in range(40):
        cap = _random_capacity(rng)
        cooling = _random_cooling(rng, cap.instance)
        basis = str(rng.choice(["facility", "it"]))
        budget = float(10 ** rng.uniform(6, 9.5))
        fleet = plan(cap, power_budget=budget, cooling=cooling, budget_basis=basis)
        pue = load_power().cooling[cooling].pue.value
        peak, _ = _expected_server(cap.instance, 1.0)
        unit_w = peak * cap.instances_per_replica * (pue if basis == "facility" else 1.0)
        units = fleet.instances // cap.instances_per_replica
        assert units * unit_w <= budget * (1 + 1e-12) < (units + 1) * unit_w
        assert fleet.tokens_per_s == pytest.approx(fleet.replicas * cap.tokens_per_s, rel=1e-12)
        assert fleet.utilization == 1.0 and fleet.sized_by == "power"
        _check_common(fleet, cap, cooling, 1.0)


def test_demand_plans(rng: np.random.Generator) -> None:
    for _ in range(40):
        cap = _random_capacity(rng)
        cooling = _random_cooling(rng, cap.instance)
        demand = float(10 ** rng.uniform(2, 7))
        fleet = plan(cap, tokens_per_s=demand, cooling=cooling)
        units = fleet.instances // cap.instances_per_replica
        assert (units - 1) * _unit_tps(cap) < demand <= units * _unit_tps(cap) * (1 + 1e-12)
        u = demand / (units * _unit_tps(cap))
        assert fleet.utilization == pytest.approx(u, rel=1e-12) and fleet.tokens_per_s == demand
        _check_common(fleet, cap, cooling, u)


def test_power_budget_strings_and_overrides() -> None:
    cap = ReplicaCapacity(1000.0, "trn2.48xlarge", 1)
    assert plan(cap, power_budget="2GW") == plan(cap, power_budget=2e9)
    fleet = plan(cap, tokens_per_s=1e4, usd_per_hour=10.0, usd_per_kwh=0.2, utilization=0.5)
    assert fleet.price_basis == "user" and fleet.usd_per_instance_hour == 10.0 and fleet.usd_per_kwh == 0.2
    assert fleet.instances_usd_per_year == pytest.approx(10 * 10.0 * HOURS)
    _, avg = _expected_server("trn2.48xlarge", 0.5)
    pue = load_power().cooling["air"].pue.value
    assert fleet.energy_usd_per_year == pytest.approx(10 * avg * pue / 1e3 * HOURS * 0.2)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({}, "exactly one"),
        ({"power_budget": "1GW", "tokens_per_s": 5.0}, "exactly one"),
        ({"power_budget": "5 kW"}, "less than one instance group needs"),
        ({"power_budget": "1GW", "budget_basis": "grid"}, "budget_basis"),
        ({"tokens_per_s": -1.0}, "positive"),
        ({"tokens_per_s": 10.0, "cooling": "oil"}, "unknown cooling"),
        ({"tokens_per_s": 10.0, "utilization": 2.0}, "fraction"),
    ],
)
def test_bad_plans(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(CostError, match=pattern):
        plan(ReplicaCapacity(100.0, "p5.48xlarge", 1), **kwargs)  # type: ignore[arg-type]


def test_server_bigger_than_a_rack(tmp_path: Path) -> None:
    path = tmp_path / "power.toml"
    path.write_text('[cooling.air]\nrack_kw = { value = 5.0, source = "a small closet" }\n')
    with pytest.raises(CostError, match="more than a 5 kW air-cooled rack"):
        plan(ReplicaCapacity(100.0, "p5.48xlarge", 1), tokens_per_s=10.0, power=load_power(path))


def test_bad_capacity() -> None:
    with pytest.raises(CostError, match="instances_per_replica"):
        ReplicaCapacity(10.0, "p5.48xlarge", 0)
    with pytest.raises(CostError, match="tokens_per_s"):
        ReplicaCapacity(0.0, "p5.48xlarge", 1)
    with pytest.raises(CostError, match="not both"):
        ReplicaCapacity(1.0, "p5.48xlarge", 2, 2)
