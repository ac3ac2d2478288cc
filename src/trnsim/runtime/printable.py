"""A rich Table that prints as its text: `print(profile.summary())` shows the table, not its repr."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

DEFAULT_WIDTH = 80  # a plain terminal; the console's own width is used when printed through rich


class PrintableTable(Table):
    def render_text(self, width: int = DEFAULT_WIDTH) -> str:
        buffer = io.StringIO()
        Console(file=buffer, width=width, color_system=None, force_terminal=False).print(self)
        return buffer.getvalue().rstrip("\n")

    def __str__(self) -> str:
        return self.render_text()
