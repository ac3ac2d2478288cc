"""Routers: round-robin alternates; least-outstanding always picks a least-loaded replica."""

from __future__ import annotations

import numpy as np

from trnsim.serve import ContinuousBatching, Poisson, RooflineStepCost, Uniform, Workload, simulate


def outstanding_at_arrivals(res) -> np.ndarray:
    """Brute force: for each request, every replica's routed-but-unfinished count just before it arrived."""
    n, r = len(res.arrival_s), len(res.replicas)
    counts = np.zeros((n, r), dtype=int)
    for i in range(n):
        earlier = np.arange(n) < i  # routed before it (ids follow arrival order)
        open_ = earlier & (res.finish_s > res.arrival_s[i])
        counts[i] = np.bincount(res.replica[open_], minlength=r)
    return counts


def test_round_robin_alternates(model, replica, rng) -> None:
    work = Workload(90, Poisson(50.0), Uniform(10, 300), Uniform(1, 50), seed=int(rng.integers(2**31)))
    res = simulate(model, [replica] * 3, work, ContinuousBatching(), router="round-robin")
    np.testing.assert_array_equal(res.replica, np.arange(90) % 3)


def test_least_outstanding_picks_a_least_loaded_replica_and_beats_round_robin(model, cost, make_replica, rng) -> None:
    slow_cost = RooflineStepCost(2e9, 2e9, 65536, 25e12, 0.25e12, 4e-4)  # 4x slower device
    fast, slow = make_replica(cost, 100_000), make_replica(slow_cost, 100_000)
    work = Workload(300, Poisson(60.0), Uniform(10, 500), Uniform(10, 100), seed=int(rng.integers(2**31)))
    lo = simulate(model, [slow, fast], work, ContinuousBatching(), router="least-outstanding")
    counts = outstanding_at_arrivals(lo)
    chosen = counts[np.arange(300), lo.replica]
    assert np.all(chosen == counts.min(axis=1))
    assert np.sum(lo.replica == 1) > np.sum(lo.replica == 0)  # the fast replica takes more
    rr = simulate(model, [slow, fast], work, ContinuousBatching(), router="round-robin")
    assert lo.metrics.e2e_ms.mean < rr.metrics.e2e_ms.mean
