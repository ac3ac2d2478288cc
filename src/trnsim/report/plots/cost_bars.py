"""$/Mtok and J/token bars for several configurations (e.g. trn2 vs h100)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from trnsim.report.plots.figure import PlotError, PlotFiles, finish, new_figure

METRICS = (("usd_per_mtok", "$ per million tokens"), ("j_per_tok", "joules per token"))


def render_cost_bars(rows: list[dict[str, Any]]) -> Figure:
    """Rows need 'name' and at least one of usd_per_mtok / j_per_tok (None or missing: an empty 'n/a' bar)."""
    if not rows:
        raise PlotError("cost bars: no rows; pass dicts with name, usd_per_mtok and/or j_per_tok")
    for i, row in enumerate(rows):
        if "name" not in row:
            raise PlotError(f"cost bars: row {i} has no 'name' (keys: {', '.join(row) or 'none'})")
    present = [(k, t) for k, t in METRICS if any(r.get(k) is not None for r in rows)]
    if not present:
        raise PlotError("cost bars: no row has usd_per_mtok or j_per_tok; add at least one of them")
    fig = new_figure(4.0 * len(present) + 1.0, 3.8)
    axes = fig.subplots(1, len(present), squeeze=False)[0]
    names = [str(r["name"]) for r in rows]
    for ax, (key, title) in zip(axes, present):
        values = [float(r[key]) if r.get(key) is not None else 0.0 for r in rows]
        bars = ax.bar(range(len(rows)), values, color=[f"C{i}" for i in range(len(rows))])
        ax.bar_label(
            bars, labels=[f"{v:.3g}" if r.get(key) is not None else "n/a" for v, r in zip(values, rows)], fontsize=8
        )
        ax.set_xticks(range(len(rows)), names, rotation=20, ha="right", fontsize=8)
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
    return fig


def plot_cost_bars(rows: list[dict[str, Any]], path_stem: str | Path | None) -> PlotFiles:
    return finish(render_cost_bars(rows), path_stem)
