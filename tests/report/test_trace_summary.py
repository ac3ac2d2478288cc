"""`trnsim trace summarize`: its numbers against a brute-force recomputation from the raw events."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
from typer.testing import CliRunner

from trnsim.cli import app
from trnsim.report.perfetto import write_trace
from trnsim.report.trace_summary import ANY_DMA, TraceError, load_trace, summarize_file


def _covered_length(intervals: list[tuple[float, float]]) -> float:
    """Union length by brute force: every elementary piece between breakpoints, covered by any interval?"""
    if not intervals:
        return 0.0
    arr = np.array(intervals)
    points = np.unique(arr.ravel())
    mids = (points[:-1] + points[1:]) / 2
    covered = ((arr[:, 0][None, :] <= mids[:, None]) & (mids[:, None] < arr[:, 1][None, :])).any(axis=1)
    return float(np.diff(points)[covered].sum())


def test_summary_equals_brute_force(random_matmul, exp_profile, rng, tmp_path):
    x = rng.standard_normal((128 * int(rng.integers(1, 3)), int(rng.integers(64, 400)))).astype(np.float32)
    for prof in (random_matmul(rng)[0], exp_profile(x)[0]):
        path = write_trace(prof, tmp_path / "t.json")
        top = int(rng.integers(1, 6))
        s = summarize_file(path, top)
        events = json.loads(path.read_text())["traceEvents"]
        slices = [e for e in events if e["ph"] == "X"]
        totals: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        per_track: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
        for e in slices:
            totals[e["name"]] += e["dur"]
            counts[e["name"]] += 1
            per_track[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
        span = max(e["ts"] + e["dur"] for e in slices) - min(e["ts"] for e in slices)
        assert s.span_us == pytest.approx(span)
        expected_top = sorted(totals, key=lambda n: -totals[n])[:top]
        assert [t.name for t in s.top] == expected_top
        for t in s.top:
            assert t.total_us == pytest.approx(totals[t.name]) and t.count == counts[t.name]
        names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
        busy = {names[k]: _covered_length(v) for k, v in per_track.items()}
        dma = [iv for k, v in per_track.items() if names[k].startswith("dma q") for iv in v]
        busy[ANY_DMA] = _covered_length(dma)
        got = {t.track: t for t in s.tracks}
        assert set(got) == set(busy)
        for name, b in busy.items():
            assert got[name].busy_us == pytest.approx(b, abs=1e-9)
            assert got[name].utilisation == pytest.approx(b / span)
        engines = {k: v for k, v in busy.items() if not k.startswith("dma q")}
        assert s.bottleneck == f"NeuronCore 0 / {max(engines, key=lambda k: engines[k])}"
        # the busiest engine agrees with the profile's own (DMA: any queue moving data)
        assert s.bottleneck.endswith(prof.bottleneck()) or (prof.bottleneck() == "dma" and ANY_DMA in s.bottleneck)
        peaks: dict[str, float] = defaultdict(lambda: -np.inf)
        for e in events:
            if e["ph"] == "C":
                (value,) = e["args"].values()
                peaks[e["name"]] = max(peaks[e["name"]], value)
        assert {k.split(" / ")[1].split(" (")[0]: v for k, v in s.counter_peaks.items()} == dict(peaks)


def test_cli_prints_tables_and_json(random_matmul, rng, tmp_path):
    path = write_trace(random_matmul(rng)[0], tmp_path / "t.json")
    res = CliRunner().invoke(app, ["trace", "summarize", str(path), "--top", "2"])
    assert res.exit_code == 0, res.output
    assert "busiest" in res.output and "peak memory occupancy" in res.output
    assert "dma q0" not in res.output and "dma (any queue)" in res.output  # the queues are one row by default
    res = CliRunner().invoke(app, ["trace", "summarize", str(path), "--per-queue"], env={"COLUMNS": "120"})
    assert res.exit_code == 0 and "dma q0" in res.output
    res = CliRunner().invoke(app, ["trace", "summarize", str(path), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == summarize_file(path).to_dict()


def test_bad_trace_files_name_the_problem(tmp_path):
    with pytest.raises(TraceError, match="not found"):
        load_trace(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"traceEvents": [\n  {"ph": "X"},\n  oops\n]}')
    with pytest.raises(TraceError, match=r"bad.json line 3: not valid JSON"):
        load_trace(bad)
    other = tmp_path / "other.json"
    other.write_text('{"latency_us": 3}')
    with pytest.raises(TraceError, match="no Chrome-trace events"):
        load_trace(other)
    with pytest.raises(TraceError, match="--top must be at least 1"):
        summarize_file(other, 0)
