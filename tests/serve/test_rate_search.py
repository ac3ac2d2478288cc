"""The rate search measures steady state: its answer does not depend on the run size asked for, it never
exceeds what the replica can complete, and the rate just above it fails."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trnsim.serve import SLO, ClosedLoop, ContinuousBatching, Poisson, Uniform, Workload, find_max_rate, simulate
from trnsim.serve.steady_state import measure_steady_state


def _work(n: int, seed: int) -> Workload:
    return Workload(n, Poisson(1.0), Uniform(100, 800), Uniform(20, 80), seed=seed)


def test_capacity_does_not_depend_on_the_requests_asked_for(model, replica, rng) -> None:
    seed = int(rng.integers(2**31))
    slo = SLO(ttft_ms=2000.0)  # loose: capacity is then about the most the replica completes per second
    few = find_max_rate(model, replica, _work(20, seed), slo, ContinuousBatching(max_batch=32))
    many = find_max_rate(model, replica, _work(3000, seed), slo, ContinuousBatching(max_batch=32))
    assert few.rate_req_s == pytest.approx(many.rate_req_s, rel=0.05)
    # Independent reference: a closed loop of max_batch clients keeps the replica saturated; its completed
    # rate is the most the replica can sustain. A run-length artefact (200 requests meeting a latency SLO
    # before the backlog builds) would report far more than that.
    saturated = simulate(model, replica, Workload(4000, ClosedLoop(32), Uniform(100, 800), Uniform(20, 80), seed=seed))
    ceiling = saturated.metrics.request_s
    for found in (few, many):
        assert found.rate_req_s <= ceiling * 1.1  # the saturation check's 5% tolerance, and sampling
        assert found.rate_req_s >= ceiling * 0.8  # the loose SLO binds only near saturation
        assert found.steady is not None and found.steady.long_enough
        assert found.steady.requests > 20  # the tool chose the run length, not the caller


def test_the_rate_just_above_the_answer_fails_in_steady_state(model, replica, rng) -> None:
    work = _work(150, int(rng.integers(2**31)))
    slo = SLO(ttft_ms=200.0, tpot_ms=10.0)
    found = find_max_rate(model, replica, work, slo, ContinuousBatching(), goodput_fraction=0.9, rel_tol=0.05)
    assert found.steady is not None and found.steady.attainment is not None and found.steady.attainment >= 0.9
    assert found.steady.sustained(0.05)
    assert found.upper_req_s is not None and found.upper_req_s <= found.rate_req_s * 1.05 + 1e-12
    assert found.failures[found.upper_req_s] in ("slo", "saturated")
    lo_ci, hi_ci = found.confidence()["steady_state"]["attainment_ci95"]
    assert lo_ci <= found.steady.attainment <= hi_ci
    # Reproducible: the same requests at the same rate give the same measurement.
    sized = replace(work, num_requests=found.steady.requests).with_rate(found.rate_req_s)
    again = measure_steady_state(simulate(model, replica, sized, ContinuousBatching(), slo=slo), slo)
    assert again == found.steady


def test_overload_is_caught_by_the_saturation_check_on_a_short_run(model, replica, rng) -> None:
    """Twice the sustainable rate, 1000 requests: the latency SLO can still look met, completions cannot."""
    seed = int(rng.integers(2**31))
    batch = ContinuousBatching(max_batch=32)
    ceiling = simulate(model, replica, Workload(3000, ClosedLoop(32), Uniform(100, 800), Uniform(20, 80), seed=seed))
    run = simulate(model, replica, _work(1000, seed).with_rate(2 * ceiling.metrics.request_s), batch)
    steady = measure_steady_state(run, SLO(ttft_ms=1e9))
    assert steady.completed_over_offered < 0.7  # about 1/2: the replica completes its ceiling, not the offer
    assert not steady.sustained(0.05)
