"""`trnsim plan`: chips, racks, megawatts and dollars for a power budget or a token demand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer._click.exceptions import MissingParameter

console = Console()


def _rows(fleet: Any) -> list[tuple[str, str, str]]:
    """(quantity, value, key of its source in the footnotes)."""
    from trnsim.cost import format_power

    budget = fleet.power_budget_w
    sized = f"power budget {format_power(budget)} ({fleet.budget_basis})" if budget else "demand"
    return [
        ("sized by", sized, ""),
        ("replicas", f"{fleet.replicas:,}", ""),
        ("instances (servers)", f"{fleet.instances:,} x {fleet.instance}", ""),
        ("chips", f"{fleet.chips:,} x {fleet.accelerator}", ""),
        ("racks", f"{fleet.racks:,} ({fleet.servers_per_rack} servers each, {fleet.cooling})", "rack"),
        ("tokens/s served", f"{fleet.tokens_per_s:,.0f} (capacity {fleet.capacity_tokens_per_s:,.0f})", "capacity"),
        ("chip utilization", f"{fleet.utilization:.0%}", "idle"),
        ("IT power, peak / average", f"{fleet.it_mw_peak:,.3f} / {fleet.it_mw_average:,.3f} MW", "chip"),
        (
            "facility power, peak / average",
            f"{fleet.facility_mw_peak:,.3f} / {fleet.facility_mw_average:,.3f} MW",
            "pue",
        ),
        (
            "instances $/year",
            f"${fleet.instances_usd_per_year:,.0f} (${fleet.usd_per_instance_hour:g}/h each)",
            "price",
        ),
        ("energy $/year", f"${fleet.energy_usd_per_year:,.0f} at ${fleet.usd_per_kwh:g}/kWh", "kwh"),
        ("$/Mtok: instances, energy", f"${fleet.usd_per_mtok:.4g}, ${fleet.energy_usd_per_mtok:.4g}", "price"),
        ("J/token (facility)", f"{fleet.j_per_token:.4g}", "pue"),
    ]


def _print_table(title: str, fleet: Any, sources: dict[str, str]) -> None:
    keys = list(dict.fromkeys(k for _, _, k in _rows(fleet) if k))
    table = Table(title=escape(title))
    for col in ("quantity", "value", "src"):
        table.add_column(col)
    for name, value, key in _rows(fleet):
        table.add_row(name, escape(value), f"[{keys.index(key) + 1}]" if key else "")
    console.print(table)
    for i, key in enumerate(keys, 1):
        console.print(f"[dim][{i}] {escape(sources[key])}[/]", highlight=False)


def plan_command(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", help="model preset (e.g. llama-3.1-70b) or a config.json path"),
    hw: str | None = typer.Option(None, "--hw", help="instance type, e.g. trn2.48xlarge or p5.48xlarge"),
    tp: int | None = typer.Option(None, "--tp", help="tensor-parallel ranks per replica (logical NeuronCores or GPUs)"),
    power: str | None = typer.Option(None, "--power", help="facility power budget, e.g. 2GW, 500MW, '1.5 kW'"),
    tokens_per_s: float | None = typer.Option(None, "--tokens-per-s", help="demand to serve, tokens/s"),
    cooling: str = typer.Option("air", "--cooling", help="air or liquid (sets PUE and rack density)"),
    slo_ttft_ms: float | None = typer.Option(None, "--slo-ttft-ms", help="time-to-first-token target"),
    slo_tpot_ms: float | None = typer.Option(None, "--slo-tpot-ms", help="time-per-output-token target"),
    tokens_per_s_per_replica: float | None = typer.Option(
        None,
        "--tokens-per-s-per-replica",
        help="override: replica output tokens/s to plan with, instead of the serving simulator's figure",
    ),
    prompt: str = typer.Option("2048", "--prompt", help="prompt tokens of the simulated traffic (N, LOW-HIGH, zipf)"),
    output: str = typer.Option("256", "--output", help="output tokens of the simulated traffic"),
    requests: int = typer.Option(200, "--requests", min=1, help="requests per simulation when sizing a replica"),
    prices_file: Path | None = typer.Option(None, "--prices", help="TOML overriding prices.toml entries"),
    power_file: Path | None = typer.Option(None, "--power-table", help="TOML overriding power.toml entries"),
    usd_per_kwh: float | None = typer.Option(None, "--usd-per-kwh", help="electricity price (default from power.toml)"),
    serving_stack: str = typer.Option(
        "auto",
        "--serving-stack",
        help="auto (the Neuron stack AWS documents for the chip; exact on GPUs), exact, transformers-neuronx or"
        " nxd-inference[:sequence-parallel,qkv,mlp]: how the serving simulator prices steps (docs/serving_and_cost.md)",
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    deployment: Path | None = typer.Option(
        None, "--deployment", help="TOML: several models packed on one instance (docs/instances.md); plans copies of it"
    ),
) -> None:
    """Size a fleet for MODEL on HW: replicas, chips, racks, MW and $/year, from a power budget or a demand."""
    from trnsim.cost import CostError, Slo, capacity_from_user, load_power, load_prices, plan, replica_capacity
    from trnsim.cost.capacity_source import check_weights_fit
    from trnsim.models import model_facts

    if (power is None) == (tokens_per_s is None):
        raise CostError("give exactly one of --power (e.g. 2GW) or --tokens-per-s")
    prices = load_prices(prices_file)
    power_table = load_power(power_file)
    if deployment is not None:
        from trnsim.cli.plan_tenants import plan_packed

        plan_packed(deployment, power, tokens_per_s, cooling, usd_per_kwh, prices, power_table, as_json)
        return
    for option, value in (("--model", model), ("--hw", hw), ("--tp", tp)):
        if value is None:  # required unless --deployment: the usage error typer gives for a missing option
            raise MissingParameter(ctx=ctx, param_hint=f"'{option}'", param_type="option")
    assert model is not None and hw is not None and tp is not None
    facts = model_facts(model)
    check_weights_fit(facts.weight_bytes(2), hw, tp, prices)
    slo = Slo(slo_ttft_ms, slo_tpot_ms)
    if tokens_per_s_per_replica is not None:
        capacity = capacity_from_user(tokens_per_s_per_replica, hw, tp, prices)
        capacity_note = "given by --tokens-per-s-per-replica (SLO not checked)"
    else:
        capacity = replica_capacity(
            model,
            hw,
            tp,
            slo,
            prompt=prompt,
            output=output,
            requests=requests,
            progress=not as_json,
            prices=prices,
            serving_stack=serving_stack,
        )
        capacity_note = (
            f"serving simulator: max Poisson rate with 90% of {requests} requests (prompt {prompt}, output {output} "
            f"tokens) within the SLO, step latencies estimated (--serving-stack {serving_stack})"
        )
    fleet = plan(
        capacity,
        power_budget=power,
        tokens_per_s=tokens_per_s,
        cooling=cooling,
        usd_per_kwh=usd_per_kwh,
        prices=prices,
        power=power_table,
    )
    entry = prices.instance(hw)
    cool = power_table.cooling_for(cooling)
    sources = {
        "capacity": f"{capacity.tokens_per_s:,.0f} tokens/s per replica, {capacity.replicas_per_instance} replica(s) "
        f"per instance, {capacity.instances_per_replica} instance(s) per replica: {capacity_note}",
        "price": f"price basis {fleet.price_basis}: {entry.source} ({entry.region}, as of {entry.as_of})"
        + (f"; {entry.note}" if entry.note else ""),
        "chip": f"{entry.accelerator} {power_table.chip_w(entry.accelerator):g} W: "
        f"{power_table.chips[entry.accelerator].source}; server overhead {power_table.overhead_w(hw):g} W: "
        f"{power_table.server_overhead_w[hw].source}",
        "idle": power_table.idle.fraction.source,
        "pue": f"PUE {cool.pue.value:g} ({cooling}): {cool.pue.source}",
        "rack": f"{cool.rack_kw.source}; {cool.rack_max_servers.source}",
        "kwh": power_table.electricity.usd_per_kwh.source if usd_per_kwh is None else "--usd-per-kwh",
    }
    if as_json:
        out = {"model": facts.name, "tp": tp, "slo": vars(slo), "capacity_source": capacity_note}
        print(json.dumps(out | fleet.to_dict() | {"sources": sources}, indent=2, default=str))
        return
    _print_table(f"{facts.name} on {hw}, tp={tp}", fleet, sources)
