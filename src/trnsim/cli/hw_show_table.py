"""`trnsim hw show` as text: one row per number, grouped by section, in human units, with a legend of the
source tags (`[chip3]`) the preset file's header defines. Fits 80 columns; `--json` keeps the raw values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

from trnsim.runtime.units import fmt_bandwidth, fmt_bytes, fmt_time_us

_LEGEND_LINE = re.compile(r"^#\s+(\[[\w-]+\])\s*=\s*(.+)$")
_BINARY = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def human_value(key: str, value: Any) -> str:
    """A preset number in the unit its field name states (…_bytes, …_bytes_per_ns, …_ns, …_ghz)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if key.endswith("_bytes_per_ns"):
        return fmt_bandwidth(value * 1e9)  # 1 byte/ns = 1 GB/s
    if key.endswith("_bytes"):
        for size, unit in _BINARY:
            if value >= size and value % size == 0:
                return f"{value // size:,} {unit}"  # sizes published in binary units stay exact
        return fmt_bytes(value) if value >= 1000 else f"{value:g} B"
    if key.endswith("_ns"):
        return fmt_time_us(value / 1000.0)
    if key.endswith("_ghz"):
        return f"{value:g} GHz"
    if key.endswith("_tflops"):
        return f"{value:g} TFLOPS"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def source_legend(preset_file: Path) -> dict[str, str]:
    """The `#   [tag] = where` lines at the head of a preset file."""
    legend: dict[str, str] = {}
    for line in preset_file.read_text().splitlines():
        if not line.startswith("#"):
            break
        match = _LEGEND_LINE.match(line)
        if match:
            legend[match.group(1)] = match.group(2).strip()
    return legend


def spec_table(title: str, rows: list[tuple[str, Any]], sources: dict[str, str]) -> Table:
    """Rows of (dotted field, value), grouped by the section before the last dot."""
    table = Table(title=escape(title), box=box.SIMPLE_HEAD, pad_edge=False)
    # the field names keep their width (they are what a user types in a spec file); long values fold
    table.add_column("field", min_width=30, max_width=32, overflow="fold")
    table.add_column("value", justify="right", max_width=14, overflow="fold")
    table.add_column("source", overflow="fold")
    section = None
    for key, value in rows:
        head, _, leaf = key.rpartition(".")
        instance = re.fullmatch(r"instances\[(.+)\]", head)
        if instance and leaf == "name":
            continue  # the section row names the instance
        if head != section:
            section = head
            if head:
                shown_head = f"instance {instance.group(1)}" if instance else head
                table.add_row(f"[bold]{escape(shown_head)}[/]", "", escape(sources.get(f"{head}.name", "")))
        table.add_row(
            escape(f"  {leaf}" if head else leaf), escape(human_value(leaf, value)), escape(sources.get(key, ""))
        )
    return table


def legend_table(legend: dict[str, str], used: set[str]) -> Table:
    table = Table(title="sources", box=box.SIMPLE_HEAD, pad_edge=False, show_header=False)
    table.add_column("tag", no_wrap=True)
    table.add_column("document", overflow="fold")
    for tag, where in legend.items():
        if tag in used:
            table.add_row(escape(tag), escape(where))
    table.add_row("assumption", "no published figure; the source text says what was assumed and why")
    return table
