"""The `trnsim` command (typer + rich). User errors print as one line; `--debug` shows the traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from trnsim.cli import compare, estimate, gpu, help_display, hw, kernel, ops, plan, report, serve, sweep, usage_errors
from trnsim.errors import TrnsimError

help_display.show_flags_without_a_type()
app = typer.Typer(help="trnsim: a simulated Trainium-class accelerator and its software stack.", no_args_is_help=True)
app.add_typer(hw.app, name="hw")
app.add_typer(gpu.gpu_app, name="gpu")
app.command("kernel")(kernel.kernel_command)
app.command("plan")(plan.plan_command)
app.command("estimate")(estimate.estimate_command)
app.command("ops")(ops.ops_command)
app.command("serve")(serve.serve_command)
app.command("compare")(compare.compare_command)
app.command("sweep")(sweep.sweep_command)
report.register(app)  # `trnsim report` and the `trnsim trace` group
err_console = Console(stderr=True, soft_wrap=True)


@app.command()
def demo(
    out: str = typer.Option("out", help="folder for the report, traces, plots and numbers"),
    target: str = typer.Option("trn2", help="hardware preset"),
) -> None:
    """The whole story on built-in defaults: a kernel profile, a compiled transformer vs eager, trn2 vs H100
    serving and cost, a capacity plan, and an HTML report under OUT."""
    from pathlib import Path

    from trnsim.demo import run_demo

    run_demo(Path(out), target)


def main() -> None:
    import atexit
    import gc
    import warnings

    # On the way out the interpreter's own collections walk every object left (a million after torch,
    # transformers and a model: 1.5-2 CPU s after an estimate); frozen, they are skipped. At exit only, so code
    # that calls main() in a longer-lived process keeps its collector as it was until then.
    atexit.register(gc.freeze)

    # torch's own deprecation notice, raised inside torch.export when graphs are copied; not the user's to fix
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        code = app(standalone_mode=False)  # returns an exit code when a command calls typer.Exit (or --help)
    except TrnsimError as exc:
        if debug:
            raise
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}\n[dim](run with --debug for the traceback)[/]", highlight=False
        )
        sys.exit(2)
    except Exception as exc:
        if debug or not usage_errors.is_usage_error(exc):
            raise
        if usage_errors.is_no_args_help(exc):  # `trnsim` or `trnsim hw` alone: the help is the answer
            print(exc.format_message())  # type: ignore[attr-defined]
            sys.exit(0)
        err_console.print(f"[bold red]error:[/] {escape(usage_errors.one_line(exc))}", highlight=False)
        sys.exit(usage_errors.exit_code(exc))
    except typer.Abort:  # Ctrl-C at a prompt
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
