"""How `--help` shows options: an on/off flag as a bare flag (`--json`), not `--json <bool>`;
a bounded number as `<int> [x>=1]`, not `<int range> [x>=1]`; an option name folds
rather than ending in '…' when 80 columns squeeze it.

typer 0.29 prints a type for every option, flags included; a flag takes no value, so showing one misleads.
"""

from __future__ import annotations

from typing import Any

import typer.core
import typer.rich_utils
from rich.text import Text

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


class _FoldingOptionHighlighter(typer.rich_utils.OptionHighlighter):
    """Option names fold onto a second line when a narrow terminal squeezes them, rather than ending in '…'."""

    def __call__(self, text: str | Text) -> Text:
        highlighted = super().__call__(text)
        highlighted.overflow = "fold"
        return highlighted


def show_flags_without_a_type() -> None:
    """Install the flag display and the folding option names on typer (idempotent)."""
    typer.core.TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]
    typer.rich_utils.highlighter = _FoldingOptionHighlighter()
