"""Queueing sanity: one server, batch cap 1, deterministic service = an M/D/1 queue."""

from __future__ import annotations

import numpy as np

from trnsim.serve import Fixed, Poisson, StaticBatching, Workload, simulate


def test_md1_waits_match_lindley_recursion_and_pollaczek_khinchine(model, cost, replica, rng) -> None:
    prompt, output = 256, 3
    # Service time of one request alone, from the step cost: prefill, then output-1 decode steps.
    service = cost.step_time_s(1, prompt, prompt) + sum(cost.step_time_s(1, 1, prompt + j) for j in range(1, output))
    rho = 0.5
    n = 60_000
    work = Workload(n, Poisson(rho / service), Fixed(prompt), Fixed(output), seed=int(rng.integers(2**31)))
    res = simulate(model, replica, work, StaticBatching(max_batch=1))
    wait = res.scheduled_s - res.arrival_s

    # Exact reference on the same arrivals: Lindley's recursion W[i] = max(0, W[i-1] + S - gap[i]).
    gaps = np.diff(res.arrival_s)
    lindley = np.zeros(n)
    for i in range(1, n):
        lindley[i] = max(0.0, lindley[i - 1] + service - gaps[i - 1])
    np.testing.assert_allclose(wait, lindley, rtol=1e-9, atol=1e-9 * service)
    np.testing.assert_allclose(res.e2e_s, lindley + service, rtol=1e-9)

    # Closed form (Pollaczek-Khinchine for M/D/1): mean wait = rho S / (2 (1 - rho)). Sampling error at
    # this n is ~1.5% (1 sigma), so 6% is a > 4 sigma bound.
    expected = rho * service / (2 * (1 - rho))
    assert abs(wait.mean() / expected - 1) < 0.06
    assert abs(res.metrics.utilization - rho) < 0.02
