"""Pareto plots of sweep results: every point in grey, the front highlighted, joined and labelled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trnsim.sweep.errors import SweepError
from trnsim.sweep.results import LOWER_IS_BETTER, Row, is_number, pareto_front

AXIS_LABELS = {
    "usd_per_mtok": "$ per million output tokens",
    "throughput_tok_s": "output tokens/s",
    "tpot_ms_p50": "TPOT p50 (ms)",
    "tpot_ms_p99": "TPOT p99 (ms)",
    "ttft_ms_p50": "TTFT p50 (ms)",
    "ttft_ms_p99": "TTFT p99 (ms)",
    "j_per_tok": "J per output token",
    "goodput_req_s": "goodput (requests/s within the SLO)",
}


def _label(row: Row, params: Sequence[str]) -> str:
    def short(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{p.rsplit('.', 1)[-1]}={short(row[p])}" for p in params if p in row)


def plot_pareto(
    rows: Sequence[Row],
    out: str | Path,
    params: Sequence[str],
    x: str = "usd_per_mtok",
    y: str = "throughput_tok_s",
    title: str = "",
) -> list[Path]:
    """Write `out`.png and `out`.svg (out without suffix); returns the two paths. Front points are numbered
    and keyed to their swept parameters `params`. LOWER_IS_BETTER metrics are minimised, others maximised."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window or need a display
    import matplotlib.pyplot as plt

    usable = [r for r in rows if is_number(r.get(x)) and is_number(r.get(y))]
    if not usable:
        raise SweepError(f"no sweep point has both {x} and {y}, so there is nothing to plot")
    front = pareto_front(usable, x, y, minimize_x=x in LOWER_IS_BETTER, maximize_y=y not in LOWER_IS_BETTER)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    try:
        ax.scatter([r[x] for r in usable], [r[y] for r in usable], s=22, color="0.65", label="sweep points")
        ax.plot([r[x] for r in front], [r[y] for r in front], "-o", color="tab:red", ms=6, label="Pareto front")
        # Front points carry a number; the key beside the axes says what each one is (labels on the points
        # themselves collide when two configurations land close together).
        for n, r in enumerate(front, 1):
            ax.annotate(str(n), (r[x], r[y]), xytext=(4, 4), textcoords="offset points", fontsize=8, color="tab:red")
        key = "\n".join(f"{n}: {_label(r, params)}" for n, r in enumerate(front, 1))
        ax.text(1.02, 1.0, f"Pareto front\n{key}", transform=ax.transAxes, va="top", ha="left", fontsize=7.5)
        ax.set_xlabel(AXIS_LABELS.get(x, x))
        ax.set_ylabel(AXIS_LABELS.get(y, y))
        counts = f"{len(usable)} points, {len(front)} on the Pareto front"
        ax.set_title(f"{title}: {counts}" if title else counts, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        base = Path(out)
        base.parent.mkdir(parents=True, exist_ok=True)
        paths = [base.with_suffix(".png"), base.with_suffix(".svg")]
        for p in paths:
            fig.savefig(p, bbox_inches="tight")  # "tight" keeps the key beside the axes
    finally:
        plt.close(fig)
    return paths
