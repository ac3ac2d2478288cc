"""Every request that enters leaves with all its tokens, for random workloads on every scheduler."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from trnsim.serve import (
    ChunkedPrefill,
    ClosedLoop,
    ContinuousBatching,
    GammaArrivals,
    Poisson,
    ServeInternalError,
    SharedPrefix,
    SpeculativeDecoding,
    StaticBatching,
    Uniform,
    Workload,
    Zipf,
    simulate,
)
from trnsim.serve.engine import check_conservation
from trnsim.serve.model import DEFAULT_BLOCK_TOKENS
from trnsim.serve.request import LiveRequest

SCHEDULERS = {
    "static": lambda rng: StaticBatching(max_batch=int(rng.integers(1, 9))),
    "continuous": lambda rng: ContinuousBatching(
        max_batch=int(rng.integers(2, 40)), max_batched_tokens=int(rng.integers(256, 4096))
    ),
    "chunked": lambda rng: ChunkedPrefill(max_batch=int(rng.integers(2, 40)), token_budget=int(rng.integers(16, 600))),
}


def random_workload(rng: np.random.Generator) -> Workload:
    n = int(rng.integers(50, 250))
    kind = rng.integers(3)
    arrival = (
        Poisson(float(rng.uniform(5, 200)))
        if kind == 0
        else GammaArrivals(float(rng.uniform(5, 200)), float(rng.uniform(0.3, 4)))
        if kind == 1
        else ClosedLoop(int(rng.integers(1, 30)))
    )
    prompt = Uniform(1, int(rng.integers(2, 1500))) if rng.random() < 0.5 else Zipf(1.1, 1, 2000)
    output = Uniform(1, int(rng.integers(2, 300)))
    prefix = SharedPrefix(int(rng.integers(1, 4)), int(rng.integers(1, 400)), 0.7) if rng.random() < 0.5 else None
    return Workload(n, arrival, prompt, output, prefix=prefix, seed=int(rng.integers(2**31)))


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_request_leaves_with_all_its_tokens(name, model, cost, make_replica, rng) -> None:
    for _ in range(8):
        work = random_workload(rng)
        # Tight KV caches (just above the longest request) force preemptions in the dynamic schedulers. The cache
        # is paged in whole blocks, so it holds at least the longest request's blocks (+1 token: the pool's size
        # goes through float arithmetic); a short workload once drew a 25-32 token cache, i.e. one 16-token block.
        longest_in_blocks = -(-work.max_request_tokens // DEFAULT_BLOCK_TOKENS) * DEFAULT_BLOCK_TOKENS
        kv_tokens = max(longest_in_blocks, int(work.max_request_tokens * rng.uniform(1.05, 3))) + 1
        replicas = [make_replica(cost, kv_tokens) for _ in range(int(rng.integers(1, 4)))]
        spec = (
            SpeculativeDecoding(cost, int(rng.integers(1, 6)), float(rng.uniform(0, 1))) if rng.random() < 0.3 else None
        )
        res = simulate(
            model,
            replicas,
            work,
            SCHEDULERS[name](rng),
            router=str(rng.choice(["round-robin", "least-outstanding"])),
            prefix_caching=bool(rng.random() < 0.5),
            speculative=spec,
            record_token_times=True,
            record_steps=True,
        )
        assert res.step_log is not None and res.token_times is not None
        n = work.num_requests
        assert len(res.arrival_s) == n and not np.isnan(res.finish_s).any()
        # Each token's time, rebuilt from the decode clocks, independently of the emitted counters.
        for rid, times in enumerate(res.token_times):
            assert len(times) == res.output_tokens[rid]
            assert times[0] == res.first_token_s[rid] and times[-1] == res.finish_s[rid]
            assert np.all(np.diff(times) >= 0)
            assert res.arrival_s[rid] <= res.scheduled_s[rid] < res.first_token_s[rid]
        # Every token comes out at the end of a step of the replica that serves the request.
        ends = [{s.end_s for s in res.step_log if s.replica == r} for r in range(len(replicas))]
        for rid, times in enumerate(res.token_times):
            assert set(times.tolist()) <= ends[res.replica[rid]]
        # One step at a time per replica, and busy time is the sum of its steps.
        for r in range(len(replicas)):
            steps = [s for s in res.step_log if s.replica == r]
            assert all(a.end_s <= b.start_s for a, b in pairwise(steps))
            assert sum(s.end_s - s.start_s for s in steps) == pytest.approx(res.busy_s[r])
        if isinstance(work.arrival, ClosedLoop):
            in_flight = np.searchsorted(np.sort(res.arrival_s), res.arrival_s, side="right") - np.searchsorted(
                np.sort(res.finish_s), res.arrival_s, side="right"
            )
            assert in_flight.max() <= work.arrival.concurrency


def test_dynamic_schedulers_preempt_under_memory_pressure_and_still_conserve(model, cost, make_replica) -> None:
    work = Workload(150, Poisson(500.0), Uniform(200, 400), Uniform(200, 400), seed=3)
    replica = make_replica(cost, 1000)
    for config in (ContinuousBatching(max_batch=64), ChunkedPrefill(max_batch=64, token_budget=256)):
        res = simulate(model, replica, work, config, record_token_times=True)
        assert res.preemptions.sum() > 0
        assert res.token_times is not None
        assert [len(t) for t in res.token_times] == res.output_tokens.tolist()


def test_conservation_check_catches_a_lost_token(model, cost, make_replica) -> None:
    res = simulate(model, make_replica(cost, 5000), Workload(3, Poisson(1.0), Uniform(5, 9), Uniform(2, 4)))
    assert res.metrics.requests == 3
    req = LiveRequest(0, 0.0, 5, 3, -1, 0)
    req.emitted, req.scheduled_s, req.first_token_s, req.finish_s = 2, 0.1, 0.2, 0.3  # one token short
    with pytest.raises(ServeInternalError, match="2/3 tokens"):
        check_conservation([req], [])


def test_progress_reports_reach_the_total(model, replica) -> None:
    seen: list[tuple[int, int]] = []
    work = Workload(1000, Poisson(100.0), Uniform(1, 50), Uniform(1, 20), seed=4)
    simulate(model, replica, work, "chunked", progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (1000, 1000)
    assert 100 <= len(seen) <= 1000
    assert all(a[0] < b[0] for a, b in pairwise(seen))
