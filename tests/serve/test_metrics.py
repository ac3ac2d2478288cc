"""Metrics against a plain re-computation from the per-request arrays."""

from __future__ import annotations

import numpy as np
import pytest

from trnsim.serve import SLO, ContinuousBatching, Poisson, Uniform, Workload, simulate


def test_metrics_recomputed_by_hand(model, cost, make_replica, rng) -> None:
    replicas = [
        make_replica(cost, 100_000, price_per_hour=float(rng.uniform(1, 40)), power_w=float(rng.uniform(100, 900)))
        for _ in range(2)
    ]
    slo = SLO(ttft_ms=float(rng.uniform(20, 200)), tpot_ms=float(rng.uniform(3, 8)))
    work = Workload(
        300, Poisson(float(rng.uniform(20, 200))), Uniform(1, 1500), Uniform(1, 100), seed=int(rng.integers(2**31))
    )
    res = simulate(model, replicas, work, ContinuousBatching(), slo=slo, router="least-outstanding")
    m = res.metrics

    duration = res.finish_s.max() - res.arrival_s.min()
    ttft = (res.first_token_s - res.arrival_s) * 1e3
    multi = res.output_tokens > 1
    tpot = (res.finish_s - res.first_token_s)[multi] / (res.output_tokens[multi] - 1) * 1e3
    e2e = (res.finish_s - res.arrival_s) * 1e3
    for got, values in ((m.ttft_ms, ttft), (m.tpot_ms, tpot), (m.e2e_ms, e2e)):
        srt = np.sort(values)
        assert got.mean == pytest.approx(values.mean())
        assert got.p50 == pytest.approx(np.median(values))
        assert srt[int(np.floor(0.9 * (len(srt) - 1)))] <= got.p90 <= srt[int(np.ceil(0.9 * (len(srt) - 1)))]
        assert got.p50 <= got.p90 <= got.p99 <= srt[-1]
    out = res.output_tokens.sum()
    assert m.throughput_tok_s == pytest.approx(out / duration)
    assert m.total_tok_s == pytest.approx((out + res.prompt_tokens.sum()) / duration)
    good = sum(
        1
        for i in range(len(ttft))
        if ttft[i] <= slo.ttft_ms
        and (
            res.output_tokens[i] == 1
            or (res.finish_s[i] - res.first_token_s[i]) / (res.output_tokens[i] - 1) * 1e3 <= slo.tpot_ms
        )
    )
    assert m.goodput_req_s == pytest.approx(good / duration)
    assert m.slo_attainment == pytest.approx(good / len(ttft))
    price = sum(r.price_per_hour for r in replicas)
    assert m.usd_per_mtok == pytest.approx(price * duration / 3600 / out * 1e6)
    assert m.j_per_tok == pytest.approx(sum(r.power_w for r in replicas) * duration / out)
    assert m.utilization == pytest.approx(np.mean(res.busy_s / duration))
    assert 0 < m.utilization <= 1

    d = res.to_dict()
    for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
        assert set(d[key]) == {"p50", "p90", "p99", "mean"}
    for key in ("throughput_tok_s", "goodput_req_s", "usd_per_mtok", "j_per_tok", "utilization", "requests"):
        assert key in d
    # Another SLO without re-simulating: a looser one can only keep or raise goodput.
    looser = res.metrics_for(SLO(ttft_ms=slo.ttft_ms * 10, tpot_ms=slo.tpot_ms * 10))
    assert looser.goodput_req_s is not None and looser.goodput_req_s >= m.goodput_req_s


def test_cost_and_energy_are_absent_without_prices(model, replica) -> None:
    res = simulate(model, replica, Workload(5, Poisson(1.0), Uniform(1, 9), Uniform(1, 9)))
    assert res.metrics.usd_per_mtok is None and res.metrics.j_per_tok is None and res.metrics.goodput_req_s is None
