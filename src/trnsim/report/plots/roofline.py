"""Roofline: the target's TensorE compute roof and HBM bandwidth roof, with each kernel or op placed at its
arithmetic intensity (FLOP per HBM byte) and achieved FLOP/s."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from trnsim.report.plots.figure import PlotError, PlotFiles, finish, new_figure

if TYPE_CHECKING:
    from trnsim.hw.spec import HardwareSpec
    from trnsim.runtime.graph_profile import GraphProfile
    from trnsim.runtime.profile import Profile


@dataclass(frozen=True)
class Roof:
    name: str
    peak_flops: float  # FLOP/s, bf16 TensorE peak of the cores used
    hbm_bytes_per_s: float

    @property
    def ridge(self) -> float:
        """Intensity (FLOP/B) where the bandwidth roof meets the compute roof."""
        return self.peak_flops / self.hbm_bytes_per_s

    def attainable(self, intensity: float) -> float:
        return min(self.peak_flops, intensity * self.hbm_bytes_per_s)


@dataclass(frozen=True)
class RooflinePoint:
    name: str
    flops: float
    hbm_bytes: float
    seconds: float

    @property
    def intensity(self) -> float:
        return self.flops / self.hbm_bytes

    @property
    def achieved_flops(self) -> float:
        return self.flops / self.seconds


def roof_of(spec: HardwareSpec, cores: int = 1) -> Roof:
    """bf16 peak = PE rows x cols x 2 FLOP x clock per core; HBM roof = what `cores` cores can pull from HBM:
    their DMA queues' rate, capped by the chip's HBM bandwidth (one core cannot use the whole chip's)."""
    t = spec.core.tensor
    peak = t.pe_rows * t.pe_cols * 2 * t.clock_ghz * 1e9 * cores
    dma = spec.core.dma
    hbm = min(cores * dma.queues * dma.queue_bytes_per_ns, spec.chip.hbm_bytes_per_ns) * 1e9
    chip_cores = spec.chip.physical_cores
    scope = "per chip" if cores == chip_cores else f"{cores} core{'s' if cores > 1 else ''} of {chip_cores}"
    return Roof(f"{spec.name}, {scope}", peak, hbm)


def graph_roof(graph: GraphProfile) -> Roof:
    """The roof of the rank a graph ran on: its cores of a Trainium-class chip, or one GPU (a GPU estimate)."""
    gpu = getattr(graph, "gpu", None)
    if gpu is not None:  # compiler.gpu_estimate.GpuGraphProfile: peak for the estimate's dtype, HBM of one GPU
        return Roof(f"{gpu.name} (1 GPU)", graph.peak_tflops * 1e12, gpu.memory.hbm_tb_per_s * 1e12)
    return roof_of(graph.spec, graph.cores_per_rank)


def kernel_point(profile: Profile) -> RooflinePoint:
    return RooflinePoint(profile.kernel_name, profile.flops, profile.hbm_bytes, profile.latency_us * 1e-6)


def graph_points(graph: GraphProfile) -> list[RooflinePoint]:
    """One point per library kernel of a compiled model (all its calls together)."""
    return [
        RooflinePoint(name, g["flops"], g["hbm_bytes"], g["device_us"] * 1e-6)
        for name, g in graph.by_kernel().items()
        if not name.startswith("(")  # "(view)", "(host)" ...: not kernels
    ]


def placeable(points: list[RooflinePoint]) -> list[RooflinePoint]:
    """Points that have a place on log axes: some FLOPs, some HBM bytes, some time."""
    return [p for p in points if p.flops > 0 and p.hbm_bytes > 0 and p.seconds > 0]


def render_roofline(points: list[RooflinePoint], roof: Roof) -> Figure:
    """The roof (black), the compute peak and ridge (dotted), and one scatter collection per point (in order)."""
    pts = placeable(points)
    if not pts:
        raise PlotError(
            "roofline: no kernel has FLOPs, HBM bytes and time > 0 to place; "
            "pass profiles of kernels that use TensorE and HBM"
        )
    xs = np.array([p.intensity for p in pts])
    ys = np.array([p.achieved_flops for p in pts])
    lo = min(xs.min(), roof.ridge) / 4
    hi = max(xs.max(), roof.ridge) * 4
    grid = np.geomspace(lo, hi, 200)
    fig = new_figure(9.0, 4.6)
    ax = fig.add_subplot()
    ax.loglog(grid, np.minimum(roof.peak_flops, grid * roof.hbm_bytes_per_s) / 1e12, color="black", lw=2)
    ax.axhline(
        roof.peak_flops / 1e12,
        color="tab:red",
        ls=":",
        lw=1,
        label=f"compute roof {roof.peak_flops / 1e12:.0f} TFLOP/s",
    )
    ax.axvline(roof.ridge, color="grey", ls=":", lw=1, label=f"ridge {roof.ridge:.0f} FLOP/B")
    # names go to a legend beside the axes: labels written next to the points overlap when kernels cluster
    for p, x, y in zip(pts, xs, ys):
        ax.scatter([x], [y / 1e12], s=40, zorder=3, label=p.name)
    ax.set_xlabel("arithmetic intensity (FLOP / HBM byte)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.set_title(
        f"roofline, {roof.name}: {roof.peak_flops / 1e12:,.0f} TFLOP/s, memory {roof.hbm_bytes_per_s / 1e9:,.0f} GB/s",
        fontsize=10,
    )
    ax.set_ylim(min(ys.min(), roof.attainable(lo)) / 1e12 / 2, roof.peak_flops / 1e12 * 2)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def plot_roofline(points: list[RooflinePoint], roof: Roof, path_stem: str | Path | None) -> PlotFiles:
    return finish(render_roofline(points, roof), path_stem)
