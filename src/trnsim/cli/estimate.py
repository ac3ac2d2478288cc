"""`trnsim estimate --model llama-3.1-70b --batch 1 --prompt 2048 --target trn2 --tp 32 [--json]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        "bf16",
        help="number format of the weight matmuls: bf16, fp8 (NC-v3+: double-row rate), mxfp8 / mxfp4 (NC-v4: trn3;"
        " block-scaled GPUs: b200), fp4 (B200)",
    ),
    ep: int = typer.Option(
        1,
        min=1,
        help="expert-parallel groups of a mixture-of-experts model (tp x ep ranks): attention tensor-parallel over"
        " --tp ranks inside a group and data-parallel across groups (--batch is per group), the routed experts split"
        " over the ep groups, dispatch/combine all-to-all over the instance",
    ),
    routing_skew: float = typer.Option(
        0.0,
        "--routing-skew",
        min=0.0,
        help="with --ep: Zipf exponent of the router's expert popularity (0: a balanced router; the imbalance"
        " then comes from routing a finite batch)",
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
    from trnsim.gc_control import FrontEnd

    # torch, transformers, the compiler and the model live until the command ends: no collections walk them
    with FrontEnd() as front:
        import torch

        import trnsim
        from trnsim.compiler.graph_progress import graph_progress  # trnsim.compiler imports torch: only when used
        from trnsim.models import build_model

        net = build_model(model, device="meta")
        estimate_fn = trnsim.estimate  # loads the compiler (torch.export's stack)
        front.settle()

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
        if ep > 1 and training:
            from trnsim.errors import CompileError

            raise CompileError(
                f"--ep {ep} with --training: expert-parallel estimates price inference steps; use --ep 1"
            )
        layout = f"tp={tp} x ep={ep}" if ep > 1 and tp > 1 else f"ep={ep}" if ep > 1 else f"tp={tp}"
        task = bar.add_task(f"simulating {escape(model)} on {target} ({layout}): graph ops", total=None)
        ep_result = None
        with bar, graph_progress(lambda done, total: bar.update(task, completed=done, total=total)):
            if ep > 1:
                from trnsim.compiler.expert_parallel import ep_estimate

                ep_result = ep_estimate(
                    net,
                    (ids,),
                    ep=ep,
                    tp=tp,
                    target=target,
                    instance=instance,
                    skew=routing_skew,
                    label=model,
                    decode=decode,
                    context=context if decode else None,
                    dtype=dtype,
                    extrapolate=extrapolate,
                )
                prof = ep_result.profile
            else:
                prof = estimate_fn(
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
        Report(f"{model} on {target} ({layout}, {shape})").add_graph_profile(model, prof, tokens).write(report)
    if as_json:
        d = prof.to_dict()
        d.pop("ops", None)
        d["tokens"] = tokens
        d["tokens_per_s"] = tokens / (prof.device_time_us / 1e6) if prof.device_time_us else 0.0
        if ep_result is not None:
            d["expert_parallel"] = _ep_summary(ep_result)
        print(json.dumps(d, indent=2))
        return
    Console().print(prof.summary())
    device_s = prof.device_time_us / 1e6
    Console().print(
        f"{tokens:,} tokens in {fmt_time_us(prof.device_time_us)} per rank -> "
        f"{tokens / device_s if device_s else 0.0:,.0f} tokens/s; collectives {fmt_time_us(prof.collective_us)}; "
        f"simulated in {prof.compile_seconds:.1f} s (kernel cache: {prof.cache_hits} hits, {prof.cache_misses} misses)"
    )
    if ep_result is not None:
        e = _ep_summary(ep_result)
        Console().print(
            f"expert parallel over {ep} {'groups of ' + str(tp) + ' ranks' if tp > 1 else 'ranks'} "
            f"({e['experts_per_rank']} experts each): the busiest {'group' if tp > 1 else 'rank'} runs "
            f"{e['busiest_rank_rows']:,} expert rows, {e['imbalance']:.2f}x the mean of {e['mean_rank_rows']:,.0f} "
            f"(routing of {e['group_tokens']:,} tokens, skew {routing_skew:g}); dispatch + combine "
            f"{e['dispatch_bytes'] / 2**20:,.2f} MiB per rank and MoE layer each"
            + (
                f"; expert rows all-gathered / reduce-scattered in the tp group {e['gather_bytes'] / 2**20:,.2f} MiB"
                if tp > 1
                else ""
            )
        )
    if report is not None:
        Console().print(f"report written to {report} (open it in a browser)")


def _ep_summary(result: Any) -> dict[str, Any]:
    routing = result.routing
    rows = routing.rank_rows
    return {
        "ep": result.ep,
        "tp": result.tp,
        "ranks": result.ranks,
        "experts_per_rank": routing.experts_per_rank,
        "rank_tokens": result.rank_tokens,
        "group_tokens": result.rank_tokens * result.ep,
        "busiest_rank_rows": result.busiest_rows,
        "mean_rank_rows": sum(rows) / len(rows),
        "imbalance": routing.imbalance,
        "dispatch_bytes": result.dispatch_bytes,
        "gather_bytes": result.gather_bytes,
    }
