"""What the demo prints after each step, and the HTML report it writes at the end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table

from trnsim.cost import load_prices
from trnsim.report.comparison_rows import comparison_rows
from trnsim.report.html import Report
from trnsim.report.plots import latency_samples
from trnsim.report.story import hw_text

if TYPE_CHECKING:
    from trnsim.demo.compile_step import CompileStep
    from trnsim.demo.kernel_step import KernelStep
    from trnsim.demo.serving_step import ServingStep


def print_kernel(console: Console, step: KernelStep) -> None:
    console.print("[bold]1/4 library kernel: causal flash attention (bf16, GQA) on the simulated chip[/]")
    console.print(step.profile.summary())
    console.print(f"  max |error| vs torch scaled_dot_product_attention: {step.max_abs_error:.2e} (bf16 inputs)\n")


def print_compile(console: Console, step: CompileStep) -> None:
    prof = step.profile
    console.print(f"[bold]2/4 torch.compile(model, backend='trnsim'): {step.model_name}[/]")
    console.print(prof.summary(top=8))
    console.print(
        f"  sentence embeddings vs eager: min cosine {step.min_cosine:.6f}, max |error| {step.max_abs_error:.1e}; "
        f"{step.tokens} tokens in {prof.device_time_us:.0f} µs of device time, MFU {prof.mfu:.1%}"
    )
    console.print()


def print_serving(console: Console, step: ServingStep) -> None:
    cmp = step.comparison
    slo = cmp.slo
    title = f"{cmp.model}: highest load meeting TTFT <= {slo.ttft_ms:g} ms, TPOT <= {slo.tpot_ms:g} ms"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    headers = ("hardware", "req/s", "tok/s", "TTFT ms\np50 / p99", "TPOT ms\np50 / p99", "$/Mtok", "J/tok", "vs\nfirst")
    for col in headers:
        table.add_column(col, justify="left" if col == "hardware" else "right", no_wrap=True)
    for row in comparison_rows(cmp):
        table.add_row(
            _short(row["name"]),
            f"{row['rate req/s']:.3g}",
            f"{row['throughput_tok_s']:,.0f}",
            f"{row['ttft_ms_p50']:,.0f} / {row['ttft_ms_p99']:,.0f}",
            f"{row['tpot_ms_p50']:.1f} / {row['tpot_ms_p99']:.1f}",
            _money(row["usd_per_mtok"]),
            f"{row['j_per_tok']:.3f}" if row["j_per_tok"] is not None else "–",
            f"{row['cost ratio']:.2f}x" if row["cost ratio"] is not None else "–",
        )
    console.print(table)
    for hw, why in cmp.unmet.items():
        console.print(f"  {hw}: no load meets the SLO ({why})")
    plans = Table(
        title="4/4 capacity plan: fleets serving 1,000,000 output tokens/s",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for col in ("hardware", "instances", "chips", "racks", "MW (peak)", "$/year", "$/Mtok"):
        plans.add_column(col, justify="left" if col == "hardware" else "right", no_wrap=True)
    for hw, p in step.plans.items():
        plans.add_row(
            _short(hw),
            f"{p.instances:,}",
            f"{p.chips:,}",
            f"{p.racks:,}",
            f"{p.facility_mw_peak:.2f}",
            f"${p.instances_usd_per_year + p.energy_usd_per_year:,.0f}",
            _money(p.usd_per_mtok),
        )
    console.print(plans)
    console.print("  MW: facility power at full load (IT power x PUE). Prices (src/trnsim/cost/prices.toml):")
    for hw in step.plans:
        entry = load_prices().instance(hw.partition(":")[0])
        console.print(f"    {hw_text(hw)}: ${entry.usd_per_hour:,.2f}/h as of {entry.as_of} ({entry.basis})")
    console.print()


def write_report(path: Path, kernel: KernelStep, compiled: CompileStep, serving: ServingStep) -> Path:
    from trnsim.demo.serving_step import DEMAND_TOKENS_PER_S, OUTPUT, PROMPT, REQUESTS

    cmp = serving.comparison
    report = Report("trnsim demo: Llama-3.1-8B on Trainium2 and H100")
    report.story.ask(
        "Workload",
        f"serving: {PROMPT} prompt and {OUTPUT} output tokens per request, Poisson arrivals at the highest rate at "
        f"which 90% of requests meet the SLO (searched from {REQUESTS}-request runs); fleet: "
        f"{DEMAND_TOKENS_PER_S:,.0f} output tokens/s",
    )
    report.set_slo(cmp.slo.ttft_ms, cmp.slo.tpot_ms)
    report.add_comparison(cmp.to_dict())
    for side in cmp.sides:  # the per-request samples: full CDFs rather than percentile points
        report.latencies[side.hw] = latency_samples(side.result)
        report.percentiles.pop(side.hw, None)
    report.add_kernel_profile("flash_attention (trn2)", kernel.profile)
    report.add_graph_profile(compiled.model_name, compiled.profile, tokens=compiled.tokens)
    report.add_table(
        "Capacity plan for 1,000,000 output tokens/s",
        [
            {
                "hardware": hw,
                "instances": p.instances,
                "chips": p.chips,
                "racks": p.racks,
                "facility MW (peak)": round(p.facility_mw_peak, 3),
                "$/Mtok": round(p.usd_per_mtok, 4),
                "J/token": round(p.j_per_token, 4),
            }
            for hw, p in serving.plans.items()
        ],
    )
    return report.write(path)


def print_paths(console: Console, paths: dict[str, Path], seconds: float) -> None:
    console.print(f"[bold green]done in {seconds:.0f} s.[/] Open:")
    console.print(f"  report   {paths['report']}  (one self-contained HTML file: open it in any browser)")
    console.print(f"  trace    {paths['trace']}  (drag onto https://ui.perfetto.dev, or `trnsim trace summarize`)")
    console.print(f"  timeline {paths['timeline']}")
    console.print(f"  numbers  {paths['summary']}")


def _short(hw: str) -> str:
    """'trn2 tp=4' for 'trn2.48xlarge:tp=4': the instance family and the replica's tensor parallelism."""
    instance, _, rest = hw.partition(":")
    return f"{instance.split('.')[0]} {rest}".strip()


def _money(value: float | None) -> str:
    return f"${value:.3f}" if value is not None else "–"
