"""`trnsim gpu measure`: a model's prefill and decode step latencies on a local CUDA GPU, next to the model's."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

gpu_app = typer.Typer(
    help="GPU reference: measure a model on a local CUDA GPU next to the GPU model.", no_args_is_help=True
)
console = Console()


@gpu_app.command("measure")
def measure_command(
    model: str = typer.Option(..., "--model", help="model preset (e.g. llama-3.1-8b, gpt2) or a config.json path"),
    batch: int = typer.Option(1, help="sequences per step"),
    prompt: int = typer.Option(128, help="prompt tokens per sequence (the prefill step)"),
    iters: int = typer.Option(20, help="timed calls per step kind (the median is reported)"),
    warmup: int = typer.Option(3, help="untimed calls before timing"),
    layers: int | None = typer.Option(None, help="build only this many layers (big models on one GPU)"),
    gpu: str | None = typer.Option(None, help="GPU preset for the prediction (default: matches the device)"),
    predicted_only: bool = typer.Option(False, "--predicted-only", help="print the GPU model's numbers only"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Time a prefill forward and single-token decode steps with CUDA events; show the predicted latencies too."""
    from trnsim.gpu.measure import measure_steps

    result = measure_steps(
        model,
        gpu=gpu,
        batch=batch,
        prompt=prompt,
        iters=iters,
        warmup=warmup,
        layers=layers,
        predicted_only=predicted_only,
    )
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    where = result.device or "not measured"
    table = Table(title=f"{result.model} ({result.layers} layers): {where} vs GPU model '{result.gpu}'")
    for col in ("step", "batch", "new tokens", "context", "measured ms", "predicted ms", "measured/predicted"):
        table.add_column(col, justify="right")
    for s in result.steps:
        table.add_row(
            s.step,
            str(s.batch),
            str(s.new_tokens),
            f"{s.context:g}",
            "-" if s.measured_ms is None else f"{s.measured_ms:.3f}",
            f"{s.predicted_ms:.3f}",
            "-" if s.ratio is None else f"{s.ratio:.2f}",
        )
    console.print(table)
    console.print(
        "[dim]Measured: eager PyTorch (transformers), median of CUDA-event-timed calls. Predicted: trnsim.gpu "
        "step model (one fused kernel per op, back to back); eager PyTorch launches more, smaller kernels.[/]"
    )
