"""How `--help` shows options: an on/off flag as a bare flag (`--json`), not `--json <bool>`;
a bounded number as `<int> [x>=1]`, not `<int range> [x>=1]`.

typer 0.29 prints a type for every option, flags included; a flag takes no value, so showing one misleads.
"""

from __future__ import annotations

from typing import Any

import typer.core

_type_shown_by_typer = typer.core.TyperOption.display_type_rich


def _display_type_rich(self: Any, ctx: Any) -> str | None:
    if getattr(self, "is_flag", False) and not getattr(self, "count", False):
        return None
    descriptor = getattr(self, "type_descriptor", None)
    if self.metavar is None and descriptor is not None and descriptor.is_ranged:
        # "<int range> [x>=1]" says "range" twice; "<int> [x>=1]" leaves the option names room at 80 columns
        return f"<{descriptor.ranged_type_name}>"
    shown: str | None = _type_shown_by_typer(self, ctx)
    return shown


def show_flags_without_a_type() -> None:
    """Install the flag display on typer's option class (idempotent)."""
    typer.core.TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]
