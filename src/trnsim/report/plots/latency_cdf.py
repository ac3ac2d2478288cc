"""TTFT, TPOT and end-to-end latency CDFs of one or more serving simulations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from trnsim.report.plots.figure import PlotError, PlotFiles, finish, new_figure


@dataclass(frozen=True)
class LatencySamples:
    """Per-request latencies in seconds (NaN entries, e.g. TPOT of one-token outputs, are left out)."""

    ttft_s: np.ndarray
    tpot_s: np.ndarray
    e2e_s: np.ndarray


def latency_samples(result: Any) -> LatencySamples:
    """From a ServeResult (anything with ttft_s, tpot_s and e2e_s arrays)."""
    return LatencySamples(np.asarray(result.ttft_s), np.asarray(result.tpot_s), np.asarray(result.e2e_s))


def empirical_cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.sort(values[~np.isnan(values)])
    return v, np.arange(1, len(v) + 1) / len(v)


@dataclass(frozen=True)
class LatencyPercentiles:
    """Only the percentiles of a run (a serving JSON without per-request samples): points on its CDF."""

    ttft_ms: dict[str, float]  # "p50" -> ms, ...
    tpot_ms: dict[str, float]
    e2e_ms: dict[str, float]


def percentile_points(block: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(ms, fraction) for the pNN keys of a percentile block, in order of fraction."""
    pairs = sorted((float(k[1:]) / 100.0, float(v)) for k, v in block.items() if k[1:].isdigit() and v == v)
    return np.array([v for _, v in pairs]), np.array([q for q, _ in pairs])


def render_latency_cdf(
    runs: dict[str, LatencySamples],
    slo_ms: dict[str, float] | None = None,
    percentiles: dict[str, LatencyPercentiles] | None = None,
) -> Figure:
    """Three axes (TTFT, TPOT, E2E), one step line per run with samples, in ms; runs known only by their
    percentiles are drawn as marked points. `slo_ms` ("ttft"/"tpot" -> ms) adds the targets as dashed lines."""
    percentiles = percentiles or {}
    if not runs and not percentiles:
        raise PlotError("latency CDF: no serving results given; pass at least one name -> LatencySamples")
    fig = new_figure(10.0, 3.6)
    axes = fig.subplots(1, 3)
    drawn = 0
    for ax, (field, title) in zip(axes, (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "end to end"))):
        for name, samples in runs.items():
            x, y = empirical_cdf(np.asarray(getattr(samples, field), dtype=float))
            if len(x):
                ax.step(x * 1000.0, y, where="post", label=name)
                drawn += 1
        for name, known in percentiles.items():
            x, y = percentile_points(getattr(known, field.replace("_s", "_ms")))
            if len(x):
                ax.plot(x, y, marker="o", ls="--", label=f"{name} (percentiles)")
                drawn += 1
        target = (slo_ms or {}).get(field.removesuffix("_s"))
        if target is not None:
            ax.axvline(target, color="tab:red", ls="--", lw=1.2, label=f"SLO {target:g} ms")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_title(title)
        ax.set_xlabel("ms")
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
    if not drawn:
        raise PlotError("latency CDF: every result has no finished requests; simulate more requests")
    axes[0].set_ylabel("fraction of requests")
    axes[0].legend(fontsize=7, loc="lower right")
    return fig


def plot_latency_cdf(
    runs: dict[str, LatencySamples],
    path_stem: str | Path | None,
    slo_ms: dict[str, float] | None = None,
    percentiles: dict[str, LatencyPercentiles] | None = None,
) -> PlotFiles:
    return finish(render_latency_cdf(runs, slo_ms, percentiles), path_stem)
