"""Engine-utilisation timeline of one kernel: a row per engine / DMA queue that did work, busy intervals."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from trnsim.report.perfetto import unit_name
from trnsim.report.plots.figure import PlotError, PlotFiles, finish, new_figure

if TYPE_CHECKING:
    from trnsim.runtime.profile import Profile

_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:grey"]


def render_timeline(profile: Profile) -> Figure:
    """One broken_barh collection per (core, unit) row that did work, top to bottom in row order."""
    tl = profile.timeline
    if len(tl.slice_instr) == 0:
        raise PlotError(f"timeline: kernel {profile.kernel_name} ran no instructions; nothing to draw")
    rows = sorted({(c, u) for c, u in zip(tl.slice_core.tolist(), tl.slice_unit.tolist())})
    fig = new_figure(8.0, max(2.0, 0.28 * len(rows) + 1.2))
    ax = fig.add_subplot()
    for y, (core, unit) in enumerate(rows):
        m = (tl.slice_core == core) & (tl.slice_unit == unit)
        starts = tl.slice_start[m] / 1000.0
        widths = np.maximum(tl.slice_end[m] - tl.slice_start[m], 0.0) / 1000.0
        colour = _COLOURS[min(unit, len(_COLOURS) - 1)]
        ax.broken_barh(list(zip(starts.tolist(), widths.tolist())), (y - 0.4, 0.8), facecolors=colour)
    labels = [(f"c{c} " if tl.n_cores > 1 else "") + unit_name(u) for c, u in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, profile.latency_us or 1.0)
    ax.set_xlabel("time (µs)")
    ax.set_title(f"{profile.kernel_name} on {profile.target}: engine and DMA queue activity")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def plot_timeline(profile: Profile, path_stem: str | Path | None) -> PlotFiles:
    return finish(render_timeline(profile), path_stem)
