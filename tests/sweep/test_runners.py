"""Runners: worker processes and a real local Ray cluster give exactly the rows of a plain loop."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from trnsim.sweep import SweepError, parse_sets, run_sweep


def _space(rng):
    hbm = sorted({round(float(v), 1) for v in rng.uniform(1500, 6000, 2)})
    return parse_sets([f"chip.hbm_bytes_per_ns={','.join(map(str, hbm))}", "tp=2,4,3"])


def test_local_processes_equal_sequential(evaluator, rng) -> None:
    space = _space(rng)
    sequential = [evaluator(p) for p in space.points()]
    assert run_sweep(space, evaluator, workers=2, progress=False) == sequential
    assert run_sweep(space, evaluator, workers=1, progress=False) == sequential
    assert sum(r["error"] is not None for r in sequential) == len(sequential) // 3  # the tp=3 points


def test_ray_local_cluster_equals_local_run(evaluator, rng) -> None:
    ray = pytest.importorskip("ray")
    space = _space(rng)
    local = run_sweep(space, evaluator, workers=1, progress=False)
    # No Ray session yet: run_sweep starts a real local cluster (ray.init(num_cpus=2, include_dashboard=False)),
    # runs one task per point there and shuts it down again.
    assert not ray.is_initialized()
    rows = run_sweep(space, evaluator, backend="ray", workers=2, progress=False)
    assert not ray.is_initialized()
    assert rows == local


def test_bad_runner_arguments(evaluator, monkeypatch) -> None:
    space = parse_sets(["tp=1"])
    with pytest.raises(SweepError, match="unknown sweep backend 'dask'"):
        run_sweep(space, evaluator, backend="dask")  # type: ignore[arg-type]
    with pytest.raises(SweepError, match="needs the ray backend"):
        run_sweep(space, evaluator, address="ray://x:1")
    if importlib.util.find_spec("ray") is not None:
        with pytest.raises(SweepError, match=r"cannot reach the Ray cluster at '127\.0\.0\.1:1'"):
            run_sweep(space, evaluator, backend="ray", address="127.0.0.1:1", progress=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(SweepError, match=r"pip install 'trnsim\[ray\]'"):
        run_sweep(space, evaluator, backend="ray", progress=False)
