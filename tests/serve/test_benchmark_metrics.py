"""vLLM-benchmark-style metrics against direct computations: max concurrency by brute force, inter-token
latencies summing to each request's decode time, percentiles as numpy gives them, $/Mtok both ways."""

from __future__ import annotations

import numpy as np
import pytest

from trnsim.serve import ContinuousBatching, Poisson, Replica, Uniform, Workload, simulate
from trnsim.serve.benchmark_metrics import benchmark_metrics, inter_token_latencies_s, parse_percentiles
from trnsim.serve.errors import ServeError
from trnsim.serve.metrics import max_in_system


def test_max_in_system_matches_brute_force(rng) -> None:
    n = int(rng.integers(1, 300))
    arrival = np.round(rng.uniform(0, 50, n), 1)  # rounded: ties between arrivals and finishes happen
    finish = arrival + np.round(rng.uniform(0.1, 10, n), 1)
    instants = np.concatenate([arrival, finish])
    brute = max(int(((arrival <= t) & (finish > t)).sum()) for t in instants)
    assert max_in_system(arrival, finish) == brute


def test_benchmark_metrics_of_a_run(model, cost, rng) -> None:
    price = float(rng.uniform(1, 100))
    replica = Replica((2e9 + 200_000 * 65536.0) / 0.9, cost, price_per_hour=price)
    work = Workload(
        int(rng.integers(50, 200)), Poisson(20.0), Uniform(10, 500), Uniform(1, 60), seed=int(rng.integers(1 << 30))
    )
    res = simulate(model, replica, work, ContinuousBatching(), record_token_times=True)
    out = benchmark_metrics(res, (50, 95, 99.9))
    assert (
        out["total_input_tokens"] == res.prompt_tokens.sum() and out["total_output_tokens"] == res.output_tokens.sum()
    )
    assert res.token_times is not None
    itl = inter_token_latencies_s(res.token_times)
    assert itl.size == int((res.output_tokens - 1).sum())
    # The gaps of a request add up to its last token minus its first.
    assert itl.sum() == pytest.approx(float((res.finish_s - res.first_token_s).sum()), rel=1e-9)
    assert out["itl_ms"]["p99.9"] == pytest.approx(float(np.percentile(itl, 99.9)) * 1e3, rel=1e-12)
    assert out["ttft_ms"]["p95"] == pytest.approx(float(np.percentile(res.ttft_s, 95)) * 1e3, rel=1e-12)
    assert out["e2el_ms"]["mean"] == pytest.approx(float(res.e2e_s.mean()) * 1e3, rel=1e-12)
    tokens_out, tokens_all = res.output_tokens.sum(), res.output_tokens.sum() + res.prompt_tokens.sum()
    hours = res.metrics.duration_s / 3600
    assert out["usd_per_mtok_output"] == pytest.approx(price * hours / tokens_out * 1e6, rel=1e-9)
    assert out["usd_per_mtok_input_output"] == pytest.approx(price * hours / tokens_all * 1e6, rel=1e-9)
    assert 1 <= out["max_concurrency"] <= len(res.arrival_s)


@pytest.mark.parametrize("text", ["0", "101", "fifty", "50,,90"])
def test_bad_percentiles_are_refused(text: str) -> None:
    with pytest.raises(ServeError, match="percentile"):
        parse_percentiles(text)
    assert parse_percentiles("50, 99.9") == (50.0, 99.9)
