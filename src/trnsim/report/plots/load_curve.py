"""Latency vs load: TTFT, TPOT and throughput against the offered rate, one line per hardware.

Input: the "load_curve" list of `trnsim compare --json` (serve/load_curve.py): points with "hw", "rate",
"ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "throughput_tok_s" and "sustained". p50 is a
solid line, p99 dashed; points past capacity (not sustained) are drawn as crosses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from trnsim.report.plots.figure import PlotError, PlotFiles, finish, new_figure

REQUIRED = ("hw", "rate", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "throughput_tok_s")


def _by_hw(points: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    if not points:
        raise PlotError("load curve: no points; run `trnsim compare` with --load-curve (the JSON key load_curve)")
    groups: dict[str, list[dict[str, Any]]] = {}
    for i, p in enumerate(points):
        missing = [k for k in REQUIRED if k not in p]
        if missing:
            raise PlotError(f"load curve: point {i} lacks {', '.join(missing)} (needs {', '.join(REQUIRED)})")
        groups.setdefault(str(p["hw"]), []).append(p)
    return {hw: sorted(ps, key=lambda p: float(p["rate"])) for hw, ps in groups.items()}


def render_load_curve(points: Sequence[dict[str, Any]], slo_ms: dict[str, float] | None = None) -> Figure:
    """Three axes against rate (req/s): TTFT, TPOT (ms, log scale) and output tokens/s. slo_ms ("ttft" /
    "tpot" -> ms) draws the targets."""
    groups = _by_hw(points)
    fig = new_figure(11.0, 3.6)
    axes = fig.subplots(1, 3)
    panels = (("ttft", "TTFT (ms)"), ("tpot", "TPOT (ms)"))
    for ax, (key, label) in zip(axes, panels):
        for n, (hw, ps) in enumerate(groups.items()):
            color = f"C{n}"
            for q, style in (("p50", "-"), ("p99", "--")):
                xs = [float(p["rate"]) for p in ps if p[f"{key}_{q}_ms"] is not None]
                ys = [float(p[f"{key}_{q}_ms"]) for p in ps if p[f"{key}_{q}_ms"] is not None]
                ax.plot(xs, ys, style, marker="o", ms=3, color=color, label=f"{hw} {q}")
            over = [p for p in ps if not p.get("sustained", True) and p[f"{key}_p50_ms"] is not None]
            ax.plot([p["rate"] for p in over], [p[f"{key}_p50_ms"] for p in over], "x", color=color, ms=8)
        target = (slo_ms or {}).get(key)
        if target is not None:
            ax.axhline(target, color="tab:red", ls=":", lw=1.2, label=f"SLO {target:g} ms")
        ax.set_yscale("log")
        ax.set_ylabel(label)
    for n, (hw, ps) in enumerate(groups.items()):
        axes[2].plot([p["rate"] for p in ps], [p["throughput_tok_s"] for p in ps], marker="o", color=f"C{n}", label=hw)
    axes[2].set_ylabel("output tokens/s")
    for ax in axes:
        ax.set_xlabel("offered rate (req/s)")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    return fig


def plot_load_curve(
    points: Sequence[dict[str, Any]], path_stem: str | Path | None, slo_ms: dict[str, float] | None = None
) -> PlotFiles:
    return finish(render_load_curve(points, slo_ms), path_stem)
