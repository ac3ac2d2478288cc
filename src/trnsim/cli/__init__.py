"""The `trnsim` command (typer + rich). User errors print as one line; `--debug` shows the traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from trnsim.cli import estimate, gpu, hw, kernel, plan
from trnsim.errors import TrnsimError

app = typer.Typer(help="trnsim: a simulated Trainium-class accelerator and its software stack.", no_args_is_help=True)
app.add_typer(hw.app, name="hw")
app.add_typer(gpu.gpu_app, name="gpu")
app.command("kernel")(kernel.kernel_command)
app.command("plan")(plan.plan_command)
app.command("estimate")(estimate.estimate_command)
err_console = Console(stderr=True, soft_wrap=True)


@app.command()
def demo(
    out: str = typer.Option("out", help="folder for the traces"),
    target: str = typer.Option("trn2", help="hardware preset"),
) -> None:
    """Run built-in example kernels on the simulated chip and print their profiles."""
    from pathlib import Path

    from trnsim.demo import run_demo

    run_demo(Path(out), target)


def main() -> None:
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app(standalone_mode=False)
    except TrnsimError as exc:
        if debug:
            raise
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}\n[dim](run with --debug for the traceback)[/]", highlight=False
        )
        sys.exit(2)
    except Exception as exc:  # click's own usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise
