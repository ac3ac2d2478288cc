"""Pareto fronts over rows of dicts (e.g. throughput vs $/Mtok or TPOT), the front highlighted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from trnsim.report.plots.figure import PlotError, PlotFiles, finish, new_figure


def pareto_front(rows: list[dict[str, Any]], x_key: str, y_key: str, x_higher: bool, y_higher: bool) -> list[int]:
    """Indices of rows no other row beats on both keys (at least as good on both, better on one), sorted by x."""
    sx, sy = (1 if x_higher else -1), (1 if y_higher else -1)
    pts = [(sx * float(r[x_key]), sy * float(r[y_key])) for r in rows]
    front = [i for i, (x, y) in enumerate(pts) if not any(ox >= x and oy >= y and (ox > x or oy > y) for ox, oy in pts)]
    return sorted(front, key=lambda i: float(rows[i][x_key]))


def render_pareto(
    rows: list[dict[str, Any]],
    x_key: str = "throughput_tok_s",
    y_key: str = "usd_per_mtok",
    x_higher: bool = True,
    y_higher: bool = False,
    label_key: str = "name",
) -> Figure:
    """All rows as grey points, the front as a red line through its points (sorted by x)."""
    usable = [r for r in rows if r.get(x_key) is not None and r.get(y_key) is not None]
    if not usable:
        keys = sorted({k for r in rows for k in r})
        raise PlotError(f"pareto: no row has both {x_key!r} and {y_key!r}; rows have keys: {', '.join(keys) or 'none'}")
    front = pareto_front(usable, x_key, y_key, x_higher, y_higher)
    fig = new_figure(6.5, 4.5)
    ax = fig.add_subplot()
    ax.scatter([float(r[x_key]) for r in usable], [float(r[y_key]) for r in usable], color="lightgrey", label="all")
    fx = [float(usable[i][x_key]) for i in front]
    fy = [float(usable[i][y_key]) for i in front]
    ax.plot(fx, fy, "o-", color="tab:red", label="Pareto front")
    for i in front:
        if label_key in usable[i]:
            ax.annotate(
                str(usable[i][label_key]),
                (fx[front.index(i)], fy[front.index(i)]),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, 4),
            )
    ax.set_xlabel(x_key + (" (higher is better)" if x_higher else " (lower is better)"))
    ax.set_ylabel(y_key + (" (higher is better)" if y_higher else " (lower is better)"))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_pareto(
    rows: list[dict[str, Any]],
    path_stem: str | Path | None,
    x_key: str = "throughput_tok_s",
    y_key: str = "usd_per_mtok",
    x_higher: bool = True,
    y_higher: bool = False,
    label_key: str = "name",
) -> PlotFiles:
    return finish(render_pareto(rows, x_key, y_key, x_higher, y_higher, label_key), path_stem)
