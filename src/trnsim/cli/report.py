"""`trnsim report FILE... -o out/report.html`: one self-contained HTML report from trnsim's JSON outputs."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def report_command(
    files: list[Path] = typer.Argument(
        ..., help="--json output of kernel, estimate, serve, compare, plan or sweep; a --trace file; cost rows"
    ),
    out: Path = typer.Option(Path("out/report.html"), "-o", "--out", help="where to write the HTML report"),
    title: str = typer.Option("trnsim report", help="report title"),
) -> None:
    """Build one self-contained HTML report (no network needed to view it) from trnsim's JSON outputs."""
    from trnsim.report.html import Report

    path = Report.from_json_files(files, title=title).write(out)
    Console().print(f"report written to {path} (open it in a browser: file://{path.resolve()})")


def register(app: typer.Typer) -> None:
    """Add `trnsim report` and the `trnsim trace` sub-app (one registration line in cli/__init__.py)."""
    from trnsim.cli import trace

    app.command("report")(report_command)
    app.add_typer(trace.app, name="trace")
