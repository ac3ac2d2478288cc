"""Command-line usage errors as one line.

typer >= 0.20 raises its own vendored copies of click's exceptions (`typer._click.exceptions`), so catching
`click.ClickException` misses them. `typer.TyperException` is the public base of both the usage errors and
click's `ClickException` family that typer re-exports; we format any of them as one line and exit with its code.
"""

from __future__ import annotations

from typing import Any

import typer


def is_usage_error(exc: BaseException) -> bool:
    """True for the exceptions typer (or click) raises for a bad command line."""
    if isinstance(exc, typer.TyperException):
        return True
    try:
        import click
    except ImportError:  # pragma: no cover - click is a typer dependency today, but not forever
        return False
    return isinstance(exc, click.exceptions.ClickException)


def is_no_args_help(exc: BaseException) -> bool:
    """A group called without a subcommand: typer raises a usage error whose message is the help text."""
    return type(exc).__name__ == "NoArgsIsHelpError"


def one_line(exc: Any, program: str = "trnsim") -> str:
    """The error as one line: what was wrong and where to look for what is allowed.

    Errors raised while parsing carry no context; their hint names the program's help.
    """
    message = " ".join(str(exc.format_message()).split())
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else f"{program} COMMAND"
    return f"{message} (try '{command} --help')"


def exit_code(exc: Any) -> int:
    code = getattr(exc, "exit_code", 2)
    return code if isinstance(code, int) else 2
