"""Latency vs load: at light load the latencies are the lone-request ones (closed form from the step cost);
sustained points complete what is offered; well past capacity the saturation check flags the point."""

from __future__ import annotations

import pytest

from trnsim.report.plots.figure import PlotError
from trnsim.report.plots.load_curve import plot_load_curve
from trnsim.serve import SLO, ClosedLoop, ContinuousBatching, Fixed, Poisson, Workload, simulate
from trnsim.serve.load_curve import load_curve


def test_load_curve_from_light_load_to_overload(model, cost, replica, rng, tmp_path) -> None:
    prompt, output = int(rng.integers(100, 800)), int(rng.integers(10, 60))
    batch = ContinuousBatching(max_batch=32)
    seed = int(rng.integers(2**31))
    ceiling = simulate(model, replica, Workload(3000, ClosedLoop(32), Fixed(prompt), Fixed(output), seed=seed))
    top = ceiling.metrics.request_s  # the most requests per second the replica completes
    lone_ttft = cost.step_time_s(1, prompt, prompt)
    lone_tpot = sum(cost.step_time_s(1, 1, prompt + j) for j in range(1, output)) / (output - 1)
    work = Workload(200, Poisson(1.0), Fixed(prompt), Fixed(output), seed=seed)
    rates = [top * 0.001, top * 0.5, top * 2.0]
    points = load_curve(model, replica, work, rates, batch, slo=SLO(ttft_ms=1e6), hw="test")
    light, middle, over = points
    assert [p["rate"] for p in points] == sorted(rates)
    assert light["ttft_p50_ms"] == pytest.approx(lone_ttft * 1e3, rel=1e-6)  # nobody else in the system
    assert light["tpot_p50_ms"] == pytest.approx(lone_tpot * 1e3, rel=1e-6)
    assert middle["sustained"] and middle["ttft_p50_ms"] >= light["ttft_p50_ms"] * (1 - 1e-9)
    assert middle["throughput_tok_s"] == pytest.approx(middle["completed_req_s"] * output, rel=1e-12)
    # Completions in the window's second half differ from its arrivals by the change in the number in the
    # system, which a batching server swings in bursts (up to ~10% of a 200-request half seen over seeds).
    assert middle["completed_req_s"] == pytest.approx(middle["offered_req_s"], rel=0.2)
    assert not over["sustained"] and over["throughput_tok_s"] < over["rate"] * output * 0.7

    files = plot_load_curve(points + [p | {"hw": "other"} for p in points], tmp_path / "curve", {"ttft": 500.0})
    assert [f.suffix for f in files] == [".png", ".svg"] and files.png.startswith(b"\x89PNG")
    with pytest.raises(PlotError, match="no points"):
        plot_load_curve([], None)
    with pytest.raises(PlotError, match="lacks ttft_p99_ms"):
        plot_load_curve([{k: v for k, v in light.items() if k != "ttft_p99_ms"}], None)
