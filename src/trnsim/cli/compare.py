"""`trnsim compare --model llama-3.1-70b --hw trn2.48xlarge:tp=64 --hw p5.48xlarge:tp=8 --slo-ttft-ms 2000
--slo-tpot-ms 100 [--rate R | --concurrency C] [--serving-stack auto|exact|NAME] [--json]`: the same model and SLO
on several instance kinds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _fmt(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def load_curve_table(points: list[dict[str, Any]]) -> Table:
    """The latency-vs-load points (Comparison.to_dict()["load_curve"]) as one table, hardware by hardware."""
    table = Table(title="latency vs load (steady-state window; * = rate not sustained)")
    for name in ("hardware", "rate req/s", "TTFT p50 / p99 ms", "TPOT p50 / p99 ms", "output tok/s", "SLO met"):
        table.add_column(name, justify="left" if name == "hardware" else "right")
    for p in points:
        table.add_row(
            escape(p["hw"]),
            f"{p['rate']:,.3g}" + ("" if p["sustained"] else " *"),
            f"{_fmt(p['ttft_p50_ms'], ',.1f')} / {_fmt(p['ttft_p99_ms'], ',.1f')}",
            f"{_fmt(p['tpot_p50_ms'], ',.2f')} / {_fmt(p['tpot_p99_ms'], ',.2f')}",
            _fmt(p["throughput_tok_s"], ",.0f"),
            _fmt(p["slo_attainment"], ".0%"),
        )
    return table


def compare_command(
    model: str = typer.Option(..., "--model", help="model preset (e.g. llama-3.1-70b) or a config.json path"),
    hw: list[str] = typer.Option(..., "--hw", help="INSTANCE:tp=N, e.g. trn2.48xlarge:tp=64 (repeat the option)"),
    slo_ttft_ms: float | None = typer.Option(None, "--slo-ttft-ms", help="time-to-first-token target"),
    slo_tpot_ms: float | None = typer.Option(None, "--slo-tpot-ms", help="time-per-output-token target"),
    rate: float | None = typer.Option(None, "--rate", help="compare at this Poisson rate instead of each max rate"),
    concurrency: int | None = typer.Option(None, "--concurrency", help="compare at this closed-loop concurrency"),
    requests: int = typer.Option(200, "--requests", min=1, help="requests per simulation"),
    prompt: str = typer.Option("2048", "--prompt", help="prompt tokens: N, LOW-HIGH or zipf:S:LOW-HIGH"),
    output: str = typer.Option("256", "--output", help="output tokens: N, LOW-HIGH or zipf:S:LOW-HIGH"),
    scheduler: str = typer.Option("continuous", "--scheduler", help="continuous (vLLM), chunked (Sarathi) or static"),
    goodput: float = typer.Option(0.9, "--goodput", help="fraction of requests that must meet the SLO"),
    seed: int = typer.Option(0, "--seed", help="workload random seed"),
    weight_format: str = typer.Option(
        "bf16", "--dtype", help="weight format: bf16, fp8 or fp4 (GPUs with FP4 tensor cores); mxfp8/mxfp4 not yet"
    ),
    kv_dtype: str | None = typer.Option(None, "--kv-dtype", help="KV-cache format: bf16 or fp8 (halves KV bytes)"),
    prices: Path | None = typer.Option(None, "--prices", help="TOML overriding prices.toml entries (your quote)"),
    power_table: Path | None = typer.Option(None, "--power-table", help="TOML overriding power.toml entries"),
    curve: bool = typer.Option(
        True, "--load-curve/--no-load-curve", help="also sweep the rate: latency vs load (JSON key load_curve)"
    ),
    serving_stack: str = typer.Option(
        "auto",
        "--serving-stack",
        help="auto (each Neuron side with the stack AWS documents for it, GPUs at exact shapes), exact,"
        " transformers-neuronx or nxd-inference[:sequence-parallel,qkv,mlp] (docs/serving_and_cost.md)",
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    report: str | None = typer.Option(None, "--report", help="also write a self-contained HTML report here"),
) -> None:
    """Serve MODEL on each --hw under one SLO: max rate, latency, $/Mtok, J/token, and the cost ratio."""
    from trnsim.cli.serve import stack_label
    from trnsim.serve import SLO, ServeError
    from trnsim.serve.compare import compare_hardware
    from trnsim.serve.load_curve import DEFAULT_FRACTIONS

    if rate is not None and concurrency is not None:
        raise ServeError("give at most one of --rate or --concurrency (neither: search each hardware's max rate)")
    slo = SLO(slo_ttft_ms, slo_tpot_ms) if slo_ttft_ms is not None or slo_tpot_ms is not None else None
    if slo is None:
        raise ServeError("give an SLO: --slo-ttft-ms and/or --slo-tpot-ms")
    err = Console(stderr=True)
    cmp = compare_hardware(
        model,
        hw,
        slo,
        requests=requests,
        prompt=prompt,
        output=output,
        rate=rate,
        concurrency=concurrency,
        scheduler=scheduler,
        goodput_fraction=goodput,
        seed=seed,
        weight_format=weight_format,
        kv_dtype=kv_dtype,
        progress=not as_json,
        prices=prices,
        power_table=power_table,
        curve_fractions=DEFAULT_FRACTIONS if curve else (),
        serving_stack=serving_stack,
        on_side=None if as_json else (lambda what: err.print(f"[dim]{escape(what)} ...[/]", highlight=False)),
    )
    out = cmp.to_dict()
    if report is not None:
        from trnsim.report.comparison_rows import comparison_rows
        from trnsim.report.html import Report

        doc = Report(f"{out['model']}: hardware comparison")
        for side in cmp.sides:
            doc.add_serving(side.hw, side.result)
        if out["load_curve"]:
            doc.add_load_curve(out["load_curve"])
        path = doc.add_cost_comparison(comparison_rows(cmp)).write(report)
        err.print(f"report: {path}", highlight=False)
    if as_json:
        print(json.dumps(out, indent=2))
        return
    table = Table(title=escape(f"{out['model']}: TTFT <= {slo.ttft_ms} ms, TPOT <= {slo.tpot_ms} ms"))
    table.add_column("")
    for side in out["sides"]:
        table.add_column(escape(side["hw"]), justify="right")
    rows = [
        ("rate req/s" + (" (max under SLO)" if rate is None and concurrency is None else ""), "rate_req_s", ",.3g"),
        ("output tokens/s", "throughput_tok_s", ",.1f"),
        ("SLO attainment", "slo_attainment", ".1%"),
        ("$ per Mtok", "usd_per_mtok", ",.3f"),
        ("J per token", "j_per_tok", ",.3f"),
    ]
    for name, key, form in rows:
        table.add_row(name, *(_fmt(s[key], form) for s in out["sides"]))
    for name, key in (("TTFT p50 / p99 ms", "ttft_ms"), ("TPOT p50 / p99 ms", "tpot_ms")):
        table.add_row(name, *(f"{_fmt(s[key]['p50'], ',.1f')} / {_fmt(s[key]['p99'], ',.1f')}" for s in out["sides"]))
    table.add_row("serving stack", *(escape(stack_label(s["serving_stack"])) for s in out["sides"]))
    table.add_row("cost vs first", *(_fmt(out["cost_ratio"][s["hw"]], ".2f") + "x" for s in out["sides"]))
    Console().print(table)
    if out["load_curve"]:
        Console().print(load_curve_table(out["load_curve"]))
    for name, why in out["slo_unmet"].items():
        Console().print(f"[yellow]{escape(name)}: SLO not met[/] ({escape(why)})", highlight=False)
