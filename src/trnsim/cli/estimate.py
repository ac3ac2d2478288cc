"""`trnsim estimate --model llama-3.1-70b --batch 1 --prompt 2048 --target trn2 --tp 32 [--json]`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from trnsim.runtime.units import fmt_time_us


def estimate_command(
    model: str = typer.Option(..., help="model preset name (trnsim.models.list_models()) or a path to a config.json"),
    batch: int = typer.Option(1, min=1, help="sequences per step"),
    prompt: int = typer.Option(2048, min=1, help="tokens per sequence (a prefill step)"),
    target: str = typer.Option("trn2", help="hardware preset"),
    tp: int = typer.Option(1, min=1, help="tensor-parallel degree (logical cores)"),
    instance: str = typer.Option(None, help="instance whose topology carries the collectives (default: smallest fit)"),
    training: bool = typer.Option(False, help="estimate a training step (forward + backward + AdamW)"),
    decode: bool = typer.Option(False, "--decode", help="one decode step: one new token per sequence"),
    context: int = typer.Option(2048, min=1, help="with --decode: tokens already in each sequence's KV cache"),
    dtype: str = typer.Option(
        "bf16", help="number format of the weight matmuls: bf16, fp8 (NC-v3+: double-row rate), fp4 (B200)"
    ),
    extrapolate: bool = typer.Option(
        True,
        "--extrapolate/--exact",
        help="extend long kernel loops from short probes (within 1% of full simulation, several times faster)"
        " or simulate every instruction",
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    report: Path | None = typer.Option(None, "--report", help="write a self-contained HTML report here"),
) -> None:
    """Estimate a model's step time on the simulated chip from shapes alone (no weights needed)."""
    import torch

    import trnsim
    from trnsim.compiler.graph_progress import graph_progress  # trnsim.compiler imports torch: only when used
    from trnsim.models import build_model

    net = build_model(model, device="meta")
    ids = torch.zeros(batch, 1 if decode else prompt, dtype=torch.long, device="meta")
    console = Console(stderr=True)
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task(f"simulating {escape(model)} on {target} (tp={tp}): graph ops", total=None)
    with bar, graph_progress(lambda done, total: bar.update(task, completed=done, total=total)):
        prof = trnsim.estimate(
            net,
            (ids,),
            target=target,
            tp=tp,
            instance=instance,
            training=training,
            label=model,
            decode=decode,
            context=context if decode else None,
            dtype=dtype,
            extrapolate=extrapolate,
        )
    tokens = batch * ids.shape[1]
    if report is not None:
        from trnsim.report.html import Report

        shape = f"decode {batch} x 1 token over {context}" if decode else f"batch {batch} x {prompt} tokens"
        Report(f"{model} on {target} (tp={tp}, {shape})").add_graph_profile(model, prof, tokens).write(report)
    if as_json:
        d = prof.to_dict()
        d.pop("ops", None)
        d["tokens"] = tokens
        d["tokens_per_s"] = tokens / (prof.device_time_us / 1e6) if prof.device_time_us else 0.0
        print(json.dumps(d, indent=2))
        return
    Console().print(prof.summary())
    device_s = prof.device_time_us / 1e6
    Console().print(
        f"{tokens:,} tokens in {fmt_time_us(prof.device_time_us)} per rank -> "
        f"{tokens / device_s if device_s else 0.0:,.0f} tokens/s; collectives {fmt_time_us(prof.collective_us)}; "
        f"simulated in {prof.compile_seconds:.1f} s (kernel cache: {prof.cache_hits} hits, {prof.cache_misses} misses)"
    )
    if report is not None:
        Console().print(f"report written to {report} (open it in a browser)")
