"""What the demo prints after each step, and the HTML report it writes at the end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from trnsim.report.comparison_rows import comparison_rows
from trnsim.report.html import Report
from trnsim.report.plots import latency_samples

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
    fallback = sorted({r.op for r in prof.host_fallback})
    console.print(
        f"  sentence embeddings vs eager: min cosine {step.min_cosine:.6f}, max |error| {step.max_abs_error:.1e}; "
        f"{step.tokens} tokens in {prof.device_time_us:.0f} µs of device time, MFU {prof.mfu:.1%}"
    )
    if fallback:
        console.print(f"  ran on the host CPU (no lowering; listed in the profile): {', '.join(fallback)}")
    console.print()


def print_serving(console: Console, step: ServingStep) -> None:
    cmp = step.comparison
    slo = cmp.slo
    table = Table(title=f"{cmp.model}: highest load meeting TTFT <= {slo.ttft_ms:g} ms, TPOT <= {slo.tpot_ms:g} ms")
    for col in ("hardware", "req/s", "tok/s", "TTFT p50/p99 ms", "TPOT p50/p99 ms", "$/Mtok", "J/tok", "cost ratio"):
        table.add_column(col, justify="left" if col == "hardware" else "right")
    for row in comparison_rows(cmp):
        table.add_row(
            row["name"],
            f"{row['rate req/s']:.2f}",
            f"{row['throughput_tok_s']:,.0f}",
            f"{row['ttft_ms_p50']:.0f} / {row['ttft_ms_p99']:.0f}",
            f"{row['tpot_ms_p50']:.1f} / {row['tpot_ms_p99']:.1f}",
            _money(row["usd_per_mtok"]),
            f"{row['j_per_tok']:.3f}" if row["j_per_tok"] is not None else "–",
            f"{row['cost ratio']:.2f}" if row["cost ratio"] is not None else "–",
        )
    console.print(table)
    for hw, why in cmp.unmet.items():
        console.print(f"  {hw}: no load meets the SLO ({why})")
    plans = Table(title="4/4 capacity plan: fleets serving 1,000,000 output tokens/s")
    for col in ("hardware", "instances", "chips", "racks", "facility MW (peak)", "$/year", "$/Mtok"):
        plans.add_column(col, justify="left" if col == "hardware" else "right")
    for hw, p in step.plans.items():
        plans.add_row(
            hw,
            f"{p.instances:,}",
            f"{p.chips:,}",
            f"{p.racks:,}",
            f"{p.facility_mw_peak:.2f}",
            f"${p.instances_usd_per_year + p.energy_usd_per_year:,.0f}",
            _money(p.usd_per_mtok),
        )
    console.print(plans)
    console.print(
        "  prices and power are from src/trnsim/cost/*.toml, each with its source or marked as an assumption\n"
    )


def write_report(path: Path, kernel: KernelStep, compiled: CompileStep, serving: ServingStep) -> Path:
    from trnsim.demo.serving_step import DEMAND_TOKENS_PER_S, OUTPUT, PROMPT, REQUESTS

    cmp = serving.comparison
    report = Report("trnsim demo: Llama-3.1-8B on Trainium2 and H100")
    report.story.ask(
        "Workload",
        f"serving: {REQUESTS} requests per simulation, {PROMPT} prompt and {OUTPUT} output tokens, Poisson "
        f"arrivals at the highest rate that meets the SLO; fleet: {DEMAND_TOKENS_PER_S:,.0f} output tokens/s",
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


def _money(value: float | None) -> str:
    return f"${value:.3f}" if value is not None else "–"
