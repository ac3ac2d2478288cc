"""The serving timeline: one slice per step, request phases that add up to each request's latency, and
queue-depth counters equal to the requests that had arrived and were not yet admitted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trnsim.serve import ContinuousBatching, Poisson, ServeError, Uniform, Workload, simulate
from trnsim.serve.serving_trace import serving_trace_document, write_serving_trace


def test_timeline_matches_the_run(model, replica, rng, tmp_path) -> None:
    work = Workload(
        int(rng.integers(30, 120)), Poisson(40.0), Uniform(50, 600), Uniform(2, 40), seed=int(rng.integers(1 << 30))
    )
    res = simulate(model, [replica, replica], work, ContinuousBatching(max_batch=8), record_steps=True)
    doc = serving_trace_document(res)
    events = doc["traceEvents"]
    steps = [e for e in events if e["ph"] == "X" and e["tid"] == 0]
    assert len(steps) == int(res.steps.sum())
    assert sum(e["dur"] for e in steps) == pytest.approx(float(res.busy_s.sum()) * 1e6, rel=1e-9)
    for rid in range(len(res.arrival_s)):
        phases = [e for e in events if e["ph"] == "X" and e["tid"] == rid + 1]
        assert sum(e["dur"] for e in phases) == pytest.approx(float(res.e2e_s[rid]) * 1e6, rel=1e-9)
    assert res.step_log is not None and not res.preemptions.any()
    for step in res.step_log:  # queued = arrived on this replica and not admitted yet
        mine = res.replica == step.replica
        waiting = mine & (res.arrival_s <= step.start_s) & (res.scheduled_s > step.start_s)
        assert step.queue_depth == int(waiting.sum())
        assert 0 < step.kv_used_blocks <= res.kv_blocks[step.replica]
    batch = [e["args"]["batch"] for e in events if e["ph"] == "C" and e["name"] == "batch"]
    assert max(batch) == max(s.batch for s in res.step_log) <= 8
    path = write_serving_trace(res, tmp_path / "serve.json")
    assert json.loads(path.read_text())["traceEvents"] == json.loads(json.dumps(events))
    with pytest.raises(ServeError, match="record_steps=True"):
        serving_trace_document(simulate(model, replica, work))
    assert np.all(res.scheduled_s >= res.arrival_s)
