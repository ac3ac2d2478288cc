"""`trnsim ops`: which ATen ops the compiler lowers to the simulated chip, and to which library kernels."""

from __future__ import annotations

import json

import typer
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
    table = Table(title=f"{len(rows)} ops lower to the simulated chip (others run on the host CPU)")
    table.add_column("op", overflow="fold")
    for col in ("lowering", "library kernels", "kind"):
        table.add_column(col, overflow="fold")
    for r in rows:
        kernels = ", ".join(r.kernels) or "-"
        if r.detail and r.kernels:
            kernels += f" ({r.detail})"
        table.add_row(escape(r.op), escape(r.lowering), escape(kernels), SHORT_KIND[r.kind])
    console.print(table)
