"""`trnsim serve --model llama-3.1-70b --hw trn2.48xlarge --tp 64 --rate 2 --requests 200 --prompt 2048
--output 256 [--scheduler continuous|chunked|static] [--json]`: simulate serving with estimated step latencies."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _ms(p: dict[str, Any]) -> str:
    parts = [f"{k} {p[k]:,.1f}" for k in ("p50", "p90", "p99") if p.get(k) is not None]
    return ", ".join(parts) or "-"


def metrics_table(title: str, out: dict[str, Any]) -> Table:
    """The headline serving metrics of one run (a ServeResult.to_dict(), plus hw/tp) as a rich table."""
    table = Table(title=escape(title))
    table.add_column("metric")
    table.add_column("value", justify="right")
    usd, joules = out.get("usd_per_mtok"), out.get("j_per_tok")
    rows = [
        ("requests", f"{out['requests']:,} in {out['duration_s']:,.1f} s"),
        ("TTFT ms (p50, p90, p99)", _ms(out["ttft_ms"])),
        ("TPOT ms (p50, p90, p99)", _ms(out["tpot_ms"])),
        ("end-to-end ms (p50, p90, p99)", _ms(out["e2e_ms"])),
        ("output tokens/s", f"{out['throughput_tok_s']:,.1f}"),
        ("device busy", f"{out['utilization']:.0%}"),
        ("$ per million output tokens", f"${usd:,.3f}" if usd is not None else "-"),
        ("J per output token (facility)", f"{joules:,.3f}" if joules is not None else "-"),
        ("preemptions", f"{out['preemptions']:,}"),
    ]
    if out.get("slo_attainment") is not None:
        rows.append(("SLO attainment", f"{out['slo_attainment']:.1%}"))
    for name, value in rows:
        table.add_row(name, escape(value))
    return table


def serve_command(
    model: str = typer.Option(..., "--model", help="model preset (e.g. llama-3.1-70b) or a config.json path"),
    hw: str = typer.Option(..., "--hw", help="instance type, e.g. trn2.48xlarge or p5.48xlarge"),
    tp: int = typer.Option(..., "--tp", help="tensor-parallel ranks per replica (logical NeuronCores or GPUs)"),
    rate: float | None = typer.Option(None, "--rate", help="Poisson arrivals, requests/s"),
    concurrency: int | None = typer.Option(None, "--concurrency", help="closed loop: clients each with one request"),
    requests: int = typer.Option(200, "--requests", min=1, help="requests to simulate"),
    prompt: str = typer.Option("2048", "--prompt", help="prompt tokens: N, LOW-HIGH or zipf:S:LOW-HIGH"),
    output: str = typer.Option("256", "--output", help="output tokens: N, LOW-HIGH or zipf:S:LOW-HIGH"),
    scheduler: str = typer.Option("continuous", "--scheduler", help="continuous (vLLM), chunked (Sarathi) or static"),
    seed: int = typer.Option(0, "--seed", help="workload random seed"),
    slo_ttft_ms: float | None = typer.Option(None, "--slo-ttft-ms", help="TTFT target for SLO attainment"),
    slo_tpot_ms: float | None = typer.Option(None, "--slo-tpot-ms", help="TPOT target for SLO attainment"),
    prices: Path | None = typer.Option(None, "--prices", help="TOML overriding prices.toml entries (your quote)"),
    power_table: Path | None = typer.Option(None, "--power-table", help="TOML overriding power.toml entries"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    report: str | None = typer.Option(None, "--report", help="also write a self-contained HTML report here"),
) -> None:
    """Simulate serving MODEL on HW: latency percentiles, tokens/s, $/Mtok and J/token."""
    from trnsim.serve import SLO, make_workload, simulate
    from trnsim.serve.errors import ServeError
    from trnsim.serve.setup import grid_bounds, serving_setup

    if (rate is None) == (concurrency is None):
        raise ServeError("give exactly one of --rate (requests/s) or --concurrency (clients)")
    work = make_workload(requests, rate=rate, concurrency=concurrency, prompt=prompt, output=output, seed=seed)
    slo = SLO(slo_ttft_ms, slo_tpot_ms) if slo_ttft_ms is not None or slo_tpot_ms is not None else None
    setup = serving_setup(
        model,
        hw,
        tp,
        bounds=grid_bounds(work, scheduler),
        progress=not as_json,
        prices=prices,
        power_table=power_table,
    )
    status = Console(stderr=True).status(f"simulating {requests} requests on {hw} (tp={tp}) ...")
    with status if not as_json else contextlib.nullcontext():
        result = simulate(setup.model, setup.replica, work, scheduler, slo=slo)
    out = result.to_dict() | {
        "hw": hw,
        "tp": tp,
        "target": setup.target,
        "rate_req_s": rate,
        "concurrency": concurrency,
    }
    if report is not None:
        from trnsim.report.html import Report

        path = Report(f"{out['model']} on {hw}, tp={tp}").add_serving(f"{hw} tp={tp}", result).write(report)
        Console(stderr=True).print(f"report: {path}", highlight=False)
    if as_json:
        print(json.dumps(out, indent=2))
        return
    Console().print(metrics_table(f"{out['model']} on {hw}, tp={tp} ({result.scheduler})", out))
