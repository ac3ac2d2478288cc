"""Plots (matplotlib, Agg): each `plot_x(data, path_stem)` writes PATH_STEM.png and .svg and returns a
PlotFiles (the paths, plus the PNG bytes and SVG text for embedding in a report)."""

from trnsim.report.plots.cost_bars import plot_cost_bars
from trnsim.report.plots.figure import PlotError, PlotFiles
from trnsim.report.plots.latency_cdf import LatencySamples, latency_samples, plot_latency_cdf
from trnsim.report.plots.pareto import pareto_front, plot_pareto
from trnsim.report.plots.roofline import Roof, RooflinePoint, graph_points, kernel_point, plot_roofline, roof_of
from trnsim.report.plots.timeline import plot_timeline

__all__ = [
    "LatencySamples",
    "PlotError",
    "PlotFiles",
    "Roof",
    "RooflinePoint",
    "graph_points",
    "kernel_point",
    "latency_samples",
    "pareto_front",
    "plot_cost_bars",
    "plot_latency_cdf",
    "plot_pareto",
    "plot_roofline",
    "plot_timeline",
    "roof_of",
]
