"""`trnsim trace summarize FILE [--top N] [--json]`: what a Chrome/Perfetto trace says, without a browser."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="Chrome/Perfetto traces written by trnsim.", no_args_is_help=True)


@app.command("summarize")
def summarize_command(
    file: Path = typer.Argument(..., help="trace JSON (from `trnsim kernel --trace` or Profile.to_perfetto)"),
    top: int = typer.Option(10, "--top", help="how many instructions to list"),
    per_queue: bool = typer.Option(False, "--per-queue", help="list every DMA queue, not only all of them together"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output (every track)"),
) -> None:
    """Top instructions by time, busy time and utilisation per engine / DMA queue, the bottleneck, peak memory."""
    from trnsim.report.trace_summary import summarize_file

    summary = summarize_file(file, top)
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
        return
    console = Console()
    for table in summary.tables(per_queue):
        console.print(table)
