"""`trnsim ops`: which ATen ops the compiler lowers to the simulated chip, and to which library kernels."""

from __future__ import annotations

import json

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
SHORT_KIND = {"kernel": "kernel", "move": "DMA copy", "view": "view"}


def ops_command(
    markdown: bool = typer.Option(False, "--markdown", help="print the markdown table (docs/compiler_ops.md)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List the op coverage of the compiler, generated from its lowering table."""
    from trnsim.compiler.op_coverage import as_json as coverage_json
    from trnsim.compiler.op_coverage import coverage
    from trnsim.compiler.op_coverage import markdown as as_markdown

    if as_json:
        typer.echo(json.dumps(coverage_json(), indent=2))
        return
    if markdown:
        typer.echo(as_markdown(), nl=False)
        return
    rows = coverage()
    title = f"{len(rows)} ops lower to the simulated chip (others run on the host CPU)"
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("op", overflow="fold", min_width=24)  # a few very long names fold; most stay whole
    table.add_column("lowering", overflow="fold", min_width=14)
    table.add_column("library kernels", min_width=14)
    table.add_column("kind", no_wrap=True)
    for r in rows:
        kernels = ", ".join(r.kernels) or "-"
        if r.detail and r.kernels:
            kernels += f" ({r.detail})"
        table.add_row(escape(r.op), escape(r.lowering), escape(kernels), SHORT_KIND[r.kind])
    console.print(table)
