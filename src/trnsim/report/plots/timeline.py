"""Engine-utilisation timeline of one kernel: a row per engine that did work, busy intervals.

A core's DMA queues are drawn as ONE track by default ("DMA (16 queues)": the time any queue moves data),
since sixteen near-identical rows bury the engines; `per_queue=True` draws a row per queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from trnsim.report.perfetto import unit_name
from trnsim.report.plots.figure import PlotError, PlotFiles, finish, new_figure
from trnsim.sim.timeline import N_ENGINES

if TYPE_CHECKING:
    from trnsim.runtime.profile import Profile

_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:grey"]
DMA_TRACK = N_ENGINES  # the row id of the merged DMA track


def merge_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of [start, end) intervals as disjoint, sorted intervals."""
    order = np.argsort(starts, kind="stable")
    merged_s: list[float] = []
    merged_e: list[float] = []
    for s, e in zip(starts[order].tolist(), ends[order].tolist()):
        if merged_e and s <= merged_e[-1]:
            merged_e[-1] = max(merged_e[-1], e)
        else:
            merged_s.append(s)
            merged_e.append(e)
    return np.array(merged_s), np.array(merged_e)


def render_timeline(profile: Profile, per_queue: bool = False) -> Figure:
    """One broken_barh collection per (core, row) that did work, top to bottom in row order."""
    tl = profile.timeline
    if len(tl.slice_instr) == 0:
        raise PlotError(f"timeline: kernel {profile.kernel_name} ran no instructions; nothing to draw")
    units = tl.slice_unit if per_queue else np.minimum(tl.slice_unit, DMA_TRACK)
    rows = sorted({(c, u) for c, u in zip(tl.slice_core.tolist(), units.tolist())})
    fig = new_figure(8.0, max(2.0, 0.28 * len(rows) + 1.2))
    ax = fig.add_subplot()
    for y, (core, unit) in enumerate(rows):
        m = (tl.slice_core == core) & (units == unit)
        starts, ends = tl.slice_start[m], tl.slice_end[m]
        if not per_queue and unit == DMA_TRACK:
            starts, ends = merge_intervals(starts, ends)
        widths = np.maximum(ends - starts, 0.0) / 1000.0
        colour = _COLOURS[min(unit, len(_COLOURS) - 1)]
        ax.broken_barh(list(zip((starts / 1000.0).tolist(), widths.tolist())), (y - 0.4, 0.8), facecolors=colour)
    dma_label = f"DMA ({tl.dma_queues} queues)"
    labels = [
        (f"c{c} " if tl.n_cores > 1 else "") + (dma_label if not per_queue and u == DMA_TRACK else unit_name(u))
        for c, u in rows
    ]
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, profile.latency_us or 1.0)
    ax.set_xlabel("time (µs)")
    what = "DMA queue" if per_queue else "DMA (any queue busy)"
    ax.set_title(f"{profile.kernel_name} on {profile.target}: engine and {what} activity")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def plot_timeline(profile: Profile, path_stem: str | Path | None, per_queue: bool = False) -> PlotFiles:
    return finish(render_timeline(profile, per_queue), path_stem)
