"""`trnsim plan --deployment FILE`: a fleet of instances packed with several models, tenants side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from trnsim.cli.plan import _print_table, console
from trnsim.cost.power_table import PowerTable
from trnsim.cost.prices import PriceTable


def plan_packed(
    path: Path,
    power: str | None,
    tokens_per_s: float | None,
    cooling: str,
    usd_per_kwh: float | None,
    prices: PriceTable,
    power_table: PowerTable,
    as_json: bool,
) -> None:
    from trnsim.serve.deployment import load_deployment, run_deployment
    from trnsim.serve.deployment_plan import plan_deployment

    dep = load_deployment(path)
    metrics = run_deployment(dep, progress=not as_json)
    fleet, tenants = plan_deployment(
        dep.instance,
        metrics,
        power_budget=power,
        tokens_per_s=tokens_per_s,
        cooling=cooling,
        usd_per_kwh=usd_per_kwh,
        prices=prices,
        power=power_table,
    )
    entry = prices.instance(dep.instance)
    cool = power_table.cooling_for(cooling)
    names = ", ".join(f"{n} ({t['model']})" for n, t in tenants.items())
    sources = {
        "capacity": f"one {dep.instance} packed with {names} as {path.name} gives (serve --deployment: each "
        "tenant's traffic from the file, neighbours' interference included), their tokens/s added up",
        "price": f"price basis {fleet.price_basis}: {entry.source} ({entry.region}, as of {entry.as_of})",
        "chip": f"{entry.accelerator} {power_table.chip_w(entry.accelerator):g} W: "
        f"{power_table.chips[entry.accelerator].source}",
        "idle": power_table.idle.fraction.source,
        "pue": f"PUE {cool.pue.value:g} ({cooling}): {cool.pue.source}",
        "rack": f"{cool.rack_kw.source}; {cool.rack_max_servers.source}",
        "kwh": power_table.electricity.usd_per_kwh.source if usd_per_kwh is None else "--usd-per-kwh",
    }
    if as_json:
        models = " + ".join(dict.fromkeys(str(t["model"]) for t in tenants.values()))
        tps = "/".join(str(t["tp"]) for t in tenants.values())  # the report's headline reads model and tp
        out = {"deployment": str(path), "model": models, "tp": tps, "capacity_source": sources["capacity"]}
        print(json.dumps(out | fleet.to_dict() | {"tenants": tenants, "sources": sources}, indent=2, default=str))
        return
    _print_table(f"{dep.instance} packed with {len(tenants)} tenants ({path.name})", fleet, sources)
    console.print(tenants_table(f"tenants of each {dep.instance}", tenants))


def tenants_table(title: str, tenants: dict[str, dict[str, Any]]) -> Table:
    """Tenants side by side: one column per tenant, one row per quantity."""
    table = Table(title=escape(title))
    table.add_column("quantity")
    for name in tenants:
        table.add_column(escape(name))
    rows = dict.fromkeys(k for t in tenants.values() for k in t)
    for key in rows:
        table.add_row(key.replace("_", " "), *(escape(_fmt(t.get(key))) for t in tenants.values()))
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return "-" if value is None else str(value)
