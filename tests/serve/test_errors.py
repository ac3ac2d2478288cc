"""Impossible setups end with a clear error that says what to change; the rate search finds the SLO edge."""

from __future__ import annotations

import pytest

from trnsim.serve import (
    SLO,
    ChunkedPrefill,
    ContinuousBatching,
    Fixed,
    ModelDoesNotFitError,
    Poisson,
    Replica,
    ServeError,
    SloUnreachableError,
    SpeculativeDecoding,
    StaticBatching,
    Workload,
    find_max_rate,
    scheduler_from_name,
    simulate,
)


def test_model_that_does_not_fit_says_needed_vs_available(model, cost) -> None:
    small = Replica(2.1e9, cost, name="tiny")  # 90% usable = 1.76 GiB < 1.86 GiB of weights
    with pytest.raises(ModelDoesNotFitError, match=r"1\.86 GiB of weights.*1\.76 GiB.*raise tp"):
        simulate(model, small, Workload(1, Poisson(1.0), Fixed(1), Fixed(1)))


def test_request_longer_than_the_kv_cache_is_refused(model, cost, make_replica) -> None:
    replica = make_replica(cost, 1000)
    with pytest.raises(ModelDoesNotFitError, match=r"longest request needs 1500 tokens.*raise tp"):
        simulate(model, replica, Workload(1, Poisson(1.0), Fixed(1000), Fixed(500)))


@pytest.mark.parametrize(
    "make",
    [
        lambda: StaticBatching(0),
        lambda: ContinuousBatching(max_batch=-1),
        lambda: ContinuousBatching(max_batched_tokens=0),
        lambda: ChunkedPrefill(token_budget=0),
        lambda: ChunkedPrefill(max_batch=2.5),
        lambda: scheduler_from_name("fifo"),
        lambda: scheduler_from_name("static", token_budget=64),
        lambda: SLO(),
        lambda: SLO(ttft_ms=-1),
    ],
)
def test_invalid_caps_and_names_are_refused(make) -> None:
    with pytest.raises(ServeError):
        make()


def test_invalid_simulate_options_are_refused(model, cost, replica) -> None:
    work = Workload(1, Poisson(1.0), Fixed(1), Fixed(1))
    with pytest.raises(ServeError, match="router"):
        simulate(model, replica, work, router="random")
    with pytest.raises(ServeError, match="k >= 1"):
        SpeculativeDecoding(cost, 0, 0.5)
    with pytest.raises(ServeError, match="alpha"):
        SpeculativeDecoding(cost, 2, 1.5)
    with pytest.raises(ServeError, match="at least one replica"):
        simulate(model, [], work)
    with pytest.raises(ServeError, match="finite time > 0"):
        simulate(model, Replica(1e12, _ZeroCost()), work)


class _ZeroCost:
    def step_time_s(self, batch: int, new_tokens: int, context: float) -> float:
        return 0.0


def test_unreachable_slo_says_so(model, replica) -> None:
    # A lone 2000-token prompt takes > 40 ms to prefill on this device: no rate gets TTFT under 1 ms.
    work = Workload(50, Poisson(1.0), Fixed(2000), Fixed(8), seed=2)
    with pytest.raises(SloUnreachableError, match=r"no arrival rate meets the SLO \(TTFT <= 1 ms.*relax the SLO"):
        find_max_rate(model, replica, work, SLO(ttft_ms=1.0))
