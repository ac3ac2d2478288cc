"""An engine timeline drawn from a Chrome/Perfetto trace (what `--trace` writes), for reports built from
files: a row per (process, thread) that did work, a process's DMA queues merged into one track."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from trnsim.report.plots.figure import PlotError, PlotFiles, finish, new_figure
from trnsim.report.plots.timeline import merge_intervals

_DMA_PREFIX = "dma q"


def _names(events: list[dict[str, Any]], kind: str) -> dict[Any, str]:
    out: dict[Any, str] = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == kind:
            key = e.get("pid") if kind == "process_name" else (e.get("pid"), e.get("tid"))
            out[key] = str(e.get("args", {}).get("name", key))
    return out


def render_trace_timeline(events: list[dict[str, Any]], title: str) -> Figure:
    """Busy intervals (µs) of every track; the tracks named "dma q*" of one process form one "DMA" row."""
    threads = _names(events, "thread_name")
    processes = _names(events, "process_name")
    rows: dict[tuple[Any, str], list[tuple[float, float]]] = {}
    queues: dict[Any, set[Any]] = {}
    for e in events:
        if e.get("ph") != "X":
            continue
        pid, tid = e.get("pid"), e.get("tid")
        name = threads.get((pid, tid), str(tid))
        if name.startswith(_DMA_PREFIX):
            queues.setdefault(pid, set()).add(tid)
            name = "DMA"
        start = float(e["ts"])
        rows.setdefault((pid, name), []).append((start, start + float(e.get("dur", 0.0))))
    if not rows:
        raise PlotError(f"trace timeline: {title} has no complete ('X') events to draw")
    order = sorted(rows, key=lambda k: (str(k[0]), k[1] == "DMA", k[1]))
    fig = new_figure(8.0, max(2.0, 0.28 * len(order) + 1.2))
    ax = fig.add_subplot()
    span = 0.0
    for y, key in enumerate(order):
        spans = np.array(rows[key])
        starts, ends = merge_intervals(spans[:, 0], spans[:, 1])
        span = max(span, float(ends.max()))
        ax.broken_barh(list(zip(starts.tolist(), (ends - starts).tolist())), (y - 0.4, 0.8))
    multi = len({pid for pid, _ in order}) > 1
    labels = []
    for pid, name in order:
        shown = f"DMA ({len(queues.get(pid, ()))} queues)" if name == "DMA" else name
        labels.append(f"{processes.get(pid, pid)}: {shown}" if multi else shown)
    ax.set_yticks(range(len(order)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, span or 1.0)
    ax.set_xlabel("time (µs)")
    ax.set_title(f"{title}: engine and DMA (any queue busy) activity")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def plot_trace_timeline(events: list[dict[str, Any]], title: str, path_stem: str | Path | None) -> PlotFiles:
    return finish(render_trace_timeline(events, title), path_stem)
