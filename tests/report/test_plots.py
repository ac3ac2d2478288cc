"""Plots: each writes a decodable, non-blank PNG and a parseable SVG; the roofline puts a kernel where its
FLOPs, HBM bytes and latency (recomputed here from its shapes and timeline) say; the Pareto front is the
brute-force one."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import matplotlib.image as mpimg
import numpy as np
import pytest

from trnsim.report.perfetto import unit_name, write_trace
from trnsim.report.plots import (
    LatencySamples,
    PlotError,
    RooflinePoint,
    kernel_point,
    pareto_front,
    plot_cost_bars,
    plot_latency_cdf,
    plot_pareto,
    plot_roofline,
    plot_timeline,
    roof_of,
)
from trnsim.report.plots.latency_cdf import LatencyPercentiles, render_latency_cdf
from trnsim.report.plots.roofline import render_roofline
from trnsim.report.plots.timeline import render_timeline
from trnsim.report.plots.trace_timeline import render_trace_timeline
from trnsim.report.trace_summary import load_trace
from trnsim.sim.timeline import N_ENGINES


def check_files(files, stem) -> None:
    png, svg = files
    assert png == stem.with_name(stem.name + ".png") and svg == stem.with_name(stem.name + ".svg")
    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.02  # not blank
    assert png.read_bytes() == files.png
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and len(list(root.iter())) > 20


def test_roofline_places_kernel_at_recomputed_intensity(random_matmul, rng, tmp_path):
    prof, _, (k, m, n) = random_matmul(rng)
    flops = 2 * m * n * k
    n_tile = min(512, n)
    # the kernel re-reads each bf16 a_t tile for every N tile and each b tile for every M tile; fp32 out once
    hbm = (k * m * (n // n_tile) + k * n * (m // 128)) * 2 + m * n * 4
    seconds = float(prof.timeline.instr_end.max()) * 1e-9
    t = prof.spec.core.tensor
    peak = t.pe_rows * t.pe_cols * 2 * t.clock_ghz * 1e9
    point = kernel_point(prof)
    assert point.flops == flops and point.hbm_bytes == hbm
    assert point.intensity == pytest.approx(flops / hbm) and point.achieved_flops == pytest.approx(flops / seconds)
    other = RooflinePoint("other", float(rng.uniform(1e6, 1e9)), float(rng.uniform(1e5, 1e8)), 1e-5)
    roof = roof_of(prof.spec, 1)
    dma = prof.spec.core.dma  # one core reaches HBM through its own DMA queues, below the chip's bandwidth
    one_core = min(dma.queues * dma.queue_bytes_per_ns, prof.spec.chip.hbm_bytes_per_ns) * 1e9
    assert roof.peak_flops == pytest.approx(peak) and roof.hbm_bytes_per_s == pytest.approx(one_core)
    assert roof_of(prof.spec, 64).hbm_bytes_per_s == pytest.approx(prof.spec.chip.hbm_bytes_per_ns * 1e9)
    fig = render_roofline([point, other], roof)
    ax = fig.axes[0]
    placed = [tuple(c.get_offsets()[0]) for c in ax.collections]
    assert placed[0] == pytest.approx((flops / hbm, flops / seconds / 1e12))
    assert placed[1] == pytest.approx((other.intensity, other.achieved_flops / 1e12))
    roof_x, roof_y = ax.lines[0].get_data()
    assert np.max(roof_y) == pytest.approx(peak / 1e12)
    assert np.asarray(roof_y) == pytest.approx(np.minimum(peak, np.asarray(roof_x) * roof.hbm_bytes_per_s) / 1e12)
    check_files(plot_roofline([point, other], roof, tmp_path / "roof"), tmp_path / "roof")
    with pytest.raises(PlotError, match="no kernel has FLOPs"):
        plot_roofline([RooflinePoint("copy", 0, 10, 1.0)], roof, None)


def test_timeline_rows_are_the_busy_units(random_matmul, rng, tmp_path):
    prof, _, _ = random_matmul(rng)
    tl = prof.timeline
    # per queue: one row per unit that did work, its bars where its slices start
    fig = render_timeline(prof, per_queue=True)
    units = sorted(set(tl.slice_unit.tolist()))
    bars = fig.axes[0].collections
    assert len(bars) == len(units)
    for unit, coll in zip(units, bars):
        starts = np.sort(tl.slice_start[tl.slice_unit == unit]) / 1000.0
        drawn = np.sort([p.vertices[0, 0] for p in coll.get_paths()])
        assert drawn == pytest.approx(starts)
    # by default the DMA queues are one track: the union of their busy intervals (by an endpoint sweep)
    fig = render_timeline(prof)
    engines = sorted(u for u in units if u < N_ENGINES)
    assert len(fig.axes[0].collections) == len(engines) + 1
    dma = fig.axes[0].collections[-1]
    dma_mask = tl.slice_unit >= N_ENGINES
    events = sorted([(s, 1) for s in tl.slice_start[dma_mask]] + [(e, -1) for e in tl.slice_end[dma_mask]])
    union_ns, depth, last = 0.0, 0, 0.0
    for t, step in events:
        if depth > 0:
            union_ns += t - last
        depth, last = depth + step, t
    drawn_ns = sum((p.vertices[:, 0].max() - p.vertices[:, 0].min()) * 1000.0 for p in dma.get_paths())
    assert drawn_ns == pytest.approx(union_ns, rel=1e-9)
    assert any(f"DMA ({tl.dma_queues} queues)" in t.get_text() for t in fig.axes[0].get_yticklabels())
    check_files(plot_timeline(prof, tmp_path / "tl"), tmp_path / "tl")


def test_latency_cdf(rng, tmp_path):
    runs = {}
    for name in ("trn2", "h100"):
        n = int(rng.integers(5, 200))
        tpot = rng.uniform(0.01, 0.05, n)
        tpot[rng.random(n) < 0.2] = np.nan  # one-token outputs have no TPOT
        runs[name] = LatencySamples(rng.uniform(0.05, 2, n), tpot, rng.uniform(1, 10, n))
    fig = render_latency_cdf(runs)
    for ax, field in zip(fig.axes, ("ttft_s", "tpot_s", "e2e_s")):
        for line, samples in zip(ax.lines, runs.values()):
            x, y = line.get_data()
            values = getattr(samples, field)
            values = np.sort(values[~np.isnan(values)]) * 1000
            assert np.asarray(x) == pytest.approx(values)
            assert np.asarray(y) == pytest.approx(np.arange(1, len(values) + 1) / len(values))
    check_files(plot_latency_cdf(runs, tmp_path / "cdf"), tmp_path / "cdf")
    with pytest.raises(PlotError, match="no serving results"):
        plot_latency_cdf({}, None)


def test_cost_bars(rng, tmp_path):
    rows = [
        {"name": n, "usd_per_mtok": float(rng.uniform(0.1, 3)), "j_per_tok": float(rng.uniform(0.1, 5))}
        for n in ("trn2", "h100", "h200")
    ]
    rows[2]["j_per_tok"] = None
    check_files(plot_cost_bars(rows, tmp_path / "cost"), tmp_path / "cost")
    with pytest.raises(PlotError, match="row 0 has no 'name'"):
        plot_cost_bars([{"usd_per_mtok": 1.0}], None)
    with pytest.raises(PlotError, match="no row has usd_per_mtok or j_per_tok"):
        plot_cost_bars([{"name": "a"}], None)


def test_pareto_front_is_the_brute_force_one(rng, tmp_path):
    rows = [
        {"name": f"c{i}", "throughput_tok_s": float(rng.uniform(100, 1e4)), "usd_per_mtok": float(rng.uniform(0.1, 5))}
        for i in range(int(rng.integers(3, 40)))
    ]
    front = set(pareto_front(rows, "throughput_tok_s", "usd_per_mtok", x_higher=True, y_higher=False))
    for i, r in enumerate(rows):
        beaten = any(
            o["throughput_tok_s"] > r["throughput_tok_s"] and o["usd_per_mtok"] < r["usd_per_mtok"] for o in rows
        )
        assert (i in front) == (not beaten)  # random floats: no ties
    check_files(plot_pareto(rows, tmp_path / "pareto"), tmp_path / "pareto")
    with pytest.raises(PlotError, match="no row has both 'throughput_tok_s' and 'tpot_ms'"):
        plot_pareto(rows, None, y_key="tpot_ms")


def test_latency_cdf_draws_the_slo_and_percentile_points(rng):
    runs = {"trn2": LatencySamples(rng.uniform(0.05, 2, 50), rng.uniform(0.01, 0.05, 50), rng.uniform(1, 10, 50))}
    p = sorted(rng.uniform(10, 900, 3))
    block = {"p50": p[0], "p90": p[1], "p99": p[2], "mean": 1e9}  # the mean is not a point of the CDF
    known = {"h100": LatencyPercentiles(block, block, block)}
    slo = {"ttft": float(rng.uniform(100, 2000)), "tpot": float(rng.uniform(10, 100))}
    fig = render_latency_cdf(runs, slo, known)
    for ax, key in zip(fig.axes, ("ttft", "tpot", None)):
        vertical = [ln for ln in ax.lines if ln.get_label().startswith("SLO")]
        if key is None:
            assert vertical == []
        else:
            assert len(vertical) == 1 and np.allclose(vertical[0].get_xdata(), slo[key])
        points = next(ln for ln in ax.lines if ln.get_label() == "h100 (percentiles)")
        assert np.allclose(points.get_xdata(), p) and np.allclose(points.get_ydata(), [0.5, 0.9, 0.99])


def test_timeline_from_a_trace_file_matches_the_profile(random_matmul, rng, tmp_path):
    prof, _, _ = random_matmul(rng)
    tl = prof.timeline
    events = load_trace(write_trace(prof, tmp_path / "t.json"))
    fig = render_trace_timeline(events, "t.json")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    engines = sorted({int(u) for u in tl.slice_unit.tolist() if u < N_ENGINES})
    assert labels == [unit_name(u) for u in engines] + [
        f"DMA ({len(set(tl.slice_unit[tl.slice_unit >= N_ENGINES].tolist()))} queues)"
    ]
    for unit, coll in zip(engines, ax.collections):  # an engine runs in order: its busy time is its slices' sum
        drawn_us = sum(p.vertices[:, 0].max() - p.vertices[:, 0].min() for p in coll.get_paths())
        m = tl.slice_unit == unit
        assert drawn_us == pytest.approx(float((tl.slice_end[m] - tl.slice_start[m]).sum()) / 1000.0, rel=1e-6)
